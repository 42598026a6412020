/**
 * The OpenAI request validation of `nuggets serve` (src/serve/protocol.ts): OpenAI's defaults, the
 * accepted shapes of prompt / stop / content, and for every kind of malformed field a 400 that names
 * the field (`param`) and says what is wrong; response and stream-chunk shapes.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  ApiError,
  chatResponse,
  completionResponse,
  parseChatRequest,
  parseCompletionRequest,
  sse,
  streamChunk,
  usageOf,
} from '../src/serve/protocol.js';

/** Asserts that fn throws a 400 ApiError for `param` (with `code` when given) whose message matches. */
function rejects400(fn: () => unknown, param: string | null, message: RegExp, code?: string): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof ApiError, `not an ApiError: ${String(e)}`);
    assert.equal(e.status, 400);
    assert.equal(e.param, param);
    assert.match(e.message, message);
    if (code) assert.equal(e.code, code);
    const b = e.body();
    assert.deepEqual(Object.keys(b.error).sort(), ['code', 'message', 'param', 'type']);
    assert.equal(b.error.type, 'invalid_request_error');
    return true;
  });
}

test('completions: OpenAI defaults and accepted prompt shapes', () => {
  const r = parseCompletionRequest({ model: 'm', prompt: 'hi', seed: 3 });
  assert.equal(r.kind, 'completion');
  assert.deepEqual(r.prompts, [{ text: 'hi' }]);
  assert.deepEqual(r.params, { maxTokens: 16, temperature: 1, topP: 1, topK: 0, n: 1, stop: [], seed: 3 });
  assert.equal(r.stream, false);
  assert.equal(r.echo, false);
  assert.deepEqual(parseCompletionRequest({ model: 'm', prompt: ['a', 'b'] }).prompts, [
    { text: 'a' },
    { text: 'b' },
  ]);
  assert.deepEqual(parseCompletionRequest({ model: 'm', prompt: [1, 5, 9] }).prompts, [{ ids: [1, 5, 9] }]);
  assert.deepEqual(parseCompletionRequest({ model: 'm', prompt: [[1, 2], [3]] }).prompts, [
    { ids: [1, 2] },
    { ids: [3] },
  ]);
  // null means "not given"; a single stop string becomes a list, empty strings are dropped
  const q = parseCompletionRequest({
    model: 'm',
    prompt: '',
    max_tokens: null,
    temperature: null,
    stop: 'END',
    top_k: -1,
    user: 'u',
  });
  assert.equal(q.params.maxTokens, 16);
  assert.equal(q.params.temperature, 1);
  assert.equal(q.params.topK, 0);
  assert.deepEqual(q.params.stop, ['END']);
  assert.deepEqual(parseCompletionRequest({ model: 'm', prompt: 'x', stop: ['a', '', 'b'] }).params.stop, [
    'a',
    'b',
  ]);
  // no seed: a fresh one per request
  const seeds = new Set(
    Array.from({ length: 8 }, () => parseCompletionRequest({ model: 'm', prompt: 'x' }).params.seed),
  );
  assert.ok(seeds.size > 1);
  assert.equal(
    parseCompletionRequest({ model: 'm', prompt: 'x', stream: true, stream_options: { include_usage: true } })
      .includeUsage,
    true,
  );
});

