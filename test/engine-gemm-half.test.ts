// Products with half-precision (bf16 / f16) weights: the TS kernel against an independent float64
// triple loop over the widened weights, and the native kernel against the TS one, forward
// (Y = X W^T) and backward (dX = dY W), on odd shapes, leading dimensions, alpha/beta, with and
// without bf16 rounding of the activations; plus the half embedding lookup and sensitivity.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { tsKernels } from '../src/engine/ts/index.js';
import { loadNative } from '../src/engine/native.js';
import { Rng } from '../src/engine/rng.js';
import { f32ToBf16, f32ToF16, bf16ToF32, f16ToF32 } from '../src/engine/dtype.js';
import { roundBf16 } from '../src/engine/ts/gemm-half.js';
import type { HalfDtype } from '../src/engine/half.js';
import type { Kernels } from '../src/engine/kernels.js';

const native = loadNative().kernels;
const skipNative = native ? false : `native addon not loaded: ${loadNative().error}`;

function rand(n: number, rng: Rng): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = rng.uniform() * 2 - 1;
  return a;
}

function toHalf(x: Float32Array, dt: HalfDtype): Uint16Array {
  return dt === 'bf16' ? f32ToBf16(x) : f32ToF16(x);
}
function widen(h: Uint16Array, dt: HalfDtype): Float32Array {
  return dt === 'bf16' ? bf16ToF32(h) : f16ToF32(h);
}

interface Case {
  tb: boolean;
  M: number;
  N: number;
  K: number;
  lda: number;
  ldb: number;
  ldc: number;
  alpha: number;
  beta: number;
  dt: HalfDtype;
  bf16: boolean;
}

const SHAPES: Array<[number, number, number]> = [
  [7, 65, 33],
  [1, 65, 33],
  [3, 17, 100],
  [4, 40, 31],
  [33, 7, 65],
  [70, 130, 97],
];

function cases(): Case[] {
  const out: Case[] = [];
  let v = 0;
  for (const [M, N, K] of SHAPES)
    for (const tb of [true, false])
      for (const dt of ['bf16', 'f16'] as const)
        for (const bf16 of [false, true]) {
          const pad = v++ % 3;
          out.push({
            tb,
            M,
            N,
            K,
            lda: K + pad,
            ldb: (tb ? K : N) + pad,
            ldc: N + pad,
            alpha: pad === 1 ? -0.5 : 1,
            beta: pad === 2 ? 0.75 : 0,
            dt,
            bf16,
          });
        }
  return out;
}

function inputs(c: Case, seed: number) {
  const rng = new Rng(seed);
  const A = rand(c.M * c.lda, rng);
  const B = toHalf(rand((c.tb ? c.N : c.K) * c.ldb, rng), c.dt);
  const C0 = rand(c.M * c.ldc, rng);
  C0[0] = c.beta === 0 ? NaN : C0[0]; // beta = 0 must ignore C's old contents
  return { A, B, C0 };
}

/** float64 triple loop over the exactly widened weights, and each entry's error scale. */
function reference(c: Case, A: Float32Array, Bh: Uint16Array, C0: Float32Array) {
  const B = widen(Bh, c.dt);
  const out = new Float64Array(c.M * c.ldc);
  const scale = new Float64Array(c.M * c.ldc);
  for (let i = 0; i < c.M; i++)
    for (let j = 0; j < c.N; j++) {
      let s = 0,
        sa = 0;
      for (let p = 0; p < c.K; p++) {
        const a = c.bf16 ? roundBf16(A[i * c.lda + p]) : A[i * c.lda + p];
        const b = c.tb ? B[j * c.ldb + p] : B[p * c.ldb + j];
        s += a * b;
        sa += Math.abs(a * b);
      }
      const o = i * c.ldc + j;
      out[o] = c.alpha * s + (c.beta === 0 ? 0 : c.beta * C0[o]);
      scale[o] = Math.abs(c.alpha) * sa + (c.beta === 0 ? 0 : Math.abs(c.beta * C0[o])) + 1e-30;
    }
  return { out, scale };
}

