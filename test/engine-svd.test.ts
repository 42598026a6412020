// SVD / QR / truncated SVD. Singular vectors are unique only up to sign, so the checks compare
// reconstructions, orthonormality, singular values (against a spectrum built in: A = Q1 diag(s) Q2^T,
// with Q1, Q2 from a Gram-Schmidt in test/helpers/linalg.ts, independent of the code under test) and subspaces
// (|u_ts . u_native| = 1 for well-separated values), never raw signs. These kernels are forward-only
// (docs/method.md step 4 factorises frozen teacher blocks), so there is no backward to check.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { tsKernels } from '../src/engine/ts/index.js';
import { loadNative } from '../src/engine/native.js';
import { Rng } from '../src/engine/rng.js';
import { AUTO_EXACT_MAX_SIDE, resolveSvdMethod, svdTopR } from '../src/engine/svd.js';
import type { Kernels } from '../src/engine/kernels.js';
import { orthonormal } from './helpers/linalg.js';

const native = loadNative().kernels;
const skipNative = native ? false : `native addon not loaded: ${loadNative().error}`;
const backends: Kernels[] = [tsKernels, ...(native ? [native] : [])];

/** A = Q1 diag(s) Q2^T [m, n] with the given singular values (length min(m, n)). */
function withSpectrum(
  m: number,
  n: number,
  s: number[],
  rng: Rng,
  ctor: typeof Float32Array | typeof Float64Array = Float32Array,
) {
  const k = Math.min(m, n);
  const Q1 = orthonormal(m, k, rng),
    Q2 = orthonormal(n, k, rng);
  const A = new ctor(m * n);
  const row = new Float64Array(n);
  for (let i = 0; i < m; i++) {
    row.fill(0);
    for (let q = 0; q < k; q++) {
      const f = Q1[i * k + q] * s[q];
      if (f !== 0) for (let j = 0; j < n; j++) row[j] += f * Q2[j * k + q];
    }
    for (let j = 0; j < n; j++) A[i * n + j] = row[j];
  }
  return A as Float32Array;
}

function randMat(m: number, n: number, rng: Rng): Float32Array {
  const A = new Float32Array(m * n);
  for (let i = 0; i < A.length; i++) A[i] = rng.normal();
  return A;
}

function frob(x: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < x.length; i++) s += x[i] * x[i];
  return Math.sqrt(s);
}

/** ||A - U diag(S) Vt||_F in float64 (U [m, r] with leading dimension ldu, Vt [r, n]). */
function residual(
  A: ArrayLike<number>,
  U: ArrayLike<number>,
  S: ArrayLike<number>,
  Vt: ArrayLike<number>,
  m: number,
  n: number,
  r: number,
  ldu = r,
): number {
  let e = 0;
  for (let i = 0; i < m; i++) {
    for (let j = 0; j < n; j++) {
      let v = A[i * n + j];
      for (let q = 0; q < r; q++) v -= U[i * ldu + q] * S[q] * Vt[q * n + j];
      e += v * v;
    }
  }
  return Math.sqrt(e);
}

/** max |X^T X - I| for X [rows, cols] row-major (columns orthonormal?). */
function orthColsError(X: ArrayLike<number>, rows: number, cols: number): number {
  let worst = 0;
  for (let a = 0; a < cols; a++) {
    for (let b = a; b < cols; b++) {
      let s = 0;
      for (let i = 0; i < rows; i++) s += X[i * cols + a] * X[i * cols + b];
      worst = Math.max(worst, Math.abs(s - (a === b ? 1 : 0)));
    }
  }
  return worst;
}

/** max |X X^T - I| for X [rows, cols] (rows orthonormal?). */
function orthRowsError(X: ArrayLike<number>, rows: number, cols: number): number {
  let worst = 0;
  for (let a = 0; a < rows; a++) {
    for (let b = a; b < rows; b++) {
      let s = 0;
      for (let j = 0; j < cols; j++) s += X[a * cols + j] * X[b * cols + j];
      worst = Math.max(worst, Math.abs(s - (a === b ? 1 : 0)));
    }
  }
  return worst;
}

const SHAPES: Array<[number, number]> = [
  [1, 1],
  [1, 5],
  [5, 1],
  [3, 3],
  [17, 3],
  [3, 17],
  [65, 17],
  [17, 65],
  [40, 40],
];