test('completions: malformed fields are 400s naming the field', () => {
  const ok = { model: 'm', prompt: 'x' };
  assert.throws(
    () => parseCompletionRequest([1, 2]),
    (e: ApiError) => e.status === 400 && /must be a JSON object, got an array/.test(e.message),
  );
  assert.throws(
    () => parseCompletionRequest('text'),
    (e: ApiError) => e.status === 400 && e.param === null,
  );
  rejects400(
    () => parseCompletionRequest({ prompt: 'x' }),
    'model',
    /you must provide 'model'/,
    'missing_required_parameter',
  );
  rejects400(
    () => parseCompletionRequest({ model: 5, prompt: 'x' }),
    'model',
    /'model' must be a string, got number 5/,
    'invalid_type',
  );
  rejects400(() => parseCompletionRequest({ model: 'm' }), 'prompt', /you must provide 'prompt'/);
  rejects400(() => parseCompletionRequest({ model: 'm', prompt: 7 }), 'prompt', /'prompt' must be a string/);
  rejects400(() => parseCompletionRequest({ model: 'm', prompt: [] }), 'prompt', /non-empty/);
  rejects400(() => parseCompletionRequest({ model: 'm', prompt: ['a', 3] }), 'prompt', /'prompt' must be/);
  rejects400(
    () => parseCompletionRequest({ model: 'm', prompt: [1, -2] }),
    'prompt[1]',
    /'prompt\[1\]' must be a token id \(an integer >= 0\), got -2/,
  );
  rejects400(
    () => parseCompletionRequest({ model: 'm', prompt: [[1], [3, -1]] }),
    'prompt[1][1]',
    /must be a token id/,
  );
  rejects400(
    () => parseCompletionRequest({ ...ok, temperature: 'hot' }),
    'temperature',
    /'temperature' must be a number, got string "hot"/,
    'invalid_type',
  );
  rejects400(
    () => parseCompletionRequest({ ...ok, temperature: 2.5 }),
    'temperature',
    /in \[0, 2\], got 2.5/,
    'invalid_value',
  );
  rejects400(() => parseCompletionRequest({ ...ok, top_p: 0 }), 'top_p', /in \(0, 1\], got 0/);
  rejects400(() => parseCompletionRequest({ ...ok, max_tokens: 1.5 }), 'max_tokens', /must be an integer/);
  rejects400(() => parseCompletionRequest({ ...ok, max_tokens: -1 }), 'max_tokens', />= 0, got -1/);
  rejects400(() => parseCompletionRequest({ ...ok, n: 0 }), 'n', /in \[1, 64\], got 0/);
  rejects400(() => parseCompletionRequest({ ...ok, n: 100 }), 'n', /in \[1, 64\], got 100/);
  rejects400(
    () => parseCompletionRequest({ model: 'm', prompt: ['a', 'b', 'c'], n: 30 }),
    'n',
    /90 choices; at most 64/,
  );
  const small = { maxChoices: 8, maxStop: 16 };
  rejects400(() => parseCompletionRequest({ ...ok, n: 9 }, small), 'n', /in \[1, 8\], got 9/);
  rejects400(
    () => parseCompletionRequest({ model: 'm', prompt: ['a', 'b', 'c'], n: 3 }, small),
    'n',
    /9 choices; at most 8/,
  );
  rejects400(() => parseCompletionRequest({ ...ok, seed: 1.5 }), 'seed', /must be an integer/);
  rejects400(() => parseCompletionRequest({ ...ok, stop: 1 }), 'stop', /string or an array of strings/);
  rejects400(
    () => parseCompletionRequest({ ...ok, stop: [1] }),
    'stop[0]',
    /'stop\[0\]' must be a string, got number 1/,
  );
  rejects400(() => parseCompletionRequest({ ...ok, stop: Array(17).fill('x') }), 'stop', /at most 16/);
  rejects400(() => parseCompletionRequest({ ...ok, stream: 'yes' }), 'stream', /must be a boolean/);
  rejects400(
    () => parseCompletionRequest({ ...ok, stream_options: { include_usage: true } }),
    'stream_options',
    /only allowed when 'stream' is true/,
  );
  rejects400(
    () => parseCompletionRequest({ ...ok, stream_options: 'yes', stream: true }),
    'stream_options',
    /'stream_options' must be an object, got string "yes"/,
    'invalid_type',
  );
  rejects400(
    () => parseCompletionRequest({ ...ok, logprobs: 21 }),
    'logprobs',
    /'logprobs' must be in \[0, 20\], got 21/,
  );
  rejects400(() => parseCompletionRequest({ ...ok, logprobs: 'x' }), 'logprobs', /must be an integer in/);
  rejects400(
    () => parseCompletionRequest({ ...ok, echo: 1 }),
    'echo',
    /'echo' must be a boolean, got number 1/,
  );
  rejects400(
    () => parseCompletionRequest({ ...ok, logprobs: 1, stream: true }),
    'logprobs',
    /with 'stream' is not supported/,
    'unsupported_parameter',
  );
  rejects400(() => parseCompletionRequest({ ...ok, seed: 2 ** 60 }), 'seed', /must be an integer/);
  // features not implemented are refused unless they ask for the default
  rejects400(
    () => parseCompletionRequest({ ...ok, presence_penalty: 0.5 }),
    'presence_penalty',
    /not supported/,
  );
  rejects400(() => parseCompletionRequest({ ...ok, suffix: 'end' }), 'suffix', /not supported/);
  rejects400(() => parseCompletionRequest({ ...ok, best_of: 3 }), 'best_of', /not supported/);
  assert.doesNotThrow(() =>
    parseCompletionRequest({
      ...ok,
      logprobs: null,
      presence_penalty: 0,
      frequency_penalty: 0,
      logit_bias: {},
      best_of: 1,
    }),
  );
});