function run(k: Kernels, c: Case, A: Float32Array, B: Uint16Array, C0: Float32Array): Float32Array {
  const C = C0.slice();
  k.gemmHalf(c.tb, c.M, c.N, c.K, c.alpha, A, c.lda, B, c.ldb, c.dt, c.beta, C, c.ldc, c.bf16);
  return C;
}

function name(c: Case): string {
  return `${c.tb ? 'Y=XW^T' : 'dX=dYW'} M=${c.M} N=${c.N} K=${c.K} ${c.dt}${c.bf16 ? ' compute bf16' : ''} a=${c.alpha} b=${c.beta}`;
}

test('gemmHalf (TS) equals a float64 loop over the widened weights, forward and backward', () => {
  cases().forEach((c, i) => {
    const { A, B, C0 } = inputs(c, 100 + i);
    const got = run(tsKernels, c, A, B, C0);
    const { out, scale } = reference(c, A, B, C0);
    for (let r = 0; r < c.M; r++)
      for (let j = 0; j < c.N; j++) {
        const o = r * c.ldc + j;
        const err = Math.abs(got[o] - out[o]) / scale[o];
        assert.ok(err < 2e-7, `${name(c)} at [${r},${j}]: ${got[o]} vs ${out[o]}`);
      }
    // padding columns of C are untouched
    for (let r = 0; r < c.M; r++)
      for (let j = c.N; j < c.ldc; j++) assert.equal(got[r * c.ldc + j], C0[r * c.ldc + j]);
  });
});

test('gemmHalf (native) agrees with the TS kernel on every route', { skip: skipNative }, () => {
  cases().forEach((c, i) => {
    const { A, B, C0 } = inputs(c, 100 + i);
    const want = run(tsKernels, c, A, B, C0);
    const got = run(native!, c, A, B, C0);
    const { scale } = reference(c, A, B, C0);
    for (let r = 0; r < c.M; r++)
      for (let j = 0; j < c.ldc; j++) {
        const o = r * c.ldc + j;
        if (j >= c.N) {
          assert.equal(got[o], C0[o], `${name(c)}: padding at [${r},${j}] written`);
          continue;
        }
        const err = Math.abs(got[o] - want[o]) / scale[o];
        assert.ok(err < 1e-5, `${name(c)} at [${r},${j}]: native ${got[o]} vs ts ${want[o]}`);
      }
  });
});

test('gemmHalf with computeBf16 = false equals the float32 GEMM on the upcast weights', () => {
  const rng = new Rng(7);
  const [M, N, K] = [7, 65, 33];
  const X = rand(M * K, rng);
  for (const dt of ['bf16', 'f16'] as const) {
    const Wh = toHalf(rand(N * K, rng), dt);
    const W = widen(Wh, dt);
    for (const k of native ? [tsKernels, native] : [tsKernels]) {
      const y = new Float32Array(M * N),
        y32 = new Float32Array(M * N);
      k.gemmHalf(true, M, N, K, 1, X, K, Wh, K, dt, 0, y, N, false);
      k.gemm(false, true, M, N, K, 1, X, K, W, K, 0, y32, N);
      for (let i = 0; i < y.length; i++) assert.ok(Math.abs(y[i] - y32[i]) <= 1e-5 * (1 + Math.abs(y32[i])));
      const dY = rand(M * N, rng);
      const dx = new Float32Array(M * K),
        dx32 = new Float32Array(M * K);
      k.gemmHalf(false, M, K, N, 1, dY, N, Wh, K, dt, 0, dx, K, false);
      k.gemm(false, false, M, K, N, 1, dY, N, W, K, 0, dx32, K);
      for (let i = 0; i < dx.length; i++)
        assert.ok(Math.abs(dx[i] - dx32[i]) <= 1e-5 * (1 + Math.abs(dx32[i])));
    }
  }
});