test('svd reconstructs A with orthonormal U, Vt and descending S, on odd shapes (both backends)', () => {
  const rng = new Rng(11);
  for (const [m, n] of SHAPES) {
    const A = randMat(m, n, rng);
    const A0 = A.slice();
    for (const k of backends) {
      const r = k.svd(A, m, n);
      const kk = Math.min(m, n);
      assert.equal(r.k, kk);
      assert.equal(r.U.length, m * kk);
      assert.equal(r.S.length, kk);
      assert.equal(r.Vt.length, kk * n);
      assert.deepEqual(A, A0, `${k.name} modified A`);
      const rel = residual(A, r.U, r.S, r.Vt, m, n, kk) / frob(A);
      assert.ok(rel < 2e-6, `${k.name} [${m},${n}] reconstruction ${rel}`);
      assert.ok(orthColsError(r.U, m, kk) < 2e-6, `${k.name} [${m},${n}] U not orthonormal`);
      assert.ok(orthRowsError(r.Vt, kk, n) < 2e-6, `${k.name} [${m},${n}] Vt not orthonormal`);
      for (let q = 1; q < kk; q++) assert.ok(r.S[q] <= r.S[q - 1], `${k.name} S not descending`);
      assert.ok(r.S[kk - 1] >= 0);
    }
  }
});

test('svd recovers a known spectrum (A = Q1 diag(s) Q2^T), and backends agree on values and vectors', () => {
  const rng = new Rng(12);
  for (const [m, n] of [
    [60, 24],
    [24, 60],
    [33, 33],
  ] as const) {
    const k = Math.min(m, n);
    const s = Array.from({ length: k }, (_, i) => 3 * Math.pow(0.8, i)); // well separated: gaps of 20%
    const A = withSpectrum(m, n, s, rng);
    const results = backends.map((b) => b.svd(A, m, n));
    for (const [bi, r] of results.entries()) {
      for (let q = 0; q < k; q++) {
        assert.ok(
          Math.abs(r.S[q] - s[q]) <= 2e-6 * s[0],
          `${backends[bi].name} [${m},${n}] S[${q}] = ${r.S[q]}, want ${s[q]}`,
        );
      }
    }
    if (results.length === 2) {
      const [t, nat] = results;
      for (let q = 0; q < k; q++) {
        assert.ok(Math.abs(t.S[q] - nat.S[q]) <= 1e-5 * t.S[0], `S[${q}] ts ${t.S[q]} vs native ${nat.S[q]}`);
      }
      // Same singular vectors up to sign wherever the value is well above float32 noise.
      for (let q = 0; q < k && s[q] > 1e-3 * s[0]; q++) {
        let du = 0,
          dv = 0;
        for (let i = 0; i < m; i++) du += t.U[i * k + q] * nat.U[i * k + q];
        for (let j = 0; j < n; j++) dv += t.Vt[q * n + j] * nat.Vt[q * n + j];
        assert.ok(
          Math.abs(Math.abs(du) - 1) < 1e-4 && Math.abs(du - dv) < 1e-4,
          `vector ${q}: u.u' = ${du}, v.v' = ${dv}`,
        );
      }
    }
  }
});

test('ts svd in float64 mode is accurate to float64 precision', () => {
  const rng = new Rng(13);
  const m = 30,
    n = 20;
  const s = Array.from({ length: n }, (_, i) => 1 / (1 + i));
  const A = withSpectrum(m, n, s, rng, Float64Array);
  const r = tsKernels.svd(A, m, n);
  assert.ok(r.U instanceof Float64Array && r.S instanceof Float64Array && r.Vt instanceof Float64Array);
  for (let q = 0; q < n; q++) assert.ok(Math.abs(r.S[q] - s[q]) < 1e-13, `S[${q}] = ${r.S[q]} want ${s[q]}`);
  assert.ok(residual(A, r.U, r.S, r.Vt, m, n, n) / frob(A) < 1e-14);
});

test('svd of a rank-deficient matrix keeps U and Vt orthonormal (zero singular values)', () => {
  for (const k of backends) {
    // Rank 2, 6 x 4, and an all-zero 3 x 2.
    const rng = new Rng(14);
    const X = randMat(6, 2, rng),
      Y = randMat(2, 4, rng);
    const A = new Float32Array(24);
    for (let i = 0; i < 6; i++)
      for (let j = 0; j < 4; j++) A[i * 4 + j] = X[i * 2] * Y[j] + X[i * 2 + 1] * Y[4 + j];
    const r = k.svd(A, 6, 4);
    assert.ok(r.S[2] < 1e-5 * r.S[0] && r.S[3] < 1e-5 * r.S[0], `${k.name} S = ${[...r.S]}`);
    assert.ok(orthColsError(r.U, 6, 4) < 2e-6, `${k.name} U`);
    assert.ok(orthRowsError(r.Vt, 4, 4) < 2e-6, `${k.name} Vt`);
    assert.ok(residual(A, r.U, r.S, r.Vt, 6, 4, 4) / frob(A) < 2e-6);
    const Z = k.svd(new Float32Array(6), 3, 2);
    assert.deepEqual([...Z.S], [0, 0]);
    assert.ok(
      orthColsError(Z.U, 3, 2) < 1e-6 && orthRowsError(Z.Vt, 2, 2) < 1e-6,
      `${k.name} zero matrix vectors`,
    );
  }
});