test('chat: messages, content parts, roles, max_completion_tokens', () => {
  const r = parseChatRequest({
    model: 'm',
    messages: [
      { role: 'developer', content: 'be brief' },
      {
        role: 'user',
        content: [
          { type: 'text', text: 'Hello ' },
          { type: 'text', text: 'there' },
        ],
        name: 'x',
      },
    ],
    max_completion_tokens: 7,
    temperature: 0,
  });
  assert.deepEqual(r.messages, [
    { role: 'system', content: 'be brief' },
    { role: 'user', content: 'Hello there' },
  ]);
  assert.equal(r.params.maxTokens, 7);
  assert.equal(
    parseChatRequest({ model: 'm', messages: [{ role: 'user', content: 'x' }] }).params.maxTokens,
    null,
  ); // chat default: up to the context
  const ok = { model: 'm', messages: [{ role: 'user', content: 'x' }] };
  rejects400(() => parseChatRequest({ model: 'm' }), 'messages', /you must provide 'messages'/);
  rejects400(
    () => parseChatRequest({ model: 'm', messages: 'hi' }),
    'messages',
    /must be an array, got string/,
  );
  rejects400(
    () => parseChatRequest({ model: 'm', messages: [] }),
    'messages',
    /non-empty array, got 0 items/,
  );
  rejects400(
    () => parseChatRequest({ model: 'm', messages: ['hi'] }),
    'messages[0]',
    /must be an object, got string/,
  );
  rejects400(
    () => parseChatRequest({ model: 'm', messages: [{ role: 'robot', content: 'x' }] }),
    'messages[0].role',
    /"system", "user" or "assistant", got "robot"/,
  );
  rejects400(
    () => parseChatRequest({ model: 'm', messages: [{ role: 'user' }] }),
    'messages[0].content',
    /you must provide/,
  );
  rejects400(
    () => parseChatRequest({ model: 'm', messages: [{ role: 'user', content: 3 }] }),
    'messages[0].content',
    /string or an array of text parts/,
  );
  rejects400(
    () => parseChatRequest({ model: 'm', messages: [{ role: 'user', content: [{ type: 'image_url' }] }] }),
    'messages[0].content[0]',
    /only text/,
  );
  rejects400(() => parseChatRequest({ ...ok, max_tokens: 0 }), 'max_tokens', />= 1, got 0/);
  rejects400(
    () => parseChatRequest({ ...ok, max_tokens: 5, max_completion_tokens: 6 }),
    'max_tokens',
    /not two different values/,
  );
  rejects400(() => parseChatRequest({ ...ok, tools: [{ type: 'function' }] }), 'tools', /no tool calls/);
  rejects400(
    () => parseChatRequest({ ...ok, response_format: { type: 'json_object' } }),
    'response_format',
    /only \{"type": "text"\}/,
  );
  rejects400(
    () => parseChatRequest({ ...ok, logprobs: true }),
    'logprobs',
    /by \/v1\/completions only/,
    'unsupported_parameter',
  );
  assert.doesNotThrow(() =>
    parseChatRequest({ ...ok, tools: [], response_format: { type: 'text' }, logprobs: false }),
  );
});