test('gemmHalf refuses a short weight, a bad ld and an unknown dtype', () => {
  for (const k of native ? [tsKernels, native] : [tsKernels]) {
    const A = new Float32Array(12),
      C = new Float32Array(12);
    assert.throws(
      () => k.gemmHalf(true, 3, 4, 4, 1, A, 4, new Uint16Array(15), 4, 'bf16', 0, C, 4, false),
      RangeError,
    );
    assert.throws(
      () => k.gemmHalf(true, 3, 4, 4, 1, A, 4, new Uint16Array(16), 3, 'bf16', 0, C, 4, false),
      RangeError,
    );
    assert.throws(() =>
      k.gemmHalf(true, 3, 4, 4, 1, A, 4, new Uint16Array(16), 4, 'fp8' as HalfDtype, 0, C, 4, false),
    );
  }
});

test('embeddingForwardHalf and sensAccumulateHalf equal their float32 forms on the widened values', () => {
  const rng = new Rng(11);
  const V = 37,
    d = 19,
    n = 9;
  const ids = Int32Array.from({ length: n }, (_, i) => (i * 7) % V);
  for (const dt of ['bf16', 'f16'] as const) {
    const Th = toHalf(rand(V * d, rng), dt);
    const T = widen(Th, dt);
    const want = new Float32Array(n * d);
    tsKernels.embeddingForward(want, ids, T, n, d);
    const g = rand(V * d, rng);
    const S0 = rand(V * d, rng).map(Math.abs);
    const Swant = S0.slice();
    tsKernels.sensAccumulate(Swant, T, g, V * d);
    for (const k of native ? [tsKernels, native] : [tsKernels]) {
      const got = new Float32Array(n * d);
      k.embeddingForwardHalf(got, ids, Th, dt, n, d);
      assert.deepEqual(got, want, `${k.name} ${dt} embedding`);
      assert.throws(() => k.embeddingForwardHalf(got, Int32Array.of(V), Th, dt, 1, d), RangeError);
      const S = S0.slice();
      k.sensAccumulateHalf(S, Th, dt, g, V * d);
      // float32 product then sum natively, one float64 expression in TS: equal up to one rounding
      for (let i = 0; i < S.length; i++)
        assert.ok(Math.abs(S[i] - Swant[i]) <= 2e-7 * Swant[i], `${k.name} ${dt} sensitivity [${i}]`);
    }
  }
});

test('widenHalf gives every bf16 and f16 bit pattern its exact float32 value (NaN, Inf, subnormals), native equal to TS', () => {
  const all = Uint16Array.from({ length: 65536 + 37 }, (_, i) => (i * 40503) & 0xffff); // odd length, every pattern
  for (const dt of ['bf16', 'f16'] as const) {
    const want = widen(all, dt);
    for (const k of native ? [tsKernels, native] : [tsKernels]) {
      const got = new Float32Array(all.length).fill(7);
      k.widenHalf(got, all, dt, all.length);
      // Object.is: -0 counts; a NaN only has to stay NaN (its payload may be quieted)
      let nans = 0;
      for (let i = 0; i < all.length; i++) {
        if (Number.isNaN(want[i])) nans++;
        if (!(Object.is(got[i], want[i]) || (Number.isNaN(got[i]) && Number.isNaN(want[i]))))
          assert.fail(`${k.name} ${dt}: bits 0x${all[i].toString(16)} gave ${got[i]}, expected ${want[i]}`);
      }
      assert.ok(
        nans > 200 && want.some((v) => Object.is(v, -0)) && want.includes(Infinity),
        'the patterns cover NaN, -0, Inf',
      );
      const part = new Float32Array(5).fill(7);
      k.widenHalf(part, all, dt, 3); // only n values are written
      assert.deepEqual(Array.from(part.subarray(3)), [7, 7], `${k.name} ${dt} n`);
      assert.throws(() => k.widenHalf(part, all.subarray(0, 2), dt, 3), RangeError);
    }
  }
});
