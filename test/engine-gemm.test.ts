// GEMM: the TS kernel against an independent float64 triple loop, and the native kernel against
// the TS one (1e-5 relative, scaled by |alpha| |op(A)| |op(B)| + |beta| |C|), over odd shapes, all
// transpose flags, leading dimensions, alpha/beta, sub-array views and the strided-batched form.
// There is no backward to check: the GEMM backward is itself two GEMMs with swapped flags.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { tsKernels } from '../src/engine/ts/index.js';
import { loadNative } from '../src/engine/native.js';
import { Rng } from '../src/engine/rng.js';
import type { Kernels } from '../src/engine/kernels.js';

const native = loadNative().kernels;
const skipNative = native ? false : `native addon not loaded: ${loadNative().error}`;

type Arr = Float32Array | Float64Array;

function randArr<T extends Arr>(ctor: new (n: number) => T, n: number, rng: Rng): T {
  const a = new ctor(n);
  for (let i = 0; i < n; i++) a[i] = rng.uniform() * 2 - 1;
  return a;
}

interface Case {
  ta: boolean;
  tb: boolean;
  M: number;
  N: number;
  K: number;
  alpha: number;
  beta: number;
  lda: number;
  ldb: number;
  ldc: number;
}

/** Stored shapes: A is [M, lda] or (transA) [K, lda]; likewise B; C is [M, ldc]. */
function sizes(c: Case) {
  return {
    a: (c.ta ? c.K : c.M) * c.lda,
    b: (c.tb ? c.N : c.K) * c.ldb,
    c: c.M * c.ldc,
  };
}

/** Independent reference: plain float64 triple loop, plus the per-element error scale. */
function reference(c: Case, A: ArrayLike<number>, B: ArrayLike<number>, C0: ArrayLike<number>) {
  const out = new Float64Array(c.M * c.ldc);
  const scale = new Float64Array(c.M * c.ldc);
  for (let i = 0; i < c.M; i++) {
    for (let j = 0; j < c.N; j++) {
      let s = 0,
        sa = 0;
      for (let p = 0; p < c.K; p++) {
        const a = c.ta ? A[p * c.lda + i] : A[i * c.lda + p];
        const b = c.tb ? B[j * c.ldb + p] : B[p * c.ldb + j];
        s += a * b;
        sa += Math.abs(a * b);
      }
      const old = c.beta === 0 ? 0 : C0[i * c.ldc + j];
      out[i * c.ldc + j] = c.alpha * s + c.beta * old;
      scale[i * c.ldc + j] = Math.abs(c.alpha) * sa + Math.abs(c.beta * old);
    }
    for (let j = c.N; j < c.ldc; j++) out[i * c.ldc + j] = C0[i * c.ldc + j]; // padding untouched
  }
  return { out, scale };
}

/** Asserts |got - want| <= tol * (scale + tiny) elementwise and that padding columns are untouched. */
function assertClose(
  got: ArrayLike<number>,
  want: ArrayLike<number>,
  scale: ArrayLike<number>,
  tol: number,
  what: string,
) {
  let worst = 0,
    at = -1;
  for (let i = 0; i < want.length; i++) {
    const err = Math.abs(got[i] - want[i]) / (scale[i] + 1e-30);
    if (!(err <= worst)) {
      worst = err;
      at = i;
    }
  }
  assert.ok(
    worst <= tol,
    `${what}: worst relative error ${worst} at ${at} (got ${got[at]}, want ${want[at]})`,
  );
}

function runGemm(k: Kernels, c: Case, A: Arr, B: Arr, C: Arr) {
  k.gemm(
    c.ta,
    c.tb,
    c.M,
    c.N,
    c.K,
    c.alpha,
    A as Float32Array,
    c.lda,
    B as Float32Array,
    c.ldb,
    c.beta,
    C as Float32Array,
    c.ldc,
  );
}

const DIMS = [1, 3, 17, 65];
function cases(rng: Rng): Case[] {
  const out: Case[] = [];
  const ab: Array<[number, number]> = [
    [1, 0],
    [0.5, 1],
    [-1.5, 0.25],
    [2, -1],
  ];
  let n = 0;
  for (const ta of [false, true])
    for (const tb of [false, true]) {
      for (const M of DIMS)
        for (const N of DIMS) {
          // One K per (M, N), cycling through the odd sizes and an extra 130 (crosses no block, but > 2 x 64).
          const K = [1, 3, 17, 65, 130][n % 5];
          const [alpha, beta] = ab[n % 4];
          const pad = n % 3; // leading dimensions wider than needed in a third of the cases
          const lda = (ta ? M : K) + pad,
            ldb = (tb ? K : N) + pad,
            ldc = N + (n % 2) * 2;
          out.push({ ta, tb, M, N, K, alpha, beta, lda, ldb, ldc });
          n++;
        }
    }
  // Sizes that cross the TS kernel's cache blocks (KC = 256, MC = 96) and leave edge tiles.
  out.push({ ta: false, tb: true, M: 101, N: 7, K: 300, alpha: 1, beta: 0.5, lda: 300, ldb: 300, ldc: 9 });
  out.push({ ta: true, tb: false, M: 197, N: 33, K: 513, alpha: -0.75, beta: 0, lda: 199, ldb: 33, ldc: 33 });
  void rng;
  return out;
}