test('unknown and vendor fields are accepted, ignored and listed; logprobs and echo are read', () => {
  // vLLM's rule: a typo or another server's extension does not fail the request; the server logs it
  const r = parseCompletionRequest({
    model: 'm',
    prompt: [[1, 2, 3]],
    temprature: 0,
    repetition_penalty: 1.1,
    min_p: 0.05,
    service_tier: 'auto',
    stream: true,
    stream_options: { include_usage: true, continuous_usage_stats: true },
  });
  assert.deepEqual(r.ignored, [
    'temprature',
    'repetition_penalty',
    'min_p',
    'service_tier',
    'stream_options.continuous_usage_stats',
  ]);
  assert.equal(r.params.temperature, 1); // the typo had no effect
  assert.equal(r.logprobs, null);
  assert.deepEqual(parseCompletionRequest({ model: 'm', prompt: 'x' }).ignored, []);
  const c = parseChatRequest({
    model: 'm',
    messages: [{ role: 'user', content: 'x', extra: 1 }],
    echo: true,
    top_k: 5,
  });
  assert.deepEqual(c.ignored, ['echo', 'messages[0].extra']);
  assert.equal(c.params.topK, 5);
  // lm-eval's local-completions loglikelihood payload: token lists, echo, logprobs 1, max_tokens 1
  const ll = parseCompletionRequest({
    model: 'm',
    prompt: [
      [1, 400, 30],
      [1, 400, 31, 7],
    ],
    temperature: 0,
    max_tokens: 1,
    logprobs: 1,
    seed: 1234,
    echo: true,
  });
  assert.deepEqual(ll.prompts, [{ ids: [1, 400, 30] }, { ids: [1, 400, 31, 7] }]);
  assert.equal(ll.echo, true);
  assert.equal(ll.logprobs, 1);
  assert.equal(ll.params.maxTokens, 1);
  assert.deepEqual(ll.ignored, []);
  // logprobs false (some clients) and 0 are both "no alternatives"; 0 still returns token logprobs
  assert.equal(parseCompletionRequest({ model: 'm', prompt: 'x', logprobs: false }).logprobs, null);
  assert.equal(parseCompletionRequest({ model: 'm', prompt: 'x', logprobs: 0 }).logprobs, 0);
  // a list of 64 prompts (lm-eval --batch_size 64) fits the default limit
  assert.equal(parseCompletionRequest({ model: 'm', prompt: Array(64).fill('x') }).prompts.length, 64);
});

test('response and stream-chunk shapes', () => {
  const meta = { id: 'cmpl-1', created: 100, model: 'm' };
  const usage = usageOf(5, 3);
  assert.deepEqual(usage, { prompt_tokens: 5, completion_tokens: 3, total_tokens: 8 });
  assert.deepEqual(completionResponse(meta, [{ text: ' hi', finishReason: 'length' }], usage), {
    id: 'cmpl-1',
    object: 'text_completion',
    created: 100,
    model: 'm',
    choices: [{ index: 0, text: ' hi', logprobs: null, finish_reason: 'length' }],
    usage,
  });
  assert.deepEqual(chatResponse(meta, [{ text: 'yo', finishReason: 'stop' }], usage).choices, [
    { index: 0, message: { role: 'assistant', content: 'yo' }, logprobs: null, finish_reason: 'stop' },
  ]);
  assert.deepEqual(streamChunk('chat', meta, { index: 1, text: 'a', role: true, finishReason: null }), {
    id: 'cmpl-1',
    object: 'chat.completion.chunk',
    created: 100,
    model: 'm',
    choices: [{ index: 1, delta: { role: 'assistant', content: 'a' }, logprobs: null, finish_reason: null }],
  });
  assert.deepEqual(streamChunk('chat', meta, { index: 0, finishReason: 'stop' }).choices, [
    { index: 0, delta: {}, logprobs: null, finish_reason: 'stop' },
  ]);
  assert.deepEqual(streamChunk('completion', meta, null, usage), {
    id: 'cmpl-1',
    object: 'text_completion',
    created: 100,
    model: 'm',
    choices: [],
    usage,
  });
  assert.equal(sse('[DONE]'), 'data: [DONE]\n\n');
  assert.equal(sse({ a: 1 }), 'data: {"a":1}\n\n');
});