test('qr: orthonormal Q with Q Q^T A = A; backends agree up to column signs; m < n refused', () => {
  const rng = new Rng(15);
  for (const [m, n] of [
    [1, 1],
    [5, 1],
    [17, 3],
    [65, 17],
    [40, 40],
  ] as const) {
    const A = randMat(m, n, rng);
    const A0 = A.slice();
    const Qs = backends.map((k) => k.qr(A, m, n));
    for (const [bi, Q] of Qs.entries()) {
      const name = backends[bi].name;
      assert.deepEqual(A, A0, `${name} modified A`);
      assert.equal(Q.length, m * n);
      assert.ok(orthColsError(Q, m, n) < 2e-6, `${name} [${m},${n}] Q^T Q != I`);
      // Q Q^T A = A: A's columns lie in span(Q).
      let e = 0;
      for (let j = 0; j < n; j++) {
        const c = new Float64Array(n);
        for (let q = 0; q < n; q++) for (let i = 0; i < m; i++) c[q] += Q[i * n + q] * A[i * n + j];
        for (let i = 0; i < m; i++) {
          let v = A[i * n + j];
          for (let q = 0; q < n; q++) v -= Q[i * n + q] * c[q];
          e += v * v;
        }
      }
      assert.ok(Math.sqrt(e) / frob(A) < 2e-6, `${name} [${m},${n}] Q Q^T A != A`);
    }
    if (Qs.length === 2) {
      // Full-rank A: Q is unique up to the sign of each column.
      for (let q = 0; q < n; q++) {
        let d = 0;
        for (let i = 0; i < m; i++) d += Qs[0][i * n + q] * Qs[1][i * n + q];
        assert.ok(Math.abs(Math.abs(d) - 1) < 1e-4, `[${m},${n}] column ${q}: ${d}`);
      }
    }
  }
  for (const k of backends) {
    assert.throws(() => k.qr(new Float32Array(6), 2, 3), RangeError);
    assert.throws(() => k.svd(new Float32Array(5), 2, 3), RangeError);
    const bad = new Float32Array(6);
    bad[4] = NaN;
    assert.throws(
      () => k.svd(bad, 2, 3),
      { name: 'RangeError', message: /A\[4\] \(row 1, column 1\) is NaN/ },
      `${k.name} svd NaN`,
    );
    bad[4] = -Infinity;
    assert.throws(
      () => k.qr(bad, 3, 2),
      { name: 'RangeError', message: /A\[4\] \(row 2, column 0\) is infinite/ },
      `${k.name} qr Inf`,
    );
  }
  // A zero column (rank-deficient) still yields orthonormal Q.
  const D = new Float32Array([1, 0, 2, 0, 3, 0, 4, 0]);
  for (const k of backends) assert.ok(orthColsError(k.qr(D, 4, 2), 4, 2) < 1e-6, `${k.name} zero column`);
});

test('native svd and qr reject non-Float32Array input', { skip: skipNative }, () => {
  const A = new Float64Array(4) as unknown as Float32Array;
  assert.throws(() => native!.svd(A, 2, 2), TypeError);
  assert.throws(() => native!.qr(A, 2, 2), TypeError);
});

