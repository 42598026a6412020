/**
 * lm-evaluation-harness against a real `nuggets serve` process (stories260K, a free port, 127.0.0.1):
 * the JSON bodies below are the ones lm-eval's API models build (lm_eval/models/openai_completions.py
 * LocalCompletionsAPI._create_payload and LocalChatCompletion._create_payload; token lists as
 * TemplateAPI.batch_loglikelihood_requests / generate_until make them with
 * `tokenizer_backend=huggingface,add_bos_token=True,max_length=512`), and the replies are read the
 * way lm-eval reads them (parse_logprobs: sum(token_logprobs[ctxlen:-1]), greedy = every token is
 * its position's top-1; parse_generations: choices by index). The numbers must equal `nuggets
 * eval`'s own scoring of the same requests (src/eval/model-lm.ts) to 1e-4:
 * - loglikelihood: MMLU questions (the four " A".." D"), a context with a trailing space, an empty
 *   context (lm-eval conditions on the prefix token, BOS);
 * - loglikelihood_rolling: a story longer than one window, cut by lm-eval's get_rolling_token_windows
 *   + make_disjoint_window (context_len 1, max_seq_len = max_length - 2);
 * - generate_until: lm-eval's gsm8k generation kwargs (until Question:/</s>/<|im_end|> + EOS,
 *   temperature 0, do_sample false) with token-list and string prompts, and the chat payload.
 * In-process, the engine's logprobs are checked against a direct forward pass, and a choice that
 * ends on EOS counts the EOS token in completion_tokens and logprobs, not in its text.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { readLlama2c } from '../src/io/llama2c.js';
import { Llama2cTokenizer } from '../src/io/tokenizer-llama2c.js';
import { generate } from '../src/model/generate.js';
import { LlamaModel } from '../src/model/model.js';
import { ModelLM } from '../src/eval/model-lm.js';
import { loadMmlu, mmluContext, MMLU_LETTERS } from '../src/eval/tasks/mmlu.js';
import { ServeEngine } from '../src/serve/engine.js';
import { parseChatRequest, parseCompletionRequest } from '../src/serve/protocol.js';
import { heldOutStories, ROOT, STORIES260K } from './model-helpers.js';
import { DATA } from './eval-helpers.js';

const CKPT = join(STORIES260K, 'checkpoint_legacy.bin');
const NAME = 'stories';
const tok = Llama2cTokenizer.fromFile(join(STORIES260K, 'tokenizer.bin'), 512);
const model = LlamaModel.load(readLlama2c(CKPT));
const lm = new ModelLM(model, tok);

// ------------------------------------------------------------------ lm-eval, transcribed

/** lm-eval's --model_args max_length (the model's context); TemplateAPI keeps max_length - 1. */
const MAX_LENGTH = 512 - 1;
const SEED = 1234;
/** What the Hugging Face tokenizer's eos_token is for a llama tokenizer (eos_string). */
const EOS_STRING = '</s>';

/** TemplateAPI.tok_encode with add_bos_token=True (add_special_tokens): BOS + the text's tokens. */
const tokEncode = (s: string, addBos = true) => tok.encode(s, { addBos });

/** TemplateLM.loglikelihood + _encode_pair: trailing context spaces move to the continuation. */
function encodePair(context: string, continuation: string): [number[], number[]] {
  if (context === '') {
    const cont = tokEncode(continuation);
    const prefix = tok.bosId!;
    return prefix !== cont[0] ? [[prefix], cont] : [cont.slice(0, 1), cont.slice(1)];
  }
  const n = context.length - context.trimEnd().length;
  if (n > 0) {
    continuation = context.slice(context.length - n) + continuation;
    context = context.slice(0, context.length - n);
  }
  const whole = tokEncode(context + continuation);
  const ctx = tokEncode(context);
  return [ctx, whole.slice(ctx.length)];
}

/** TemplateAPI.batch_loglikelihood_requests: left-truncate to max_length, ctxlen shrinks with it. */
function batchLoglikelihood(pairs: [number[], number[]][]): { inputs: number[][]; ctxlens: number[] } {
  const inputs: number[][] = [];
  const ctxlens: number[] = [];
  for (const [c, k] of pairs) {
    const all = [...c, ...k];
    inputs.push(all.slice(Math.max(0, all.length - MAX_LENGTH)));
    ctxlens.push(c.length - Math.max(0, c.length + k.length - MAX_LENGTH));
  }
  return { inputs, ctxlens };
}

