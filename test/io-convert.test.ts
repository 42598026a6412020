import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, copyFileSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { convertLlama2cToHf } from '../src/io/convert.js';
import { openHfModel, writeHfModel } from '../src/io/checkpoint.js';
import { expectedShape, expectedTensorNames } from '../src/model/config.js';
import { MemoryWeights } from '../src/model/weights.js';
import { readLlama2c } from '../src/io/llama2c.js';
import { loadModelSource } from '../src/io/load.js';
import { HfTokenizer } from '../src/io/tokenizer-hf.js';
import { Llama2cTokenizer } from '../src/io/tokenizer-llama2c.js';
import { InputError } from '../src/errors.js';

const BIN = 'data/stories260k/checkpoint_legacy.bin';
const TOK = 'data/stories260k/tokenizer.bin';
const out = join(mkdtempSync(join(tmpdir(), 'nuggets-conv-')), 'stories260k-hf');
convertLlama2cToHf(BIN, TOK, out);

test('convert writes the HF folder files with the documented config', () => {
  assert.deepEqual(readdirSync(out).sort(), [
    'config.json',
    'generation_config.json',
    'model.safetensors',
    'tokenizer.json',
    'tokenizer_config.json',
  ]);
  const cfg = JSON.parse(readFileSync(join(out, 'config.json'), 'utf8'));
  assert.deepEqual(
    [
      cfg.model_type,
      cfg.architectures[0],
      cfg.max_position_embeddings,
      cfg.rms_norm_eps,
      cfg.rope_theta,
      cfg.tie_word_embeddings,
      cfg.bos_token_id,
      cfg.eos_token_id,
      cfg.torch_dtype,
      cfg.num_key_value_heads,
      cfg.hidden_act,
    ],
    ['llama', 'LlamaForCausalLM', 512, 1e-5, 10000, true, 1, 2, 'float32', 4, 'silu'],
  );
  assert.deepEqual(JSON.parse(readFileSync(join(out, 'generation_config.json'), 'utf8')), {
    _from_model_config: true,
    bos_token_id: 1,
    eos_token_id: 2,
  });
  const tc = JSON.parse(readFileSync(join(out, 'tokenizer_config.json'), 'utf8'));
  assert.deepEqual(
    [tc.bos_token, tc.eos_token, tc.unk_token, tc.model_max_length, tc.add_bos_token],
    ['<s>', '</s>', '<unk>', 512, true],
  );
  const tj = JSON.parse(readFileSync(join(out, 'tokenizer.json'), 'utf8'));
  assert.equal(tj.model.type, 'BPE');
  assert.equal(tj.model.byte_fallback, true);
  assert.equal(Object.keys(tj.model.vocab).length, 512);
});

/** Per-head attention logits q_h . k_{h/group} at positions (pq, pk), for both RoPE conventions. */
function logits(
  q: Float64Array,
  k: Float64Array,
  heads: number,
  kvHeads: number,
  hd: number,
  style: 'pairs' | 'half',
  pq: number,
  pk: number,
): number[] {
  const rope = (x: Float64Array, pos: number) => {
    const y = Float64Array.from(x);
    for (let h = 0; h < x.length; h += hd) {
      for (let j = 0; j < hd / 2; j++) {
        const [a, b] = style === 'pairs' ? [h + 2 * j, h + 2 * j + 1] : [h + j, h + j + hd / 2];
        const f = pos * 10000 ** (-(2 * j) / hd);
        y[a] = x[a] * Math.cos(f) - x[b] * Math.sin(f);
        y[b] = x[b] * Math.cos(f) + x[a] * Math.sin(f);
      }
    }
    return y;
  };
  const qr = rope(q, pq),
    kr = rope(k, pk);
  const out: number[] = [];
  for (let h = 0; h < heads; h++) {
    const g = Math.floor(h / (heads / kvHeads));
    let s = 0;
    for (let i = 0; i < hd; i++) s += qr[h * hd + i] * kr[g * hd + i];
    out.push(s);
  }
  return out;
}