test('svdTopR exact = the first r triplets of the full SVD', () => {
  const rng = new Rng(16);
  const m = 41,
    n = 29,
    r = 5;
  const s = Array.from({ length: n }, (_, i) => 2 * Math.pow(0.7, i));
  const A = withSpectrum(m, n, s, rng);
  for (const k of backends) {
    const t = svdTopR(k, A, m, n, r);
    assert.equal(t.U.length, m * r);
    assert.equal(t.S.length, r);
    assert.equal(t.Vt.length, r * n);
    for (let q = 0; q < r; q++) assert.ok(Math.abs(t.S[q] - s[q]) < 2e-6 * s[0]);
    const optimal = Math.sqrt(s.slice(r).reduce((a, b) => a + b * b, 0));
    const err = residual(A, t.U, t.S, t.Vt, m, n, r);
    assert.ok(
      Math.abs(err - optimal) < 1e-5 * s[0],
      `${k.name} rank-${r} error ${err} vs optimal ${optimal}`,
    );
  }
  assert.throws(() => svdTopR(tsKernels, A, m, n, 0), RangeError);
  assert.throws(() => svdTopR(tsKernels, A, m, n, n + 1), RangeError);
  assert.throws(() => svdTopR(tsKernels, A, m, n + 1, 2), RangeError);
});

test('randomized rank-16 SVD error is within 1% of optimal on a 512x384 decaying spectrum', () => {
  const rng = new Rng(17);
  const m = 512,
    n = 384,
    r = 16;
  const s = Array.from({ length: n }, (_, i) => 1 / (1 + i)); // slow decay: the sketch has work to do
  const A = withSpectrum(m, n, s, rng);
  const optimal = Math.sqrt(s.slice(r).reduce((a, b) => a + b * b, 0)); // sqrt of the tail energy
  for (const k of backends) {
    const t = svdTopR(k, A, m, n, r, { method: 'randomized', seed: 3 });
    const err = residual(A, t.U, t.S, t.Vt, m, n, r);
    assert.ok(
      err <= 1.01 * optimal,
      `${k.name}: error ${err} vs optimal ${optimal} (ratio ${err / optimal})`,
    );
    assert.ok(err >= optimal * (1 - 1e-5), `${k.name}: error ${err} below the optimum ${optimal}?`);
    assert.ok(
      orthColsError(t.U, m, r) < 1e-5 && orthRowsError(t.Vt, r, n) < 1e-5,
      `${k.name} factors not orthonormal`,
    );
    for (let q = 0; q < r; q++)
      assert.ok(Math.abs(t.S[q] - s[q]) < 0.01 * s[q], `${k.name} S[${q}] = ${t.S[q]} vs ${s[q]}`);
    // The tolerance is not vacuous: without power iterations the same sketch misses it by far.
    const crude = svdTopR(k, A, m, n, r, { method: 'randomized', seed: 3, powerIters: 0 });
    assert.ok(
      residual(A, crude.U, crude.S, crude.Vt, m, n, r) > 1.1 * optimal,
      `${k.name}: q = 0 unexpectedly near-optimal`,
    );
  }
  // Same seed, same result; and float64 inputs stay float64 through the TS backend.
  const a = svdTopR(tsKernels, A, m, n, r, { method: 'randomized', seed: 9 });
  const b = svdTopR(tsKernels, A, m, n, r, { method: 'randomized', seed: 9 });
  assert.deepEqual(a.S, b.S);
  const A64 = Float64Array.from(A) as unknown as Float32Array;
  assert.ok(svdTopR(tsKernels, A64, m, n, r, { method: 'randomized' }).U instanceof Float64Array);
});

test("'auto' is the exact SVD up to 1024 on the smaller side and the randomized one above, bit for bit", () => {
  assert.equal(resolveSvdMethod('auto', 4096, AUTO_EXACT_MAX_SIDE), 'exact');
  assert.equal(resolveSvdMethod('auto', AUTO_EXACT_MAX_SIDE + 1, 11008), 'randomized');
  assert.equal(resolveSvdMethod('exact', 4096, 4096), 'exact');
  assert.equal(resolveSvdMethod('randomized', 8, 8), 'randomized');
  const k = backends[backends.length - 1];
  const rng = new Rng(5);
  const small = Float32Array.from({ length: 40 * 30 }, () => rng.normal());
  const ex = svdTopR(k, small, 40, 30, 4, { method: 'exact' });
  assert.deepEqual(svdTopR(k, small, 40, 30, 4, { method: 'auto' }), ex);
  // A wide matrix whose smaller side is 1025: only the sketch runs (gesdd would take seconds here).
  const m = AUTO_EXACT_MAX_SIDE + 1,
    n = 1100;
  const big = Float32Array.from({ length: m * n }, () => rng.normal());
  const rnd = svdTopR(k, big, m, n, 4, { method: 'randomized', seed: 2 });
  assert.deepEqual(svdTopR(k, big, m, n, 4, { method: 'auto', seed: 2 }), rnd);
  assert.notDeepEqual(svdTopR(k, big, m, n, 4, { method: 'auto', seed: 3 }).U, rnd.U);
});