/** LocalCompletionsAPI._create_payload(messages, generate=False, seed). */
const loglikelihoodPayload = (prompt: number[][]) => ({
  model: NAME,
  prompt,
  temperature: 0,
  max_tokens: 1,
  logprobs: 1,
  seed: SEED,
  echo: true,
});

/** LocalCompletionsAPI._create_payload(messages, generate=True, gen_kwargs, seed, eos). */
function generatePayload(prompt: number[][] | string[], genKwargs: Record<string, unknown>) {
  const g = { ...genKwargs };
  delete g.do_sample;
  let maxTokens: unknown;
  if ('max_tokens' in g) maxTokens = g.max_tokens;
  else maxTokens = g.max_gen_toks ?? 256;
  delete g.max_tokens;
  delete g.max_gen_toks;
  const temperature = g.temperature ?? 0;
  delete g.temperature;
  const stop = handleStopSequences(g.until as string[] | undefined, EOS_STRING);
  delete g.until;
  return { prompt, model: NAME, max_tokens: maxTokens, temperature, stop, seed: SEED, ...g };
}

/** lm_eval.models.utils.handle_stop_sequences. */
function handleStopSequences(until: string[] | string | undefined, eos: string | null): string[] {
  const list = until === undefined ? [] : typeof until === 'string' ? [until] : [...until];
  if (eos !== null && !list.includes(eos)) list.push(eos);
  return list;
}

interface LegacyLogprobs {
  tokens: string[];
  token_logprobs: (number | null)[];
  top_logprobs: (Record<string, number> | null)[];
  text_offset: number[];
}
interface CompletionReply {
  choices: { index: number; text: string; logprobs: LegacyLogprobs | null; finish_reason: string }[];
  usage: { prompt_tokens: number; completion_tokens: number; total_tokens: number };
}

/** LocalCompletionsAPI.parse_logprobs. */
function parseLogprobs(out: CompletionReply, ctxlens: number[]): [number, boolean][] {
  const choices = [...out.choices].sort((a, b) => a.index - b.index);
  return choices.map((c, i) => {
    const ctxlen = ctxlens[i];
    assert.ok(ctxlen > 0);
    const lps = c.logprobs!.token_logprobs.slice(ctxlen, -1) as number[];
    const tops = c.logprobs!.top_logprobs.slice(ctxlen, -1) as Record<string, number>[];
    const greedy = lps.every((lp, j) => lp === Math.max(...Object.values(tops[j])));
    return [lps.reduce((a, b) => a + b, 0), greedy];
  });
}

/** utils.get_rolling_token_windows + make_disjoint_window. */
function rollingWindows(tokens: number[], prefix: number, maxSeqLen: number): [number[], number[]][] {
  const out: [number[], number[]][] = [];
  const contextLen = 1;
  const predLen = maxSeqLen - contextLen + 1;
  let predicted = 0;
  const first = Math.min(maxSeqLen, tokens.length);
  const raw: [number[], number[]][] = [[[prefix, ...tokens.slice(0, first - 1)], tokens.slice(0, first)]];
  predicted += first;
  while (predicted < tokens.length) {
    const n = Math.min(tokens.length - predicted, predLen);
    const end = predicted + n;
    raw.push([tokens.slice(Math.max(0, end - maxSeqLen - 1), end - 1), tokens.slice(end - n, end)]);
    predicted += n;
  }
  for (const [a, b] of raw) out.push([a.slice(0, a.length - (b.length - 1)), b]);
  return out;
}

// ------------------------------------------------------------------ the server

let child: ChildProcess;
let base = '';
let stderr = '';

