/**
 * KV-cache generation: cached decoding equals an uncached argmax over the full prefix (batched,
 * left-padded prompts of different lengths); seeded sampling, top-p, EOS, stop strings, streaming.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { Rng } from '../src/engine/rng.js';
import { randomModel, tinyConfig } from '../src/model/random.js';
import { generate, type TokenEvent } from '../src/model/generate.js';
import { argmax, sampleToken } from '../src/model/sampling.js';
import { readLlama2c } from '../src/io/llama2c.js';
import { Llama2cTokenizer } from '../src/io/tokenizer-llama2c.js';
import { LlamaModel } from '../src/model/model.js';
import type { Tokenizer } from '../src/model/tokenizer.js';
import { GOLDEN_TEXT, STORIES260K } from './model-helpers.js';

const cfg = tinyConfig({
  arch: 'qwen2',
  attentionBias: true,
  vocabSize: 40,
  hiddenSize: 24,
  numHeads: 4,
  numKvHeads: 2,
  headDim: 8,
  numLayers: 2,
  eosTokenId: [],
});

test('cached batched generation equals uncached argmax over the full prefix', () => {
  const model = randomModel(cfg, 5);
  const prompts = [
    [1, 7, 3, 9, 12],
    [1, 4],
    [1, 30, 22, 5, 6, 7, 8],
  ];
  const steps = 10;
  const res = generate(model, prompts, { maxNewTokens: steps });
  prompts.forEach((p, b) => {
    const seq = [...p];
    for (let s = 0; s < steps; s++) {
      const logits = model.forward({ ids: Int32Array.from(seq), B: 1, T: seq.length });
      seq.push(argmax(logits, (seq.length - 1) * cfg.vocabSize, cfg.vocabSize));
    }
    assert.deepEqual(res[b].tokens, seq.slice(p.length), `prompt ${b}`);
    assert.equal(res[b].finishReason, 'length');
  });
});

test('cached step logits equal the full forward at every position (left padding, decode steps)', () => {
  const model = randomModel(cfg, 6);
  const V = cfg.vocabSize;
  const prompts = [
    [1, 2, 3],
    [1, 5, 6, 7, 8, 9],
  ];
  const cont = [
    [10, 11, 12],
    [13, 14, 15],
  ];
  const T0 = 6,
    cap = T0 + 3;
  const cache = model.newCache(2, cap);
  const ids = Int32Array.from([0, 0, 0, 1, 2, 3, 1, 5, 6, 7, 8, 9]);
  const mask = Uint8Array.from([0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1]);
  cache.mask.set(mask.subarray(0, 6), 0);
  cache.mask.set(mask.subarray(6), cap);
  const pos = Int32Array.from([0, 0, 0, 0, 1, 2, 0, 1, 2, 3, 4, 5]);
  const stepLogits: Float32Array[] = [model.step(ids, 2, T0, pos, cache).slice()];
  for (let s = 0; s < 3; s++) {
    cache.mask[cache.length] = 1;
    cache.mask[cap + cache.length] = 1;
    const next = Int32Array.from([cont[0][s], cont[1][s]]);
    stepLogits.push(model.step(next, 2, 1, Int32Array.from([3 + s, 6 + s]), cache).slice());
  }
  for (let b = 0; b < 2; b++) {
    const full = [...prompts[b], ...cont[b]];
    const logits = model.forward({ ids: Int32Array.from(full), B: 1, T: full.length });
    for (let s = 0; s <= 3; s++) {
      const row = prompts[b].length - 1 + s;
      for (let v = 0; v < V; v++) {
        const want = logits[row * V + v],
          got = stepLogits[s][b * V + v];
        assert.ok(
          Math.abs(got - want) <= 1e-5 * (1 + Math.abs(want)),
          `seq ${b} step ${s} token ${v}: ${got} vs ${want}`,
        );
      }
    }
  }
});

test('seeded sampling is reproducible; a vanishing top-p is greedy', () => {
  const model = randomModel(cfg, 7);
  const prompts = [
    [1, 3],
    [1, 4, 5],
  ];
  const a = generate(model, prompts, { maxNewTokens: 12, temperature: 1.5, seed: 42 });
  const b = generate(model, prompts, { maxNewTokens: 12, temperature: 1.5, seed: 42 });
  const c = generate(model, prompts, { maxNewTokens: 12, temperature: 1.5, seed: 43 });
  assert.deepEqual(a, b);
  assert.notDeepEqual(
    a.map((r) => r.tokens),
    c.map((r) => r.tokens),
  );
  const greedy = generate(model, prompts, { maxNewTokens: 12 });
  const nucleus = generate(model, prompts, { maxNewTokens: 12, temperature: 1, topP: 1e-9, seed: 1 });
  assert.deepEqual(
    nucleus.map((r) => r.tokens),
    greedy.map((r) => r.tokens),
  );
});

test('temperature sampling follows softmax(logits / T); top-p never leaves the nucleus', () => {
  const logits = Float32Array.from([2, 1, 0, -1, 0.5]);
  const T = 0.7;
  const p = Array.from(logits, (l) => Math.exp(l / T));
  const z = p.reduce((a, b) => a + b);
  const probs = p.map((x) => x / z);
  const rng = new Rng(9);
  const n = 20000;
  const counts = new Array(5).fill(0);
  for (let i = 0; i < n; i++) counts[sampleToken(logits, 0, 5, { temperature: T }, rng)]++;
  for (let v = 0; v < 5; v++) {
    const sd = Math.sqrt((probs[v] * (1 - probs[v])) / n);
    assert.ok(
      Math.abs(counts[v] / n - probs[v]) < 5 * sd + 1e-9,
      `token ${v}: ${counts[v] / n} vs ${probs[v]}`,
    );
  }
  // probs at T=1: 0.563, 0.207, 0.076, 0.028, 0.126; top-p 0.7 keeps tokens 0 and 1 (mass 0.770)
  const seen = new Set<number>();
  for (let i = 0; i < 2000; i++) seen.add(sampleToken(logits, 0, 5, { temperature: 1, topP: 0.7 }, rng));
  assert.deepEqual([...seen].sort(), [0, 1]);
});

test('EOS ends a sequence (not included), the others continue; max tokens gives "length"', () => {
  const model = randomModel(cfg, 8);
  const prompts = [
    [1, 7, 3],
    [1, 8],
  ];
  const free = generate(model, prompts, { maxNewTokens: 8 });
  const eosTok = free[0].tokens[3];
  const firstAt = free[0].tokens.indexOf(eosTok);
  const events: TokenEvent[] = [];
  const res = generate(model, prompts, { maxNewTokens: 8, eosIds: [eosTok], onToken: (e) => events.push(e) });
  assert.deepEqual(res[0].tokens, free[0].tokens.slice(0, firstAt));
  assert.equal(res[0].finishReason, 'eos');
  const cut1 = free[1].tokens.indexOf(eosTok);
  assert.deepEqual(res[1].tokens, cut1 >= 0 ? free[1].tokens.slice(0, cut1) : free[1].tokens);
  // one event per generated token (EOS included) and one final event per sequence
  assert.equal(events.filter((e) => e.seq === 0).length, firstAt + 1);
  assert.equal(events.filter((e) => e.finishReason !== null).length, 2);
});

test('stop strings cut the text; streamed text equals the final text and never shows the stop string', () => {
  const tok = Llama2cTokenizer.fromFile(join(STORIES260K, 'tokenizer.bin'), 512);
  const model = LlamaModel.load(readLlama2c(join(STORIES260K, 'checkpoint_legacy.bin')));
  let streamed = '';
  const stop = 'big, red';
  const [r] = generate(model, [[1]], {
    maxNewTokens: 200,
    tokenizer: tok as Tokenizer,
    stop: [stop, 'never appears'],
    onToken: (e) => (streamed += e.text),
  });
  const want = GOLDEN_TEXT.slice(0, GOLDEN_TEXT.indexOf(stop));
  assert.equal(r.finishReason, 'stop');
  assert.equal(r.text, want);
  assert.equal(streamed, want);
  assert.ok(tok.decode(r.tokens).startsWith(want + stop));
});

test('generation stops at the context length; bad inputs are refused clearly', () => {
  const small = randomModel({ ...cfg, maxPositionEmbeddings: 6 }, 9);
  const [r] = generate(small, [[1, 2, 3, 4]], { maxNewTokens: 10 });
  // prompt at positions 0..3; tokens fed at 4 and 5; the token after position 5 is the last one
  assert.equal(r.tokens.length, 3);
  assert.equal(r.finishReason, 'length');
  assert.throws(() => generate(small, [[]], { maxNewTokens: 1 }), /empty/);
  assert.throws(() => generate(small, [[1]], { maxNewTokens: 1, temperature: -1 }), /temperature/);
  assert.throws(() => generate(small, [[1]], { maxNewTokens: 1, topP: 0 }), /top_p/);
  assert.throws(() => generate(small, [[1, 99]], { maxNewTokens: 1 }), /outside the vocabulary/);
  assert.throws(() => generate(small, [[1]], { maxNewTokens: 1, stop: ['x'] }), /tokenizer/);
});
