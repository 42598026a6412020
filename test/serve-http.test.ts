/**
 * `nuggets serve` as a real child process (`node --import tsx src/cli/run.ts serve ...` on
 * stories260K, a free port chosen by the OS, an API key from an environment variable), spoken to
 * over real HTTP on 127.0.0.1 only, no mocks:
 * - /v1/models, /health, auth (401), unknown model / route / method;
 * - non-streaming and streaming completions and chat equal the in-process model's text, in OpenAI's
 *   shapes (SSE framing, finish_reason, usage, [DONE]);
 * - the eval harness's OpenAI-compatible judge client (src/eval/judge.ts) gets the verdicts the
 *   model gives in-process, and runs the AlpacaEval proxy through it;
 * - a burst of 40 concurrent requests, half of them malformed, plus oversized bodies and a client
 *   that hangs up mid-stream, each get the right status and a JSON error body, and the server then
 *   answers exactly as before, logs no internal error, and exits 0 on SIGTERM.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { request } from 'node:http';
import { join } from 'node:path';
import { readLlama2c } from '../src/io/llama2c.js';
import { Llama2cTokenizer } from '../src/io/tokenizer-llama2c.js';
import { LlamaModel } from '../src/model/model.js';
import { ModelLM } from '../src/eval/model-lm.js';
import {
  JUDGE_SYSTEM,
  judgeUserPrompt,
  OpenAIJudge,
  parseVerdict,
  type JudgeRequest,
} from '../src/eval/judge.js';
import { runAlpacaEval } from '../src/eval/tasks/alpaca.js';
import { ServeEngine } from '../src/serve/engine.js';
import { parseChatRequest } from '../src/serve/protocol.js';
import { ROOT, STORIES260K } from './model-helpers.js';
import { FIXTURES, ScriptedLM, ctxFor } from './eval-helpers.js';

const CKPT = join(STORIES260K, 'checkpoint_legacy.bin');
const KEY_ENV = 'NUGGETS_TEST_SERVE_KEY';
const KEY = 'sk-serve-test-7f3a';
const NAME = 'stories';

const tok = Llama2cTokenizer.fromFile(join(STORIES260K, 'tokenizer.bin'), 512);
const model = LlamaModel.load(readLlama2c(CKPT));
const lm = new ModelLM(model, tok);
const engine = new ServeEngine(model, tok, {
  name: NAME,
  created: 0,
  model: CKPT,
  adapter: null,
  parameters: 0,
});

/** A running `nuggets serve` child: its base URL and everything it wrote to stderr so far. */
interface Served {
  child: ChildProcess;
  base: string;
  stderr: () => string;
}

/** Spawns `nuggets serve` on a free port; resolves once it prints its URL. */
function serve(args: string[], env: Record<string, string> = {}): Promise<Served> {
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', join(ROOT, 'src', 'cli', 'run.ts'), 'serve', CKPT, '--port', '0', ...args],
    {
      cwd: ROOT,
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  let err = '';
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  return new Promise<Served>((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error(`serve did not start in 90 s; stderr:\n${err}`)), 90_000);
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /at (http:\/\/127\.0\.0\.1:\d+)\/v1 /.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve({ child, base: m[1], stderr: () => err });
      }
    });
    child.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`serve exited with ${code} before listening; stderr:\n${err}`));
    });
  });
}

let main: Served;
/** A second server with no waiting room at all (--max-queue 0), for the judge's retries on 429. */
let busy: Served;
let base = '';

before(async () => {
  [main, busy] = await Promise.all([
    serve(
      ['--served-model-name', NAME, '--max-queue', '64', '--max-body-kb', '64', '--api-key-env', KEY_ENV],
      { [KEY_ENV]: KEY },
    ),
    serve(['--served-model-name', NAME, '--max-queue', '0']),
  ]);
  base = main.base;
});

after(() => {
  for (const s of [main, busy]) if (s && s.child.exitCode === null) s.child.kill('SIGKILL');
});

const auth = { authorization: `Bearer ${KEY}` };

