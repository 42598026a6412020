// Control inits: PEFT default LoRA init, PiSSA, random-matched; and the norm identity they rely on.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { loraDefaultInit, pissaInit, productNorm, randomMatched } from '../src/transfer/controls.js';
import { factorize } from '../src/transfer/factorize.js';
import { Rng } from '../src/engine/rng.js';
import { knownSpectrum, matmul64, maxAbsDiff } from './transfer-helpers.js';

function meanVar(x: ArrayLike<number>): [number, number] {
  let s = 0;
  for (let i = 0; i < x.length; i++) s += x[i];
  const mean = s / x.length;
  let v = 0;
  for (let i = 0; i < x.length; i++) v += (x[i] - mean) ** 2;
  return [mean, v / x.length];
}

test('LoRA default, Linear: A ~ U(-1/sqrt(in), 1/sqrt(in)) (kaiming a=sqrt(5)), B = 0', () => {
  const n = 50,
    m = 400,
    r = 16;
  const f = loraDefaultInit(n, m, r, false, new Rng(1));
  assert.equal(f.A.length, r * m);
  assert.equal(f.B.length, n * r);
  assert.ok(f.B.every((x) => x === 0));
  const bound = 1 / Math.sqrt(m);
  assert.ok(f.A.every((x) => Math.abs(x) <= bound));
  const [mean, v] = meanVar(f.A);
  assert.ok(Math.abs(mean) < 0.02 * bound);
  assert.ok(Math.abs(v / ((bound * bound) / 3) - 1) < 0.05, `variance ratio ${v / ((bound * bound) / 3)}`);
});

test('LoRA default, Embedding: A = 0, B ~ N(0, 1)', () => {
  const d = 400,
    V = 30,
    r = 16;
  const f = loraDefaultInit(d, V, r, true, new Rng(2));
  assert.ok(f.A.every((x) => x === 0));
  const [mean, v] = meanVar(f.B);
  assert.ok(Math.abs(mean) < 0.03);
  assert.ok(Math.abs(v - 1) < 0.05);
});

test('PiSSA: scale·B·A is the rank-r approximation, split sqrt(s/scale) on both sides', () => {
  const n = 12,
    m = 9,
    r = 3,
    scale = 2;
  const s = [10, 7, 5, 3, 2, 1];
  const { X, rankR } = knownSpectrum(n, m, s, new Rng(3));
  const f = pissaInit(X, n, m, r, scale, { method: 'exact' });
  assert.ok(
    maxAbsDiff(
      matmul64(f.B, f.A, n, r, m).map((x) => x * scale),
      rankR(r),
    ) < 1e-5,
  );
  for (let c = 0; c < r; c++) {
    let bn = 0,
      an = 0;
    for (let i = 0; i < n; i++) bn += f.B[i * r + c] ** 2;
    for (let j = 0; j < m; j++) an += f.A[c * m + j] ** 2;
    assert.ok(Math.abs(bn - s[c] / scale) < 1e-4, `||B col ${c}||^2 = s/scale`);
    assert.ok(Math.abs(an - s[c] / scale) < 1e-4, `||A row ${c}||^2 = s/scale`);
  }
});

test('productNorm equals ||B·A||_F computed explicitly', () => {
  const rng = new Rng(4);
  const n = 13,
    m = 7,
    r = 4;
  const B = rng.fillNormal(new Float32Array(n * r));
  const A = rng.fillNormal(new Float32Array(r * m));
  const BA = matmul64(B, A, n, r, m);
  const want = Math.sqrt(BA.reduce((a, x) => a + x * x, 0));
  assert.ok(Math.abs(productNorm({ B, A, n, m, r }) - want) < 1e-9 * want);
});

test('random-matched: same shapes, ||B·A||_F equal to the teacher-derived one, seeded', () => {
  const n = 20,
    m = 15,
    r = 4;
  const X = new Rng(5).fillNormal(new Float32Array(n * m));
  const teacher = factorize(X, n, m, r, 1, { method: 'exact' });
  const a = randomMatched(teacher, new Rng(6));
  const b = randomMatched(teacher, new Rng(6));
  assert.deepEqual(a.B, b.B);
  assert.equal(a.B.length, teacher.B.length);
  assert.equal(a.A.length, teacher.A.length);
  const norm = (f: { B: Float32Array; A: Float32Array }) =>
    Math.sqrt(matmul64(f.B, f.A, n, r, m).reduce((s, x) => s + x * x, 0));
  const want = norm(teacher);
  assert.ok(Math.abs(norm(a) - want) / want < 1e-5);
  // Not the teacher's direction: random factors are nearly orthogonal to it.
  const T = matmul64(teacher.B, teacher.A, n, r, m),
    R = matmul64(a.B, a.A, n, r, m);
  let dot = 0;
  for (let i = 0; i < T.length; i++) dot += T[i] * R[i];
  assert.ok(Math.abs(dot) / (want * want) < 0.5);
});
