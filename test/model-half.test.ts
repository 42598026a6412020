// A model whose weights stay bf16/f16 (as the file stores them) against the same weights upcast to
// float32: equal logits and gradients up to summation order with compute dtype f32, close with bf16
// activations; and sharded checkpoints (HF layout) load to the same params as one file.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openHfModel, writeHfModel } from '../src/io/checkpoint.js';
import { LlamaModel } from '../src/model/model.js';
import { loadAllParams, Param } from '../src/model/params.js';
import { f32ToBf16 } from '../src/engine/dtype.js';
import { float32View } from '../src/model/weights.js';
import { HalfArray, setComputeDtype } from '../src/engine/half.js';
import { kernels, setKernels } from '../src/engine/backend.js';
import { loadNative } from '../src/engine/native.js';
import { tsKernels } from '../src/engine/ts/index.js';
import { ROOT } from './model-helpers.js';

const TEACHER = join(ROOT, 'zoo', 'teacher-facts'); // stored bf16

const ids = Int32Array.from({ length: 2 * 13 }, (_, i) => (i * 37 + 5) % 512);
const batch = { ids, B: 2, T: 13 };

function maxDiff(a: Float32Array, b: Float32Array): number {
  assert.equal(a.length, b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

function maxAbs(a: Float32Array): number {
  let m = 0;
  for (const v of a) m = Math.max(m, Math.abs(v));
  return m;
}

/** Logits and dL/d(embedding table) of a loss over the batch. */
function run(m: LlamaModel) {
  m.enableGrads((n) => n === 'model.embed_tokens.weight');
  const logits = m.forward(batch).slice();
  const targets = Int32Array.from(ids, (v, i) => (i % 13 === 12 ? -1 : ids[i + 1]));
  m.zeroGrads();
  m.loss(batch, targets);
  m.backward();
  return { logits, grad: m.params.get('model.embed_tokens.weight').grad!.slice() };
}

for (const backend of ['native', 'ts'] as const) {
  test(
    `bf16 weights stay bf16 in memory and give the float32 model its logits and gradients (${backend})`,
    { skip: backend === 'native' && !loadNative().kernels ? 'no native addon' : false },
    () => {
      const previous = kernels();
      setKernels(backend === 'ts' ? tsKernels : loadNative().kernels!);
      try {
        const src = openHfModel(TEACHER);
        const half = new LlamaModel(src.config, loadAllParams(src.weights, src.config));
        const full = new LlamaModel(src.config, loadAllParams(float32View(src.weights), src.config));
        const q = half.params.get('model.layers.0.self_attn.q_proj.weight');
        assert.equal(q.half?.dtype, 'bf16');
        assert.equal(q.bytes, q.size * 2);
        assert.equal(half.params.get('model.norm.weight').half, null, 'vectors are float32');
        assert.equal(full.params.get('model.layers.0.self_attn.q_proj.weight').half, null);
        // the embedding is trainable here, so it is widened; every linear weight stays half
        const a = run(half),
          b = run(full);
        for (const p of half.params.unique())
          if (p.shape.length === 2 && p.name !== 'model.embed_tokens.weight')
            assert.ok(p.half, `${p.name} stayed half`);
        const dl = maxDiff(a.logits, b.logits);
        assert.ok(dl <= 2e-5 * maxAbs(b.logits), `logits differ by ${dl}`);
        const dg = maxDiff(a.grad, b.grad);
        assert.ok(dg <= 1e-4 * maxAbs(b.grad), `embedding gradients differ by ${dg} (max ${maxAbs(b.grad)})`);
        src.weights.close();
      } finally {
        setKernels(previous);
      }
    },
  );
}

test('compute dtype bf16 rounds the activations: logits close to, not equal to, float32', () => {
  const src = openHfModel(TEACHER);
  const full = new LlamaModel(src.config, loadAllParams(float32View(src.weights), src.config));
  const half = new LlamaModel(src.config, loadAllParams(src.weights, src.config));
  const want = full.forward(batch).slice();
  try {
    setComputeDtype('bf16');
    const got = half.forward(batch).slice();
    const d = maxDiff(got, want);
    assert.ok(d > 0, 'bf16 activations change the logits');
    assert.ok(d < 0.05 * maxAbs(want), `logits differ by ${d} of ${maxAbs(want)}`);
  } finally {
    setComputeDtype('f32');
    src.weights.close();
  }
});

test('f16 weights and a sharded checkpoint load to the same model', () => {
  const dir = mkdtempSync(join(tmpdir(), 'nuggets-half-'));
  try {
    const src = openHfModel(TEACHER);
    writeHfModel(dir, src.config, src.weights, { dtype: 'F16', maxShardBytes: 200_000 });
    const shards = readdirSync(dir).filter((f) => /^model-\d{5}-of-\d{5}\.safetensors$/.test(f));
    assert.ok(shards.length > 2, `sharded into ${shards.length} files`);
    const f16 = openHfModel(dir);
    const half = new LlamaModel(f16.config, loadAllParams(f16.weights, f16.config));
    const full = new LlamaModel(f16.config, loadAllParams(float32View(f16.weights), f16.config));
    assert.equal(half.params.get('lm_head.weight').half?.dtype, 'f16');
    const w = half.params.get('model.layers.5.mlp.down_proj.weight');
    assert.deepEqual(w.half!.toF32(), f16.weights.get(w.name));
    const a = half.forward(batch).slice(),
      b = full.forward(batch).slice();
    assert.ok(maxDiff(a, b) <= 2e-5 * maxAbs(b));
    src.weights.close();
    f16.weights.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a half Param widens to float32 once, when its float32 values are asked for', () => {
  const bits = f32ToBf16(Float32Array.of(1.5, -2, 0.25, 3));
  const p = new Param('w', [2, 2], new HalfArray('bf16', bits));
  assert.equal(p.size, 4);
  assert.equal(p.bytes, 8);
  const d = p.data;
  assert.deepEqual(d, Float32Array.of(1.5, -2, 0.25, 3));
  assert.equal(p.half, null);
  assert.equal(p.bytes, 16);
  assert.equal(p.data, d, 'widened once, then the same array');
  d[0] = 7; // edits in place stick (the LoRA subtract trick relies on it)
  assert.equal(p.data[0], 7);
});