interface Reply {
  status: number;
  headers: Headers;
  text: string;
  json: any; // eslint-disable-line @typescript-eslint/no-explicit-any -- parsed replies of many shapes
}

async function call(
  method: string,
  path: string,
  body?: unknown,
  headers: Record<string, string> = auth,
): Promise<Reply> {
  const init: RequestInit = { method, headers: { ...headers } };
  if (body !== undefined) {
    init.body = typeof body === 'string' ? body : JSON.stringify(body);
    (init.headers as Record<string, string>)['content-type'] = 'application/json';
  }
  const res = await fetch(base + path, init);
  const text = await res.text();
  let json: unknown = null;
  try {
    json = JSON.parse(text);
  } catch {
    /* SSE or empty */
  }
  return { status: res.status, headers: res.headers, text, json };
}

/** The `data:` payloads of an SSE body, [DONE] last. */
function events(text: string): string[] {
  assert.ok(text.endsWith('\n\n'), 'events end with a blank line');
  return text
    .split('\n\n')
    .filter((e) => e !== '')
    .map((e) => {
      assert.ok(e.startsWith('data: '), `event ${JSON.stringify(e.slice(0, 40))}`);
      return e.slice(6);
    });
}

function assertError(
  r: Reply,
  status: number,
  param: string | null,
  code: string | null,
  message?: RegExp,
): void {
  assert.equal(r.status, status, r.text);
  assert.match(r.headers.get('content-type') ?? '', /application\/json/);
  assert.deepEqual(Object.keys(r.json.error).sort(), ['code', 'message', 'param', 'type']);
  assert.equal(typeof r.json.error.message, 'string');
  assert.equal(r.json.error.param, param);
  assert.equal(r.json.error.code, code);
  if (message) assert.match(r.json.error.message, message);
}

const PROMPT = 'Once upon a time, there was a little cat named';

/** Judge requests, and the verdicts the model gives them in-process (set by the judge test). */
const JUDGED: JudgeRequest[] = [
  { instruction: 'Name a pet.', outputA: 'A dog.', outputB: 'A cat.' },
  { instruction: 'Say hi.', outputA: 'Hi!', outputB: 'Bye.' },
  { instruction: 'Count to 3.', outputA: '1 2 3', outputB: '3 2 1' },
];
let judgedVerdicts: string[] = [];
const greedy = async (prompt: string, maxTokens: number, stop: string[] = []) =>
  (await lm.generate([{ prompt, maxTokens, stop, temperature: 0, seed: 0 }]))[0];

test('models, health, auth, unknown model, route and method', async () => {
  const models = await call('GET', '/v1/models');
  assert.equal(models.status, 200);
  assert.equal(models.json.object, 'list');
  assert.equal(models.json.data.length, 1);
  assert.deepEqual(
    { ...models.json.data[0], created: 0 },
    { id: NAME, object: 'model', created: 0, owned_by: 'nuggets', max_model_len: 512 },
  );
  assert.equal((await call('GET', `/v1/models/${NAME}`)).json.id, NAME);
  assertError(await call('GET', '/v1/models/other'), 404, 'model', 'model_not_found');
  assert.equal((await call('GET', '/health', undefined, {})).json.status, 'ok');
  assertError(await call('GET', '/v1/models', undefined, {}), 401, null, 'invalid_api_key');
  assertError(
    await call('POST', '/v1/completions', { model: NAME, prompt: 'x' }, { authorization: 'Bearer wrong' }),
    401,
    null,
    'invalid_api_key',
  );
  assertError(
    await call('POST', '/v1/completions', { model: 'gpt-4', prompt: 'x' }),
    404,
    'model',
    'model_not_found',
    /`gpt-4` does not exist; this server serves `stories`/,
  );
  assertError(
    await call('GET', '/v1/nothing'),
    404,
    null,
    'unknown_url',
    /Unknown request URL: GET \/v1\/nothing/,
  );
  const wrong = await call('GET', '/v1/completions');
  assertError(wrong, 405, null, 'method_not_allowed');
  assert.equal(wrong.headers.get('allow'), 'POST');
});

