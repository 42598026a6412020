/**
 * The real pretrained stories260K (llama2.c legacy checkpoint): greedy decoding from BOS must print
 * exactly llama2.c's text, in llama2.c layout ('pairs' RoPE) and in HF layout (q/k rows permuted,
 * 'half' RoPE); and its mean next-token loss on held-out TinyStories must be 1.27 +/- 0.02 nats.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readLlama2c, permuteForHf } from '../src/io/llama2c.js';
import { Llama2cTokenizer } from '../src/io/tokenizer-llama2c.js';
import { LlamaModel } from '../src/model/model.js';
import { generate } from '../src/model/generate.js';
import { padBatch } from '../src/model/batch.js';
import { MemoryWeights } from '../src/model/weights.js';
import type { Tokenizer } from '../src/model/tokenizer.js';
import { convertLlama2cToHf } from '../src/io/convert.js';
import { openHfModel } from '../src/io/checkpoint.js';
import { loadTokenizer } from '../src/io/tokenizer-hf.js';
import { GOLDEN_TEXT, STORIES260K, heldOutStories } from './model-helpers.js';

const CKPT = join(STORIES260K, 'checkpoint_legacy.bin');
const tok = Llama2cTokenizer.fromFile(join(STORIES260K, 'tokenizer.bin'), 512);

function greedyFromBos(
  model: LlamaModel,
  tokenizer: Tokenizer = tok,
): { text: string; streamed: string; n: number } {
  let streamed = '';
  const [r] = generate(model, [[1]], {
    maxNewTokens: 200,
    tokenizer,
    onToken: (e) => (streamed += e.text),
  });
  return { text: r.text!, streamed, n: r.tokens.length };
}

test('stories260K (llama2.c layout, pair RoPE): greedy 200 tokens from BOS print the golden text', () => {
  const model = LlamaModel.load(readLlama2c(CKPT));
  const { text, streamed, n } = greedyFromBos(model);
  assert.equal(n, 200);
  assert.equal(text, GOLDEN_TEXT);
  assert.equal(streamed, GOLDEN_TEXT);
});

test('stories260K in HF layout (q/k rows permuted, rotate_half RoPE) prints the same golden text', () => {
  const { config, weights } = readLlama2c(CKPT);
  const tensors = new Map<string, { shape: number[]; data: Float32Array }>();
  for (const name of weights.names()) {
    const shape = weights.info(name).shape;
    let data = weights.get(name);
    const m = /self_attn\.(q|k)_proj\.weight$/.exec(name);
    if (m) data = permuteForHf(data, m[1] === 'q' ? config.numHeads : config.numKvHeads, shape[0], shape[1]);
    tensors.set(name, { shape, data });
  }
  const hf = LlamaModel.load({
    config: { ...config, ropeStyle: 'half' },
    weights: new MemoryWeights('hf-layout', tensors),
  });
  assert.equal(greedyFromBos(hf).text, GOLDEN_TEXT);
  // and without the permutation the 'half' model is a different function (the permutation matters)
  const wrong = LlamaModel.load({ config: { ...config, ropeStyle: 'half' }, weights });
  assert.notEqual(greedyFromBos(wrong).text, GOLDEN_TEXT);
});

test('stories260K converted to an HF folder (nuggets convert) and loaded back prints the golden text with its tokenizer.json', () => {
  const dir = mkdtempSync(join(tmpdir(), 'nuggets-golden-'));
  try {
    convertLlama2cToHf(CKPT, join(STORIES260K, 'tokenizer.bin'), dir);
    const hf = openHfModel(dir);
    assert.equal(hf.config.ropeStyle, 'half');
    const model = LlamaModel.load(hf);
    hf.weights.close();
    const { text, streamed } = greedyFromBos(model, loadTokenizer(dir));
    assert.equal(text, GOLDEN_TEXT);
    assert.equal(streamed, GOLDEN_TEXT);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('stories260K mean next-token loss on 40 held-out TinyStories stories is 1.27 +/- 0.02 nats', (t) => {
  const model = LlamaModel.load(readLlama2c(CKPT));
  const ctx = 256; // BOS + 255 tokens: 255 predictions per story at most
  const seqs = heldOutStories(40).map((s) => tok.encode(s, { addBos: true }).slice(0, ctx));
  assert.equal(seqs.length, 40);
  let sum = 0,
    count = 0;
  // 8 stories per batch, right-padded; every real token but the last predicts its successor
  for (let i = 0; i < seqs.length; i += 8) {
    const group = seqs.slice(i, i + 8);
    const batch = padBatch(group, 'right', 0);
    const targets = new Int32Array(batch.B * batch.T).fill(-1);
    group.forEach((s, b) => {
      for (let t = 0; t + 1 < s.length; t++) targets[b * batch.T + t] = s[t + 1];
    });
    const n = targets.reduce((a, t) => a + (t >= 0 ? 1 : 0), 0);
    sum += model.loss(batch, targets) * n;
    count += n;
  }
  const loss = sum / count;
  t.diagnostic(`held-out loss ${loss.toFixed(4)} nats over ${count} tokens`);
  assert.equal(count, 10081);
  assert.ok(Math.abs(loss - 1.27) <= 0.02, `held-out loss ${loss.toFixed(4)} nats over ${count} tokens`);
});
