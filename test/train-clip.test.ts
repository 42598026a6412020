// Gradient-norm clipping (torch.nn.utils.clip_grad_norm_) as the LoRA trainer and pretrain use it:
// one global norm over several arrays, the factor's rounding, and non-finite norms left alone.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { clipGradNorm, gradNorm } from '../src/train/optimizer.js';

test('several arrays are clipped by one global norm, as one array holding all of them', () => {
  const a = Float32Array.from([3, -4, 1.5]),
    b = Float32Array.from([2, 0.25]);
  const joined = Float32Array.from([...a, ...b]);
  const want = Math.sqrt(9 + 16 + 2.25 + 4 + 0.0625);
  assert.equal(gradNorm([a, b]), want);
  assert.equal(clipGradNorm([a, b], 1), want);
  assert.equal(clipGradNorm(joined, 1), want);
  assert.deepEqual([...a, ...b], [...joined]);
  const after = gradNorm([a, b]);
  assert.ok(Math.abs(after - 1) < 1e-6, `norm after clipping ${after}`);
});

test('the factor is rounded to float32 first (trainer) or applied in float64 (pretrain)', () => {
  const g0 = Array.from({ length: 8 }, (_, i) => 3 * Math.sin(i * 7.3));
  const norm = Math.sqrt(g0.reduce((s, x) => s + Math.fround(x) ** 2, 0));
  const coef = 0.5 / (norm + 1e-6);
  const f32 = Float32Array.from(g0),
    f64 = Float32Array.from(g0);
  clipGradNorm(f32, 0.5, 'float32');
  clipGradNorm([f64], 0.5, 'float64');
  g0.forEach((x, i) => {
    assert.equal(f32[i], Math.fround(Math.fround(x) * Math.fround(coef)));
    assert.equal(f64[i], Math.fround(Math.fround(x) * coef));
  });
  // the two roundings differ somewhere (otherwise this test could not tell them apart)
  assert.ok(g0.some((_, i) => f32[i] !== f64[i]));
});

test('no clipping below the limit or with maxNorm 0; a non-finite norm leaves the gradients alone', () => {
  const g = Float32Array.from([0.3, 0.4]);
  assert.ok(Math.abs(clipGradNorm(g, 1) - 0.5) < 1e-7);
  assert.deepEqual([...g], [Math.fround(0.3), Math.fround(0.4)]);
  const big = Float32Array.from([30, 40]);
  assert.equal(clipGradNorm(big, 0), 50);
  assert.deepEqual([...big], [30, 40]);
  for (const bad of [Infinity, NaN]) {
    const a = Float32Array.from([1, 2]),
      b = Float32Array.from([bad, 3]);
    const n = clipGradNorm([a, b], 1, 'float64');
    assert.ok(!Number.isFinite(n));
    assert.deepEqual([...a], [1, 2]);
    assert.deepEqual([...b].slice(1), [3]);
  }
});