test('ts gemm matches a float64 triple loop on odd shapes, all transposes, ld padding, alpha/beta', () => {
  const rng = new Rng(1);
  for (const c of cases(rng)) {
    const s = sizes(c);
    const A = randArr(Float32Array, s.a, rng),
      B = randArr(Float32Array, s.b, rng),
      C = randArr(Float32Array, s.c, rng);
    const { out, scale } = reference(c, A, B, C);
    runGemm(tsKernels, c, A, B, C);
    // Accumulation is float64; the only error left is the float32 store (and one per K block of 256).
    assertClose(C, out, scale, 1e-6, `ts ${JSON.stringify(c)}`);
  }
});

test('ts gemm on Float64Array keeps float64 precision (gradient-check mode)', () => {
  const rng = new Rng(2);
  for (const c of cases(rng).filter((_, i) => i % 3 === 0)) {
    const s = sizes(c);
    const A = randArr(Float64Array, s.a, rng),
      B = randArr(Float64Array, s.b, rng),
      C = randArr(Float64Array, s.c, rng);
    const { out, scale } = reference(c, A, B, C);
    runGemm(tsKernels, c, A, B, C);
    assertClose(C, out, scale, 1e-13, `ts f64 ${JSON.stringify(c)}`);
  }
});

test('ts gemm golden 2x3 * 3x2 with transposes', () => {
  // A = [[1,2,3],[4,5,6]], B = [[7,8],[9,10],[11,12]]: A B = [[58,64],[139,154]].
  const A = new Float32Array([1, 2, 3, 4, 5, 6]),
    B = new Float32Array([7, 8, 9, 10, 11, 12]);
  const At = new Float32Array([1, 4, 2, 5, 3, 6]),
    Bt = new Float32Array([7, 9, 11, 8, 10, 12]);
  for (const k of [tsKernels, ...(native ? [native] : [])]) {
    for (const [ta, tb, a, b, lda, ldb] of [
      [false, false, A, B, 3, 2],
      [true, false, At, B, 2, 2],
      [false, true, A, Bt, 3, 3],
      [true, true, At, Bt, 2, 3],
    ] as const) {
      const C = new Float32Array([1, 1, 1, 1]);
      k.gemm(ta, tb, 2, 2, 3, 2, a, lda, b, ldb, -1, C, 2);
      assert.deepEqual([...C], [115, 127, 277, 307], `${k.name} ta=${ta} tb=${tb}`);
    }
  }
});

test('native gemm agrees with ts to 1e-5 relative', { skip: skipNative }, () => {
  const rng = new Rng(3);
  for (const c of cases(rng)) {
    const s = sizes(c);
    const A = randArr(Float32Array, s.a, rng),
      B = randArr(Float32Array, s.b, rng),
      C = randArr(Float32Array, s.c, rng);
    const { scale } = reference(c, A, B, C);
    const Cts = C.slice(),
      Cn = C.slice();
    runGemm(tsKernels, c, A, B, Cts);
    runGemm(native!, c, A, B, Cn);
    assertClose(Cn, Cts, scale, 1e-5, `native vs ts ${JSON.stringify(c)}`);
  }
});

test('beta = 0 ignores NaN/Inf in C; K = 0 and alpha = 0 scale C by beta; M = 0 is a no-op', () => {
  for (const k of [tsKernels, ...(native ? [native] : [])]) {
    const A = new Float32Array([1, 2, 3, 4]),
      B = new Float32Array([1, 0, 0, 1]);
    const C = new Float32Array([NaN, Infinity, -Infinity, NaN]);
    k.gemm(false, false, 2, 2, 2, 1, A, 2, B, 2, 0, C, 2);
    assert.deepEqual([...C], [1, 2, 3, 4], `${k.name} beta=0`);
    const D = new Float32Array([1, 2, 3, 4]);
    k.gemm(false, false, 2, 2, 0, 1, A, 0, B, 2, 3, D, 2);
    assert.deepEqual([...D], [3, 6, 9, 12], `${k.name} K=0`);
    k.gemm(false, false, 2, 2, 2, 0, A, 2, B, 2, 0.5, D, 2);
    assert.deepEqual([...D], [1.5, 3, 4.5, 6], `${k.name} alpha=0`);
    const E = new Float32Array([NaN, NaN]);
    k.gemm(false, false, 2, 1, 0, 1, A, 0, B, 1, 0, E, 1);
    assert.deepEqual([...E], [0, 0], `${k.name} K=0 beta=0 clears NaN`);
    const F = new Float32Array([5]);
    k.gemm(false, false, 0, 1, 2, 1, A, 2, B, 1, 0, F, 1);
    assert.deepEqual([...F], [5], `${k.name} M=0`);
  }
});