test('completions: non-streaming and streaming equal the in-process model', async () => {
  const expect = await greedy(PROMPT, 30);
  const r = await call('POST', '/v1/completions', {
    model: NAME,
    prompt: PROMPT,
    max_tokens: 30,
    temperature: 0,
  });
  assert.equal(r.status, 200);
  assert.match(r.json.id, /^cmpl-[0-9a-f]{24}$/);
  assert.equal(r.json.object, 'text_completion');
  assert.equal(r.json.model, NAME);
  assert.ok(Math.abs(r.json.created - Date.now() / 1000) < 600);
  assert.deepEqual(r.json.choices, [{ index: 0, text: expect, logprobs: null, finish_reason: 'length' }]);
  const promptTokens = tok.encode(PROMPT, { addBos: true }).length;
  assert.deepEqual(r.json.usage, {
    prompt_tokens: promptTokens,
    completion_tokens: 30,
    total_tokens: promptTokens + 30,
  });

  // a stop string: cut before it, finish_reason "stop"
  const stopped = await call('POST', '/v1/completions', {
    model: NAME,
    prompt: PROMPT,
    max_tokens: 30,
    temperature: 0,
    stop: ['.'],
  });
  assert.equal(stopped.json.choices[0].text, await greedy(PROMPT, 30, ['.']));
  assert.equal(stopped.json.choices[0].finish_reason, expect.includes('.') ? 'stop' : 'length');

  const s = await call('POST', '/v1/completions', {
    model: NAME,
    prompt: PROMPT,
    max_tokens: 30,
    temperature: 0,
    stream: true,
    stream_options: { include_usage: true },
  });
  assert.equal(s.status, 200);
  assert.match(s.headers.get('content-type') ?? '', /^text\/event-stream/);
  const ev = events(s.text);
  assert.equal(ev.at(-1), '[DONE]');
  const chunks = ev.slice(0, -1).map((e) => JSON.parse(e));
  const usage = chunks.pop();
  assert.deepEqual(usage.choices, []);
  assert.deepEqual(usage.usage, r.json.usage);
  assert.ok(chunks.length > 5, 'streamed in pieces');
  for (const c of chunks) {
    assert.equal(c.object, 'text_completion');
    assert.equal(c.id, chunks[0].id);
    assert.equal(c.usage, null);
  }
  assert.equal(chunks.map((c) => c.choices[0].text).join(''), expect);
  assert.deepEqual(
    chunks.map((c) => c.choices[0].finish_reason),
    [...Array(chunks.length - 1).fill(null), 'length'],
  );
});

test('chat: non-streaming and streaming, Tulu prompt, seeded sampling reproducible', async () => {
  const body = {
    model: NAME,
    messages: [{ role: 'user', content: 'Tell me a story about a dog.' }],
    max_tokens: 25,
    temperature: 0,
  };
  const expect = engine.run(parseChatRequest(body));
  const r = await call('POST', '/v1/chat/completions', body);
  assert.equal(r.status, 200);
  assert.match(r.json.id, /^chatcmpl-/);
  assert.equal(r.json.object, 'chat.completion');
  assert.deepEqual(r.json.choices, [
    {
      index: 0,
      message: { role: 'assistant', content: expect.choices[0].text },
      logprobs: null,
      finish_reason: expect.choices[0].finishReason,
    },
  ]);
  assert.equal(r.json.usage.prompt_tokens, expect.promptTokens);

  const s = await call('POST', '/v1/chat/completions', { ...body, stream: true });
  const ev = events(s.text);
  assert.equal(ev.at(-1), '[DONE]');
  const chunks = ev.slice(0, -1).map((e) => JSON.parse(e));
  assert.ok(chunks.every((c) => c.object === 'chat.completion.chunk' && !('usage' in c)));
  assert.equal(chunks[0].choices[0].delta.role, 'assistant');
  assert.ok(chunks.slice(1).every((c) => !('role' in c.choices[0].delta)));
  assert.equal(chunks.map((c) => c.choices[0].delta.content ?? '').join(''), expect.choices[0].text);
  assert.deepEqual(chunks.at(-1).choices[0].delta, {});
  assert.equal(chunks.at(-1).choices[0].finish_reason, expect.choices[0].finishReason);

  const sampled = { ...body, temperature: 1, seed: 99, n: 2 };
  const a = await call('POST', '/v1/chat/completions', sampled);
  const b = await call('POST', '/v1/chat/completions', sampled);
  assert.equal(a.json.choices.length, 2);
  assert.deepEqual(a.json.choices, b.json.choices);
  assert.deepEqual(
    a.json.choices.map((c: { message: { content: string } }) => c.message.content),
    engine.run(parseChatRequest(sampled)).choices.map((c) => c.text),
  );
});

