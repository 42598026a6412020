// docs/method.md step 4: scale·B·A is the best rank-r approximation (Eckart-Young), checked against a
// matrix whose spectrum is built in (independent of any SVD code) and against the full SVD.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { factorize } from '../src/transfer/factorize.js';
import { kernels } from '../src/engine/backend.js';
import { Rng } from '../src/engine/rng.js';
import { InputError } from '../src/errors.js';
import { knownSpectrum, matmul64, maxAbsDiff } from './transfer-helpers.js';

const SPECTRUM = [10, 7, 5, 3, 2, 1, 0.5];

test('alpha = r: B·A equals the rank-r truncation, B = U·s, A = Vh with orthonormal rows', () => {
  const n = 12,
    m = 9,
    r = 3;
  const { X, rankR } = knownSpectrum(n, m, SPECTRUM, new Rng(1));
  const f = factorize(X, n, m, r, 1, { method: 'exact' });
  assert.equal(f.B.length, n * r);
  assert.equal(f.A.length, r * m);
  assert.ok(maxAbsDiff(matmul64(f.B, f.A, n, r, m), rankR(r)) < 1e-5);
  const AAt = matmul64(
    f.A,
    Array.from({ length: m * r }, (_, i) => f.A[(i % r) * m + Math.floor(i / r)]),
    r,
    m,
    r,
  );
  assert.ok(maxAbsDiff(AAt, [1, 0, 0, 0, 1, 0, 0, 0, 1]) < 1e-5, 'rows of A are orthonormal');
  // All of the spectrum is in B: column c of B has norm s_c.
  for (let c = 0; c < r; c++) {
    let nn = 0;
    for (let i = 0; i < n; i++) nn += f.B[i * r + c] ** 2;
    assert.ok(Math.abs(Math.sqrt(nn) - SPECTRUM[c]) < 1e-4);
  }
  assert.ok(maxAbsDiff(f.singularValues, SPECTRUM.slice(0, r)) < 1e-4);
  const e = SPECTRUM.reduce((a, s) => a + s * s, 0);
  assert.ok(Math.abs(f.energyKept - (100 + 49 + 25) / e) < 1e-6);
  assert.ok(Math.abs(f.frobenius - Math.sqrt(e)) < 1e-4);
});

test('alpha != r: the init is divided by the scale so that scale·B·A is still the rank-r approximation', () => {
  const n = 10,
    m = 14,
    r = 4,
    alpha = 16,
    scale = alpha / r;
  const { X, rankR } = knownSpectrum(n, m, SPECTRUM, new Rng(2));
  const f = factorize(X, n, m, r, scale, { method: 'exact' });
  const BA = matmul64(f.B, f.A, n, r, m);
  const target = rankR(r);
  assert.ok(
    maxAbsDiff(
      BA.map((x) => x * scale),
      target,
    ) < 1e-5,
  );
  assert.ok(
    maxAbsDiff(
      BA,
      target.map((x) => x / scale),
    ) < 1e-5,
  );
  // A still carries no scale (orthonormal rows): B absorbed it.
  let a0 = 0;
  for (let j = 0; j < m; j++) a0 += f.A[j] ** 2;
  assert.ok(Math.abs(a0 - 1) < 1e-5);
});

test('matches the truncated full SVD on a general random matrix', () => {
  const n = 16,
    m = 11,
    r = 5;
  const X = new Rng(7).fillNormal(new Float32Array(n * m));
  const full = kernels().svd(X, n, m);
  const k = full.k;
  const Ur = new Float64Array(n * r),
    Vr = new Float64Array(r * m);
  for (let i = 0; i < n; i++) for (let c = 0; c < r; c++) Ur[i * r + c] = full.U[i * k + c] * full.S[c];
  for (let c = 0; c < r; c++) for (let j = 0; j < m; j++) Vr[c * m + j] = full.Vt[c * m + j];
  const f = factorize(X, n, m, r, 1, { method: 'exact' });
  assert.ok(maxAbsDiff(matmul64(f.B, f.A, n, r, m), matmul64(Ur, Vr, n, r, m)) < 1e-4);
  // Eckart-Young: the residual's squared norm is the energy of the dropped singular values.
  let res = 0,
    dropped = 0;
  const BA = matmul64(f.B, f.A, n, r, m);
  for (let i = 0; i < n * m; i++) res += (X[i] - BA[i]) ** 2;
  for (let c = r; c < k; c++) dropped += full.S[c] ** 2;
  assert.ok(Math.abs(res - dropped) / dropped < 1e-4);
});

test('randomized SVD gives the same rank-r product on a matrix with a decaying spectrum', () => {
  const n = 40,
    m = 30,
    r = 4;
  const s = Array.from({ length: 20 }, (_, i) => 10 * 0.5 ** i);
  const { X, rankR } = knownSpectrum(n, m, s, new Rng(5));
  const f = factorize(X, n, m, r, 2, { method: 'randomized', oversample: 8, powerIters: 2, seed: 3 });
  assert.ok(
    maxAbsDiff(
      matmul64(f.B, f.A, n, r, m).map((x) => 2 * x),
      rankR(r),
    ) < 1e-4,
  );
});

test('refusals: rank larger than the matrix, NaN, non-positive scale', () => {
  const X = new Float32Array(12).fill(1);
  assert.throws(
    () => factorize(X, 3, 4, 4, 1, { method: 'exact' }, 'q_proj'),
    (e: unknown) => e instanceof InputError && /rank 4 exceeds/.test(e.message) && /q_proj/.test(e.message),
  );
  assert.throws(() => factorize(X, 3, 4, 0, 1, { method: 'exact' }), /positive integer/);
  const bad = X.slice();
  bad[2] = NaN;
  assert.throws(() => factorize(bad, 3, 4, 2, 1, { method: 'exact' }), /NaN/);
  assert.throws(() => factorize(X, 3, 4, 2, 0, { method: 'exact' }), /scale/);
});

test('a zero block factorises to zero factors with energy kept 1', () => {
  const f = factorize(new Float32Array(20), 4, 5, 2, 1, { method: 'exact' });
  assert.ok(f.B.every((x) => x === 0));
  assert.equal(f.energyKept, 1);
});