test('gemm honours sub-array views (byte offsets) and leaves C padding untouched', () => {
  const rng = new Rng(4);
  const big = randArr(Float32Array, 400, rng);
  const A = big.subarray(7, 7 + 5 * 6),
    B = big.subarray(101, 101 + 6 * 4);
  const Cbuf = randArr(Float32Array, 3 + 5 * 6, rng);
  const c: Case = { ta: false, tb: false, M: 5, N: 4, K: 6, alpha: 1, beta: 1, lda: 6, ldb: 4, ldc: 6 };
  for (const k of [tsKernels, ...(native ? [native] : [])]) {
    const Cb = Cbuf.slice();
    const C = Cb.subarray(3);
    const { out, scale } = reference(c, A, B, C);
    runGemm(k, c, A, B, C);
    assertClose(C, out, scale, 1e-5, `${k.name} views`);
    assert.deepEqual([...Cb.subarray(0, 3)], [...Cbuf.subarray(0, 3)], `${k.name} wrote before the view`);
  }
});

test('gemmStridedBatched equals a loop of gemm (small: OpenMP path; large: sequential path)', () => {
  const rng = new Rng(5);
  const shapes: Case[] = [
    { ta: false, tb: true, M: 7, N: 5, K: 3, alpha: 0.5, beta: 0, lda: 3, ldb: 3, ldc: 5 },
    { ta: true, tb: false, M: 17, N: 9, K: 33, alpha: 1, beta: 1, lda: 19, ldb: 9, ldc: 11 },
    { ta: false, tb: false, M: 65, N: 70, K: 66, alpha: -1, beta: 0.5, lda: 66, ldb: 70, ldc: 70 }, // > 64^3 MACs
  ];
  for (const c of shapes) {
    const s = sizes(c);
    const batch = 6;
    // Strides larger than one matrix (gaps between them) to catch stride mix-ups.
    const sA = s.a + 2,
      sB = s.b + 1,
      sC = s.c + 3;
    const A = randArr(Float32Array, sA * batch, rng),
      B = randArr(Float32Array, sB * batch, rng);
    const C0 = randArr(Float32Array, sC * batch, rng);
    const want = C0.slice();
    for (let b = 0; b < batch; b++) {
      runGemm(tsKernels, c, A.subarray(b * sA), B.subarray(b * sB), want.subarray(b * sC));
    }
    const scale = new Float64Array(want.length);
    for (let b = 0; b < batch; b++) {
      scale.set(reference(c, A.subarray(b * sA), B.subarray(b * sB), C0.subarray(b * sC)).scale, b * sC);
    }
    for (let i = 0; i < scale.length; i++) if (scale[i] === 0) scale[i] = Math.abs(C0[i]); // gaps: must stay as they were
    for (const k of [tsKernels, ...(native ? [native] : [])]) {
      const C = C0.slice();
      k.gemmStridedBatched(
        c.ta,
        c.tb,
        c.M,
        c.N,
        c.K,
        c.alpha,
        A,
        c.lda,
        sA,
        B,
        c.ldb,
        sB,
        c.beta,
        C,
        c.ldc,
        sC,
        batch,
      );
      assertClose(C, want, scale, k === tsKernels ? 0 : 1e-5, `${k.name} batched ${JSON.stringify(c)}`);
    }
  }
});

test('bad sizes throw RangeError instead of reading out of bounds; native rejects non-Float32Array', () => {
  for (const k of [tsKernels, ...(native ? [native] : [])]) {
    const A = new Float32Array(6),
      B = new Float32Array(6),
      C = new Float32Array(4);
    assert.throws(
      () => k.gemm(false, false, 2, 2, 4, 1, A, 4, B, 2, 0, C, 2),
      RangeError,
      `${k.name} A too short`,
    );
    assert.throws(
      () => k.gemm(false, false, 2, 2, 3, 1, A, 2, B, 2, 0, C, 2),
      RangeError,
      `${k.name} lda < K`,
    );
    assert.throws(
      () => k.gemm(false, false, 2, 3, 3, 1, A, 3, B, 3, 0, C, 3),
      RangeError,
      `${k.name} C too short`,
    );
    assert.throws(
      () => k.gemm(false, false, -1, 2, 3, 1, A, 3, B, 2, 0, C, 2),
      RangeError,
      `${k.name} negative M`,
    );
    assert.throws(
      () => k.gemm(false, false, 2, 2, 1.5, 1, A, 3, B, 2, 0, C, 2),
      RangeError,
      `${k.name} fractional K`,
    );
    assert.throws(
      () => k.gemmStridedBatched(false, false, 2, 2, 3, 1, A, 3, 3, B, 2, 0, 0, C, 2, 0, 2),
      RangeError,
      `${k.name} batch overruns A`,
    );
  }
  if (native) {
    const A = new Float64Array(4) as unknown as Float32Array,
      B = new Float32Array(4),
      C = new Float32Array(4);
    assert.throws(() => native.gemm(false, false, 2, 2, 2, 1, A, 2, B, 2, 0, C, 2), TypeError);
    assert.throws(
      () => native.gemm(0 as unknown as boolean, false, 2, 2, 2, 1, B, 2, B, 2, 0, C, 2),
      TypeError,
    );
  }
});