test('the OpenAI-compatible judge client against the real server', async () => {
  process.env[KEY_ENV] = KEY;
  try {
    const judge = new OpenAIJudge({
      url: `${base}/v1`,
      model: NAME,
      apiKeyEnv: KEY_ENV,
      concurrency: 3,
      maxTokens: 12,
    });
    const verdicts = await judge.judge(JUDGED);
    // what the model answers in-process to the same chat request the client sends
    const expected = JUDGED.map((r) => {
      const reply = engine.run(
        parseChatRequest({
          model: NAME,
          messages: [
            { role: 'system', content: JUDGE_SYSTEM },
            { role: 'user', content: judgeUserPrompt(r) },
          ],
          temperature: 0,
          max_tokens: 12,
        }),
      ).choices[0].text;
      return parseVerdict(reply);
    });
    judgedVerdicts = expected.map((v) => v ?? 'tie');
    assert.deepEqual(verdicts, judgedVerdicts);
    assert.equal(judge.parseFailures, expected.filter((v) => v === null).length);
    assert.match(judge.name, /^openai-compatible:stories@127\.0\.0\.1:\d+$/);

    // the AlpacaEval proxy task with the served model as its judge
    const outputs = new ScriptedLM('student', (q) => `Answer: ${q.prompt.length}`);
    const res = await runAlpacaEval(ctxFor(outputs, { seed: 3, limit: 2 }), {
      path: join(FIXTURES, 'alpaca_toy.jsonl'),
      judge: new OpenAIJudge({ url: base + '/v1', model: NAME, apiKeyEnv: KEY_ENV, maxTokens: 8 }),
    });
    const win = res.metrics.find((m) => m.name === 'win_rate')!;
    assert.ok(win.value !== null && win.value >= 0 && win.value <= 1);
    assert.match(String((res.config.judge as { name: string }).name), /^openai-compatible:stories@/);
  } finally {
    delete process.env[KEY_ENV];
  }
  // a wrong key is a clear error, not a retry loop
  process.env[KEY_ENV] = 'sk-wrong';
  try {
    const judge = new OpenAIJudge({ url: `${base}/v1`, model: NAME, apiKeyEnv: KEY_ENV, maxRetries: 0 });
    await assert.rejects(
      judge.judge([{ instruction: 'i', outputA: 'a', outputB: 'b' }]),
      /HTTP 401: .*invalid_api_key/,
    );
  } finally {
    delete process.env[KEY_ENV];
  }
});

test('the judge client retries 429s of a server with no waiting room and still gets every verdict', async () => {
  assert.ok(judgedVerdicts.length > 0, 'runs after the judge test');
  const judge = new OpenAIJudge({
    url: `${busy.base}/v1`,
    model: NAME,
    concurrency: 3,
    maxRetries: 12,
    maxTokens: 12,
  });
  assert.deepEqual(await judge.judge(JUDGED), judgedVerdicts);
  const full = await fetch(`${busy.base}/v1/completions`, {
    method: 'POST',
    body: JSON.stringify({ model: NAME, prompt: 'x', max_tokens: 1 }),
  });
  assert.equal(full.status, 200, 'an idle server with no queue still takes one request');
  // three requests at once, one model slot and no queue: the others were refused with 429 and retried
  // (request lines are logged when a response closes: wait for the last one to arrive)
  const oks = () => (busy.stderr().match(/POST \/v1\/(chat\/)?completions 200 /g) ?? []).length;
  for (let t = 0; t < 50 && oks() < 4; t++) await new Promise((r) => setTimeout(r, 100));
  assert.equal(oks(), 4);
  assert.match(busy.stderr(), /POST \/v1\/chat\/completions 429 /);
});