before(async () => {
  child = spawn(
    process.execPath,
    [
      '--import',
      'tsx',
      join(ROOT, 'src', 'cli', 'run.ts'),
      'serve',
      CKPT,
      '--port',
      '0',
      '--served-model-name',
      NAME,
    ],
    { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  base = await new Promise<string>((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error(`serve did not start in 90 s:\n${stderr}`)), 90_000);
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /at (http:\/\/127\.0\.0\.1:\d+)\/v1 /.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]);
      }
    });
    child.on('exit', (code) => reject(new Error(`serve exited with ${code}:\n${stderr}`)));
  });
});

after(() => {
  if (child && child.exitCode === null) child.kill('SIGKILL');
});

async function post(path: string, body: unknown): Promise<CompletionReply> {
  const res = await fetch(base + path, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  const text = await res.text();
  assert.equal(res.status, 200, text);
  return JSON.parse(text) as CompletionReply;
}

const close = (a: number, b: number, what: string) =>
  assert.ok(Math.abs(a - b) <= 1e-4, `${what}: served ${a}, nuggets eval ${b}`);

// ------------------------------------------------------------------ tests

test('lm-eval loglikelihood payloads (MMLU, trailing space, empty context) score as nuggets eval does', async () => {
  const docs = loadMmlu(join(DATA, 'mmlu'), 'test', 'high_school_geography').slice(0, 3);
  const shots = loadMmlu(join(DATA, 'mmlu'), 'dev', 'high_school_geography').slice(0, 1);
  const reqs: { context: string; continuation: string }[] = [];
  for (const d of docs) {
    const context = mmluContext(d, shots);
    for (const l of MMLU_LETTERS) reqs.push({ context, continuation: ` ${l}` });
  }
  reqs.push(
    { context: 'Once upon a time, there was a ', continuation: 'little girl named Lily.' },
    { context: '', continuation: 'Once upon a time' },
    { context: 'Tom saw a big dog.', continuation: ' The dog barked at him and ran away.' },
  );
  const pairs = reqs.map((r) => encodePair(r.context, r.continuation));
  // the MMLU contexts fit (no truncation here: nuggets eval truncates to the model's 512, lm-eval to 511)
  for (const [c, k] of pairs) assert.ok(c.length + k.length <= MAX_LENGTH);
  const { inputs, ctxlens } = batchLoglikelihood(pairs);
  const reply = await post('/v1/completions', loglikelihoodPayload(inputs));
  assert.equal(reply.choices.length, reqs.length);
  // echo + max_tokens 1: every prompt token (the first with null) and the one generated token
  reply.choices.forEach((c, i) => {
    const lp = c.logprobs!;
    assert.equal(lp.tokens.length, inputs[i].length + 1);
    assert.equal(lp.token_logprobs[0], null);
    assert.equal(lp.top_logprobs[0], null);
    assert.equal(lp.text_offset.length, lp.tokens.length);
    assert.ok(lp.top_logprobs.slice(1).every((t) => t !== null && Object.keys(t).length >= 1));
  });
  assert.equal(
    reply.usage.prompt_tokens,
    inputs.reduce((a, x) => a + x.length, 0),
  );
  assert.equal(reply.usage.completion_tokens, reqs.length);
  const served = parseLogprobs(reply, ctxlens);
  const own = await lm.loglikelihood(reqs);
  let greedyCount = 0;
  served.forEach(([lp, greedy], i) => {
    close(lp, own[i].logprob, `request ${i}`);
    assert.equal(greedy, own[i].greedy, `greedy of request ${i}`);
    if (greedy) greedyCount++;
  });
  // the greedy flags are not all alike, so the comparison above can tell them apart
  assert.ok(greedyCount > 0 && greedyCount < reqs.length, `greedy ${greedyCount} of ${reqs.length}`);
  // the answer nuggets' MMLU would pick is the one lm-eval picks
  for (let q = 0; q < docs.length; q++) {
    const pick = (xs: number[]) => xs.indexOf(Math.max(...xs));
    assert.equal(
      pick(served.slice(4 * q, 4 * q + 4).map((x) => x[0])),
      pick(own.slice(4 * q, 4 * q + 4).map((x) => x.logprob)),
    );
  }
});

test('lm-eval loglikelihood_rolling windows over a long story sum to nuggets eval perplexity scoring', async () => {
  const text = heldOutStories(3).join('\n\n');
  // add_bos_token=False (lm-eval's default): the token list has no BOS, the first window is conditioned on it
  const tokens = tokEncode(text, false);
  const maxSeqLen = MAX_LENGTH - 1;
  assert.ok(tokens.length > maxSeqLen, `${tokens.length} tokens: more than one window`);
  const windows = rollingWindows(tokens, tok.bosId!, maxSeqLen);
  assert.ok(windows.length >= 2);
  const { inputs, ctxlens } = batchLoglikelihood(windows);
  const reply = await post('/v1/completions', loglikelihoodPayload(inputs));
  const total = parseLogprobs(reply, ctxlens).reduce((a, [lp]) => a + lp, 0);
  // nuggets eval's rolling windows with the same window length (lm-eval's max_length - 2)
  const own = await new ModelLM(model, tok, { maxLength: maxSeqLen }).loglikelihoodRolling([{ text }]);
  assert.equal(own[0].tokens, tokens.length);
  close(total, own[0].logprob, 'rolling loglikelihood');
});

test('lm-eval generate_until payloads (gsm8k kwargs, token and string prompts, chat) give nuggets eval text', async () => {
  const contexts = [
    'Question: Lily has 3 apples and buys 2 more. How many apples does she have?\nAnswer:',
    'Once upon a time, there was a little dog named Max.',
    'Tom and Sue went to the park. Question: what did they see?\nAnswer:',
  ];
  // gsm8k.yaml's generation_kwargs, with a short budget
  const genKwargs = {
    until: ['Question:', '</s>', '<|im_end|>'],
    do_sample: false,
    temperature: 0.0,
    max_gen_toks: 40,
  };
  const own = await lm.generate(
    contexts.map((prompt) => ({
      prompt,
      maxTokens: 40,
      stop: handleStopSequences(genKwargs.until, EOS_STRING),
      temperature: 0,
      seed: SEED,
    })),
  );
  // tokenized_requests=True: token lists, left-truncated to max_length - max_gen_toks
  const tokenPrompts = contexts.map((c) => tokEncode(c).slice(-(MAX_LENGTH - 40)));
  const payload = generatePayload(tokenPrompts, genKwargs);
  assert.deepEqual(payload.stop, ['Question:', '</s>', '<|im_end|>']);
  const byTokens = await post('/v1/completions', payload);
  // tokenized_requests=False: the strings, which the server encodes with BOS
  const byText = await post('/v1/completions', generatePayload(contexts, genKwargs));
  for (const reply of [byTokens, byText]) {
    const texts: string[] = [];
    for (const c of reply.choices) texts[c.index] = c.text;
    assert.deepEqual(texts, own);
    assert.ok(reply.choices.every((c) => c.logprobs === null));
  }
  assert.ok(own.some((t) => t.length > 0));

  // local-chat-completions (batch size 1, stop[:4]); the server renders its chat format
  const chatPayload = {
    messages: [{ role: 'user', content: contexts[1] }],
    model: NAME,
    max_tokens: 40,
    temperature: 0,
    stop: handleStopSequences(genKwargs.until, EOS_STRING).slice(0, 4),
    seed: SEED,
  };
  const chat = (await post('/v1/chat/completions', chatPayload)) as unknown as {
    choices: { message: { content: string } }[];
  };
  const engine = new ServeEngine(model, tok, {
    name: NAME,
    created: 0,
    model: CKPT,
    adapter: null,
    parameters: 0,
  });
  assert.equal(chat.choices[0].message.content, engine.run(parseChatRequest(chatPayload)).choices[0].text);
});

test('vendor fields lm-eval users pass through gen_kwargs are ignored, logged, and change nothing', async () => {
  const genKwargs = { until: ['\n\n'], max_gen_toks: 12, repetition_penalty: 1.3, min_p: 0.1, top_k: 1 };
  const payload = generatePayload(['Once upon a time'], genKwargs);
  const reply = await post('/v1/completions', payload);
  const own = await lm.generate([
    { prompt: 'Once upon a time', maxTokens: 12, stop: payload.stop, temperature: 0, seed: 0 },
  ]);
  assert.equal(reply.choices[0].text, own[0]);
  assert.match(stderr, /ignored request fields on \/v1\/completions: repetition_penalty, min_p/);
});

test('engine: logprobs equal a direct forward pass; top-k is sorted; EOS counts in completion_tokens, not text', () => {
  const engine = new ServeEngine(model, tok, {
    name: NAME,
    created: 0,
    model: CKPT,
    adapter: null,
    parameters: 0,
  });
  const prompt = 'Once upon a time, there was a little girl';
  const ids = tok.encode(prompt, { addBos: true });
  const r = engine.run(
    parseCompletionRequest({ model: NAME, prompt, max_tokens: 5, temperature: 0, logprobs: 3, echo: true }),
  );
  const c = r.choices[0];
  const lp = c.logprobs!;
  assert.equal(lp.tokens.length, ids.length + 5);
  assert.equal(lp.tokens[0], '<s>');
  assert.equal(c.text.slice(0, prompt.length), prompt);
  // token texts tile the text: each starts where the previous one's text ended
  for (let i = 1; i < lp.tokens.length; i++)
    assert.equal(c.text.slice(lp.text_offset[i], lp.text_offset[i] + lp.tokens[i].length), lp.tokens[i]);
  // a direct forward pass over the full sequence (float64 log-softmax)
  const gen = [...ids, ...generate(model, [ids], { maxNewTokens: 5, temperature: 0 })[0].tokens];
  const logits = model.forward({ ids: Int32Array.from(gen.slice(0, -1)), B: 1, T: gen.length - 1 });
  const V = model.config.vocabSize;
  for (let p = 1; p < gen.length; p++) {
    const row = Array.from(logits.subarray((p - 1) * V, p * V));
    const mx = Math.max(...row);
    const lse = mx + Math.log(row.reduce((a, x) => a + Math.exp(x - mx), 0));
    assert.ok(Math.abs((lp.token_logprobs[p] as number) - (row[gen[p]] - lse)) < 1e-4, `position ${p}`);
    const top = Object.values(lp.top_logprobs[p]!);
    assert.ok(top.length >= 3 && top.length <= 4);
    // greedy: the chosen token is the best one
    if (p >= ids.length) assert.equal(lp.token_logprobs[p], Math.max(...top));
  }
  // pure scoring: max_tokens 0 with echo
  const score = engine.run(
    parseCompletionRequest({ model: NAME, prompt: [ids], max_tokens: 0, echo: true, logprobs: 0 }),
  );
  assert.equal(score.completionTokens, 0);
  assert.deepEqual(score.choices[0].logprobs!.token_logprobs, lp.token_logprobs.slice(0, ids.length));
  assert.deepEqual(
    score.choices[0].logprobs!.top_logprobs.slice(1).map((t) => Object.keys(t!).length),
    ids.slice(1).map(() => 1),
  );

  // stories260K ends a story with BOS; a copy of the model that treats BOS as EOS stops on it
  const eosModel = LlamaModel.load(readLlama2c(CKPT));
  (eosModel.config as { eosTokenId: number[] }).eosTokenId = [tok.bosId!];
  const eosEngine = new ServeEngine(eosModel, tok, {
    name: NAME,
    created: 0,
    model: CKPT,
    adapter: null,
    parameters: 0,
  });
  const ended = eosEngine.run(
    parseCompletionRequest({
      model: NAME,
      prompt:
        'They played together all day. They were best friends. From that day on, they were always happy',
      max_tokens: 400,
      temperature: 0,
      logprobs: 0,
    }),
  );
  const e = ended.choices[0];
  assert.equal(e.finishReason, 'stop');
  assert.ok(ended.completionTokens < 400);
  assert.equal(e.logprobs!.tokens.length, ended.completionTokens);
  assert.equal(e.logprobs!.tokens.at(-1), '<s>');
  assert.ok(!e.text.includes('<s>'));
  // generate() leaves the EOS out of its tokens: the served count is those tokens plus the EOS
  const endPrompt = tok.encode(
    'They played together all day. They were best friends. From that day on, they were always happy',
    { addBos: true },
  );
  const raw = generate(eosModel, [endPrompt], { maxNewTokens: 400, temperature: 0 })[0];
  assert.equal(raw.finishReason, 'eos');
  assert.equal(ended.completionTokens, raw.tokens.length + 1);
});
