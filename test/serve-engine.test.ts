/**
 * The model side of `nuggets serve` (src/serve/engine.ts) in-process on stories260K: completion text
 * equals the eval adapter's greedy continuation (leading space kept), streamed deltas add up to the
 * final text, n sampled choices are the batched per-seed generation and reproducible, chat prompts
 * are the training renderer's Tulu ids, prompts beyond the context are 400s, cancellation stops a
 * generation, and the end-of-turn marker of a chat template is found.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { readLlama2c } from '../src/io/llama2c.js';
import { Llama2cTokenizer } from '../src/io/tokenizer-llama2c.js';
import { loadTokenizer } from '../src/io/tokenizer-hf.js';
import { LlamaModel } from '../src/model/model.js';
import { randomModel, tinyConfig } from '../src/model/random.js';
import { generate } from '../src/model/generate.js';
import { ModelLM } from '../src/eval/model-lm.js';
import { renderPrompt, TULU } from '../src/data/chat.js';
import { tokenizePieces } from '../src/data/encode.js';
import { templateFormat } from '../src/data/template.js';
import { Cancelled, ServeEngine, templateTurnEnd } from '../src/serve/engine.js';
import { ApiError, parseChatRequest, parseCompletionRequest } from '../src/serve/protocol.js';
import { ROOT, STORIES260K } from './model-helpers.js';

const tok = Llama2cTokenizer.fromFile(join(STORIES260K, 'tokenizer.bin'), 512);
const model = LlamaModel.load(readLlama2c(join(STORIES260K, 'checkpoint_legacy.bin')));
const engine = new ServeEngine(model, tok, {
  name: 's',
  created: 0,
  model: 'stories260k',
  adapter: null,
  parameters: 0,
});
const lm = new ModelLM(model, tok);

const completion = (body: Record<string, unknown>) => parseCompletionRequest({ model: 's', ...body });

test('completion: greedy text equals the eval adapter (leading space kept); deltas add up; usage', async () => {
  const prompt = 'Once upon a time, there was a dog named';
  const deltas: string[] = [];
  const r = engine.run(completion({ prompt, max_tokens: 24, temperature: 0 }), {
    onDelta: (c, t) => (assert.equal(c, 0), deltas.push(t)),
  });
  const [expect] = await lm.generate([{ prompt, maxTokens: 24, stop: [], temperature: 0, seed: 0 }]);
  assert.equal(r.choices[0].text, expect);
  assert.equal(r.choices[0].text[0], ' ');
  assert.equal(deltas.join(''), expect);
  assert.ok(deltas.length > 5, 'streamed in pieces');
  assert.equal(r.choices[0].finishReason, 'length');
  assert.equal(r.promptTokens, tok.encode(prompt, { addBos: true }).length);
  assert.equal(r.completionTokens, 24);
  // a stop string cuts the text before it, finish_reason "stop"
  const cut = expect.indexOf('.') >= 0 ? '.' : expect.slice(5, 7);
  const s = engine.run(completion({ prompt, max_tokens: 24, temperature: 0, stop: [cut] }));
  assert.equal(s.choices[0].text, expect.slice(0, expect.indexOf(cut)));
  assert.equal(s.choices[0].finishReason, 'stop');
  // echo: prompt + completion
  const e = engine.run(completion({ prompt, max_tokens: 24, temperature: 0, echo: true }));
  assert.equal(e.choices[0].text, prompt + expect);
  // token-id prompts are used as given
  const ids = tok.encode(prompt, { addBos: true });
  assert.equal(
    engine.run(completion({ prompt: ids, max_tokens: 24, temperature: 0 })).choices[0].text,
    expect,
  );
});

test('completion: n sampled choices are one batch with seeds seed+j, reproducible; several prompts', () => {
  const prompt = 'Lily went to the park';
  const req = completion({ prompt, max_tokens: 16, temperature: 1, top_p: 0.9, n: 3, seed: 11 });
  const a = engine.run(req);
  const b = engine.run(completion({ prompt, max_tokens: 16, temperature: 1, top_p: 0.9, n: 3, seed: 11 }));
  assert.deepEqual(a.choices, b.choices);
  assert.equal(a.completionTokens, 48);
  const ids = tok.encode(prompt, { addBos: true });
  const ref = generate(model, [ids, ids, ids], {
    maxNewTokens: 16,
    temperature: 1,
    topP: 0.9,
    seeds: [11, 12, 13],
    eosIds: [2],
  });
  const cont = (t: number[]) =>
    tok.decode([...ids, ...t], { skipSpecial: true }).slice(tok.decode(ids, { skipSpecial: true }).length);
  assert.deepEqual(
    a.choices.map((c) => c.text),
    ref.map((r) => cont(r.tokens)),
  );
  assert.ok(new Set(a.choices.map((c) => c.text)).size > 1, 'different seeds, different samples');
  // two prompts x n = 2: choices ordered prompt-major
  const two = engine.run(completion({ prompt: ['Tom', 'Sue'], max_tokens: 6, temperature: 0, n: 2 }));
  assert.equal(two.choices.length, 4);
  assert.equal(two.choices[0].text, two.choices[1].text);
  assert.notEqual(two.choices[0].text, two.choices[2].text);
  assert.equal(
    two.promptTokens,
    tok.encode('Tom', { addBos: true }).length + tok.encode('Sue', { addBos: true }).length,
  );
});

test('chat: Tulu prompt ids as training renders them; turn headers end the reply', () => {
  const messages = [
    { role: 'system' as const, content: 'You tell stories.' },
    { role: 'user' as const, content: 'Tell me about a cat.' },
  ];
  const ids = tokenizePieces(renderPrompt(messages, TULU), tok, { addBos: true }).ids;
  const r = engine.run(parseChatRequest({ model: 's', messages, max_tokens: 40, temperature: 0 }));
  assert.equal(r.promptTokens, ids.length);
  const [g] = generate(model, [ids], { maxNewTokens: 40, eosIds: [2] });
  const full = tok
    .decode([...ids, ...g.tokens], { skipSpecial: true })
    .slice(tok.decode(ids, { skipSpecial: true }).length);
  const stopAt = Math.min(
    ...['<|user|>', '<|assistant|>', '<|system|>'].map((s) =>
      full.includes(s) ? full.indexOf(s) : Infinity,
    ),
  );
  assert.equal(r.choices[0].text, Number.isFinite(stopAt) ? full.slice(0, stopAt) : full);
  assert.equal(engine.info.chatFormat, 'tulu');
  assert.equal(engine.info.contextLength, 512);
});

test('context limits are 400s (vLLM rule); out-of-vocabulary token ids are 400s', () => {
  const long = 'Once upon a time there was a cat. '.repeat(60); // > 512 tokens
  assert.throws(
    () => engine.run(completion({ prompt: long, max_tokens: 4 })),
    (e: ApiError) =>
      e.status === 400 &&
      e.code === 'context_length_exceeded' &&
      e.param === 'prompt' &&
      /maximum context length is 512 tokens/.test(e.message),
  );
  const ids = tok.encode('Once upon a time', { addBos: true });
  const near = [...ids, ...Array(500 - ids.length).fill(tok.encode(' the')[0])];
  assert.throws(
    () => engine.run(completion({ prompt: near, max_tokens: 20 })),
    (e: ApiError) =>
      e.status === 400 &&
      e.param === 'max_tokens' &&
      /you requested 520 tokens \(500 in the prompt, 20 for the completion\)/.test(e.message),
  );
  assert.equal(engine.run(completion({ prompt: near, max_tokens: 12, temperature: 0 })).completionTokens, 12);
  assert.throws(
    () => engine.run(completion({ prompt: [1, 600] })),
    (e: ApiError) =>
      e.status === 400 && /token id 600 .* outside the vocabulary \(512 tokens\)/.test(e.message),
  );
  // onStart only after the checks
  let started = false;
  assert.throws(
    () => engine.run(completion({ prompt: long }), { onStart: () => (started = true) }),
    ApiError,
  );
  assert.equal(started, false);
});

test('cancellation stops a running generation at the next token', () => {
  let n = 0;
  assert.throws(
    () =>
      engine.run(completion({ prompt: 'Once', max_tokens: 200, temperature: 0 }), {
        onDelta: () => n++,
        cancelled: () => n >= 3,
      }),
    Cancelled,
  );
  assert.ok(n >= 3 && n < 10, `stopped after ${n} deltas`);
});

test('chat with a tokenizer chat template (ChatML): prompt ids as training renders them', () => {
  const qwen = loadTokenizer(join(ROOT, 'fixtures', 'io', 'qwen2-bytelevel'));
  const tiny = randomModel(
    tinyConfig({ vocabSize: 278, bosTokenId: null, eosTokenId: [275], padTokenId: 275 }),
    4,
  );
  const e = new ServeEngine(tiny, qwen, {
    name: 'q',
    created: 0,
    model: 'tiny',
    adapter: null,
    parameters: 0,
  });
  assert.equal(e.info.chatFormat, 'template');
  const messages = [{ role: 'user' as const, content: 'Hello, who are you?' }];
  const r = e.run(parseChatRequest({ model: 'q', messages, max_tokens: 3, temperature: 0 }));
  const ids = tokenizePieces(renderPrompt(messages, templateFormat(qwen)), qwen, { addBos: true }).ids;
  assert.equal(r.promptTokens, ids.length);
  const header = qwen.encode('<|im_start|>assistant\n', { addBos: false });
  assert.equal(header[0], 276);
  assert.deepEqual(ids.slice(-header.length), header);
  assert.ok(r.completionTokens <= 3);
});

test('chat templates: the end-of-turn marker becomes an EOS id (one token) or a stop string', () => {
  const qwen = loadTokenizer(join(ROOT, 'fixtures', 'io', 'qwen2-bytelevel'));
  const chatml = templateFormat(qwen) as Parameters<typeof templateTurnEnd>[0];
  assert.deepEqual(templateTurnEnd(chatml, qwen), { eosIds: [277], stop: ['<|im_end|>'] });
  const llama2: Parameters<typeof templateTurnEnd>[0] = {
    kind: 'template',
    bosToken: '<s>',
    eosToken: '</s>',
    render: (ms, gen) =>
      ms.map((m) => (m.role === 'user' ? `[INST] ${m.content} [/INST]` : ` ${m.content} </s>`)).join('') +
      (gen ? '' : ''),
  };
  // "</s>" is plain text to the llama2.c tokenizer (several tokens): a stop string only
  assert.deepEqual(templateTurnEnd(llama2, tok), { eosIds: [], stop: ['</s>'] });
  const none: Parameters<typeof templateTurnEnd>[0] = {
    kind: 'template',
    bosToken: null,
    eosToken: null,
    render: (ms) => ms.map((m) => m.content).join('\n'),
  };
  assert.deepEqual(templateTurnEnd(none, tok), { eosIds: [], stop: [] });
});