/** POSTs a body in chunks without a content-length (chunked encoding); resolves with the status and body. */
function chunkedPost(
  path: string,
  chunks: number,
  chunkSize: number,
): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const u = new URL(base + path);
    const req = request(
      {
        host: '127.0.0.1',
        port: u.port,
        path,
        method: 'POST',
        headers: { ...auth, 'content-type': 'application/json', 'transfer-encoding': 'chunked' },
      },
      (res) => {
        let body = '';
        res.on('data', (d: Buffer) => (body += d.toString()));
        res.on('end', () => resolve({ status: res.statusCode!, body }));
      },
    );
    req.on('error', reject);
    const piece = 'x'.repeat(chunkSize);
    let sent = 0;
    const pump = () => {
      while (sent < chunks) {
        sent++;
        if (!req.write(piece)) {
          req.once('drain', pump);
          return;
        }
      }
      req.end();
    };
    pump();
  });
}

test('a burst of concurrent, malformed and oversized requests; the server answers correctly afterwards', async () => {
  const expect = await greedy(PROMPT, 12);
  const valid = { model: NAME, prompt: PROMPT, max_tokens: 12, temperature: 0 };
  // [request, expected status, expected param, expected code]
  const malformed: [() => Promise<Reply>, number, string | null, string | null][] = [
    [() => call('POST', '/v1/completions', '{"model": "stories", "prompt": '), 400, null, 'invalid_json'],
    [() => call('POST', '/v1/completions', 'not json at all'), 400, null, 'invalid_json'],
    [() => call('POST', '/v1/completions', ''), 400, null, 'invalid_json'],
    [() => call('POST', '/v1/completions', '[1, 2, 3]'), 400, null, 'invalid_type'],
    [() => call('POST', '/v1/completions', 'null'), 400, null, 'invalid_type'],
    [() => call('POST', '/v1/completions', { prompt: 'x' }), 400, 'model', 'missing_required_parameter'],
    [() => call('POST', '/v1/completions', { model: NAME }), 400, 'prompt', 'missing_required_parameter'],
    [
      () => call('POST', '/v1/completions', { ...valid, temperature: 'hot' }),
      400,
      'temperature',
      'invalid_type',
    ],
    [() => call('POST', '/v1/completions', { ...valid, max_tokens: -5 }), 400, 'max_tokens', 'invalid_value'],
    [() => call('POST', '/v1/completions', { ...valid, n: 1000 }), 400, 'n', 'invalid_value'],
    [() => call('POST', '/v1/completions', { ...valid, stop: [1, 2] }), 400, 'stop[0]', 'invalid_type'],
    [
      () => call('POST', '/v1/completions', { ...valid, prompt: { text: 'x' } }),
      400,
      'prompt',
      'invalid_type',
    ],
    [() => call('POST', '/v1/completions', { ...valid, logprobs: 99 }), 400, 'logprobs', 'invalid_value'],
    [
      () => call('POST', '/v1/completions', { ...valid, max_tokens: 600 }),
      400,
      'max_tokens',
      'context_length_exceeded',
    ],
    [
      () => call('POST', '/v1/chat/completions', { model: NAME, messages: 'hello' }),
      400,
      'messages',
      'invalid_type',
    ],
    [
      () =>
        call('POST', '/v1/chat/completions', { model: NAME, messages: [{ role: 'wizard', content: 'x' }] }),
      400,
      'messages[0].role',
      'invalid_value',
    ],
    [
      () =>
        call('POST', '/v1/chat/completions', {
          model: NAME,
          messages: [{ role: 'user', content: 'x' }],
          stream: true,
          max_tokens: 9999,
        }),
      400,
      'max_tokens',
      'context_length_exceeded',
    ],
    [() => call('DELETE', '/v1/chat/completions'), 405, null, 'method_not_allowed'],
    [() => call('POST', '/v1/embeddings', { model: NAME, input: 'x' }), 404, null, 'unknown_url'],
    [
      () => call('POST', '/v1/completions', JSON.stringify({ ...valid, prompt: 'y'.repeat(70 * 1024) })),
      413,
      null,
      'request_too_large',
    ],
  ];
  assert.equal(malformed.length, 20);
  // a client that hangs up in the middle of a long stream
  const hangup = (async () => {
    const ctl = new AbortController();
    const res = await fetch(base + '/v1/completions', {
      method: 'POST',
      headers: { ...auth, 'content-type': 'application/json' },
      body: JSON.stringify({ ...valid, max_tokens: 400, stream: true }),
      signal: ctl.signal,
    });
    const reader = res.body!.getReader();
    await reader.read();
    ctl.abort();
    return res.status;
  })();
  const validCalls = Array.from({ length: 20 }, (_, i) =>
    i % 2 === 0
      ? call('POST', '/v1/completions', valid)
      : call('POST', '/v1/completions', { ...valid, stream: true }),
  );
  const bad = malformed.map(([f]) => f());
  const [oks, bads, hung, big] = await Promise.all([
    Promise.all(validCalls),
    Promise.all(bad),
    hangup,
    chunkedPost('/v1/completions', 100, 1024),
  ]);
  bads.forEach((r, i) => {
    const [, status, param, code] = malformed[i];
    assertError(r, status, param, code);
  });
  assert.equal(hung, 200);
  assert.equal(big.status, 413);
  assert.equal(JSON.parse(big.body).error.code, 'request_too_large');
  // the queue holds 64: every valid request is answered with the model's text
  oks.forEach((r, i) => {
    assert.equal(r.status, 200, r.text);
    if (i % 2 === 0) assert.equal(r.json.choices[0].text, expect);
    else {
      const ev = events(r.text);
      assert.equal(ev.at(-1), '[DONE]');
      assert.equal(
        ev
          .slice(0, -1)
          .map((e) => JSON.parse(e).choices[0].text)
          .join(''),
        expect,
      );
    }
  });

  // afterwards: same answers, a healthy empty queue, no internal errors logged
  const again = await call('POST', '/v1/completions', valid);
  assert.equal(again.json.choices[0].text, expect);
  const health = await call('GET', '/health', undefined, {});
  assert.deepEqual(health.json, {
    status: 'ok',
    model: NAME,
    backend: health.json.backend,
    waiting: 0,
    busy: false,
  });
  assert.ok(['native', 'ts'].includes(health.json.backend));
  assert.doesNotMatch(main.stderr(), /internal error|model worker error|stopped unexpectedly/);
  assert.match(main.stderr(), /POST \/v1\/completions 200 /);
  assert.match(main.stderr(), /POST \/v1\/completions client closed /);

  // unknown and vendor fields are ignored (vLLM's rule) and named in the log
  const vendor = await call('POST', '/v1/completions', {
    ...valid,
    bogus: true,
    min_p: 0.1,
    repetition_penalty: 1.2,
  });
  assert.equal(vendor.status, 200, vendor.text);
  assert.equal(vendor.json.choices[0].text, expect);
  assert.match(
    main.stderr(),
    /ignored request fields on \/v1\/completions: bogus, min_p, repetition_penalty/,
  );
});

test('SIGTERM stops the server cleanly (exit code 0)', async () => {
  const code = await new Promise<number | null>((resolve) => {
    main.child.once('exit', (c) => resolve(c));
    main.child.kill('SIGTERM');
  });
  assert.equal(code, 0);
  assert.match(main.stderr(), /SIGTERM, shutting down/);
});