test('converted q/k (HF permute, k with n_kv_heads) give the same attention logits under rotate_half', () => {
  const src = readLlama2c(BIN);
  const hf = openHfModel(out);
  assert.equal(hf.config.ropeStyle, 'half');
  const c = src.config;
  const x = Float64Array.from({ length: c.hiddenSize }, (_, i) => Math.cos(i * 0.7) + 0.1 * i);
  const mv = (w: Float32Array, rows: number) =>
    Float64Array.from({ length: rows }, (_, r) =>
      x.reduce((s, xv, col) => s + w[r * c.hiddenSize + col] * xv, 0),
    );
  for (const layer of [0, 4]) {
    const qn = `model.layers.${layer}.self_attn.q_proj.weight`,
      kn = `model.layers.${layer}.self_attn.k_proj.weight`;
    const kvd = c.numKvHeads * c.headDim;
    const a = logits(
      mv(src.weights.get(qn), c.hiddenSize),
      mv(src.weights.get(kn), kvd),
      c.numHeads,
      c.numKvHeads,
      c.headDim,
      'pairs',
      9,
      4,
    );
    const b = logits(
      mv(hf.weights.get(qn), c.hiddenSize),
      mv(hf.weights.get(kn), kvd),
      c.numHeads,
      c.numKvHeads,
      c.headDim,
      'half',
      9,
      4,
    );
    for (let h = 0; h < a.length; h++)
      assert.ok(
        Math.abs(a[h] - b[h]) < 1e-9 * (1 + Math.abs(a[h])),
        `layer ${layer} head ${h}: ${a[h]} vs ${b[h]}`,
      );
    // And the permutation is not the identity (the test would be vacuous otherwise).
    assert.notDeepEqual(src.weights.get(kn), hf.weights.get(kn));
  }
  // Every other tensor is copied bit for bit.
  for (const n of src.weights.names()) {
    if (/[qk]_proj/.test(n)) continue;
    assert.deepEqual(hf.weights.get(n), src.weights.get(n), n);
  }
  hf.weights.close();
});

test('loadModelSource: llama2.c file and converted folder give matching models and tokenizers', () => {
  const a = loadModelSource(BIN);
  const b = loadModelSource(out);
  assert.equal(a.format, 'llama2c');
  assert.equal(b.format, 'hf');
  assert.ok(a.tokenizer instanceof Llama2cTokenizer);
  assert.ok(b.tokenizer instanceof HfTokenizer);
  assert.deepEqual({ ...a.config, ropeStyle: 'half' }, b.config);
  const s = 'Lily and Tom went to the park. "Look!" she said.';
  assert.deepEqual(a.tokenizer.encode(s, { addBos: true }), b.tokenizer.encode(s, { addBos: true }));
  assert.equal(loadModelSource(join(out, 'model.safetensors')).format, 'hf');
  b.weights.close();
});

test('loadModelSource errors: missing tokenizer, wrong tokenizer, missing path', () => {
  const dir = mkdtempSync(join(tmpdir(), 'nuggets-load-'));
  copyFileSync(BIN, join(dir, 'model.bin'));
  assert.throws(
    () => loadModelSource(join(dir, 'model.bin')),
    (e: unknown) => e instanceof InputError && /needs its tokenizer/.test(e.message),
  );
  assert.equal(loadModelSource(join(dir, 'model.bin'), { tokenizer: TOK }).tokenizer.vocabSize, 512);
  // A model vocabulary padded beyond the tokenizer's is fine; a tokenizer bigger than the model is not.
  assert.equal(
    loadModelSource(join(dir, 'model.bin'), { tokenizer: 'fixtures/io/gpt2-bytelevel' }).tokenizer.vocabSize,
    276,
  );
  const small = join(dir, 'small');
  const cfg = { ...readLlama2c(BIN).config, vocabSize: 100, ropeStyle: 'half' as const };
  const tensors = new Map(
    expectedTensorNames(cfg).map((n) => {
      const shape = expectedShape(cfg, n);
      return [n, { shape, data: new Float32Array(shape.reduce((p, q) => p * q, 1)) }];
    }),
  );
  writeHfModel(small, cfg, new MemoryWeights('zeros', tensors));
  copyFileSync(join(out, 'tokenizer.json'), join(small, 'tokenizer.json'));
  assert.throws(
    () => loadModelSource(small),
    (e: unknown) =>
      e instanceof InputError && /tokenizer has 512 tokens but the model's vocab_size is 100/.test(e.message),
  );
  assert.throws(
    () => loadModelSource(join(dir, 'model.bin'), { tokenizer: join(dir, 'model.bin') }),
    InputError,
  );
  assert.throws(() => loadModelSource(join(dir, 'nothing')), /no such file or folder/);
});
