/**
 * GEMM in plain TypeScript: the reference for the native backend and the fallback when the addon
 * cannot load, so it is cache-blocked (Goto-style packing) rather than a naive triple loop.
 *
 * C[M,N] = alpha * op(A)[M,K] * op(B)[K,N] + beta * C, row-major, with leading dimensions.
 *
 * Precision: the packed panels are Float64Array, and accumulation is in float64, whatever the
 * input type. Float32 -> float64 is exact, so float32 inputs lose nothing, and Float64Array inputs
 * (float64 gradient checks, see alloc.ts) keep full double precision end to end.
 *
 * The backward of a GEMM is itself two GEMMs (dA = dC op(B)^T, dB = op(A)^T dC with the transpose
 * flags swapped accordingly), so there is no separate backward kernel to check here.
 */
import type { F32 } from '../kernels.js';

/** Micro-tile: MR rows of op(A) by NR columns of op(B), held in 16 local accumulators. */
const MR = 4;
const NR = 4;
/** Cache blocks: a KC x NR panel of B sits in L1, an MC x KC block of A in L2, KC x NC of B in L3. */
const KC = 256;
const MC = 96;
const NC = 2048;

let packA = new Float64Array(MC * KC);
let packB = new Float64Array(KC * NC);

function isInt(x: number): boolean {
  return Number.isInteger(x) && x >= 0;
}

/**
 * Throws a RangeError unless every index the GEMM touches lies inside its array. Shared by the
 * batched form (with the batch offsets) so a bad call fails loudly instead of reading garbage.
 */
export function checkGemmArgs(
  who: string,
  transA: boolean,
  transB: boolean,
  M: number,
  N: number,
  K: number,
  A: ArrayLike<number>,
  lda: number,
  offA: number,
  B: ArrayLike<number>,
  ldb: number,
  offB: number,
  C: ArrayLike<number>,
  ldc: number,
  offC: number,
): void {
  for (const [name, v] of [
    ['M', M],
    ['N', N],
    ['K', K],
    ['lda', lda],
    ['ldb', ldb],
    ['ldc', ldc],
  ] as const) {
    if (!isInt(v)) throw new RangeError(`${who}: ${name} must be a non-negative integer, got ${v}`);
  }
  const aRows = transA ? K : M,
    aCols = transA ? M : K;
  const bRows = transB ? N : K,
    bCols = transB ? K : N;
  if (lda < aCols) throw new RangeError(`${who}: lda=${lda} < ${aCols} (columns of A as stored)`);
  if (ldb < bCols) throw new RangeError(`${who}: ldb=${ldb} < ${bCols} (columns of B as stored)`);
  if (ldc < N) throw new RangeError(`${who}: ldc=${ldc} < N=${N}`);
  const need = (rows: number, cols: number, ld: number) =>
    rows === 0 || cols === 0 ? 0 : (rows - 1) * ld + cols;
  if (M > 0 && N > 0) {
    if (offC + need(M, N, ldc) > C.length) {
      throw new RangeError(`${who}: C needs ${offC + need(M, N, ldc)} elements, has ${C.length}`);
    }
    if (K > 0) {
      if (offA + need(aRows, aCols, lda) > A.length) {
        throw new RangeError(`${who}: A needs ${offA + need(aRows, aCols, lda)} elements, has ${A.length}`);
      }
      if (offB + need(bRows, bCols, ldb) > B.length) {
        throw new RangeError(`${who}: B needs ${offB + need(bRows, bCols, ldb)} elements, has ${B.length}`);
      }
    }
  }
}

export function gemm(
  transA: boolean,
  transB: boolean,
  M: number,
  N: number,
  K: number,
  alpha: number,
  A: F32,
  lda: number,
  B: F32,
  ldb: number,
  beta: number,
  C: F32,
  ldc: number,
): void {
  checkGemmArgs('gemm', transA, transB, M, N, K, A, lda, 0, B, ldb, 0, C, ldc, 0);
  gemmAt(transA, transB, M, N, K, alpha, A, lda, 0, B, ldb, 0, beta, C, ldc, 0);
}

export function gemmStridedBatched(
  transA: boolean,
  transB: boolean,
  M: number,
  N: number,
  K: number,
  alpha: number,
  A: F32,
  lda: number,
  strideA: number,
  B: F32,
  ldb: number,
  strideB: number,
  beta: number,
  C: F32,
  ldc: number,
  strideC: number,
  batch: number,
): void {
  for (const [name, v] of [
    ['strideA', strideA],
    ['strideB', strideB],
    ['strideC', strideC],
    ['batch', batch],
  ] as const) {
    if (!isInt(v))
      throw new RangeError(`gemmStridedBatched: ${name} must be a non-negative integer, got ${v}`);
  }
  if (batch === 0) return;
  // The last matrix reaches furthest; checking it (and the first) covers every one in between.
  const last = batch - 1;
  checkGemmArgs(
    'gemmStridedBatched',
    transA,
    transB,
    M,
    N,
    K,
    A,
    lda,
    last * strideA,
    B,
    ldb,
    last * strideB,
    C,
    ldc,
    last * strideC,
  );
  for (let b = 0; b < batch; b++) {
    gemmAt(
      transA,
      transB,
      M,
      N,
      K,
      alpha,
      A,
      lda,
      b * strideA,
      B,
      ldb,
      b * strideB,
      beta,
      C,
      ldc,
      b * strideC,
    );
  }
}

/** The blocked GEMM on arrays with element offsets (arguments already checked). */
function gemmAt(
  transA: boolean,
  transB: boolean,
  M: number,
  N: number,
  K: number,
  alpha: number,
  A: F32,
  lda: number,
  offA: number,
  B: F32,
  ldb: number,
  offB: number,
  beta: number,
  C: F32,
  ldc: number,
  offC: number,
): void {
  if (M === 0 || N === 0) return;
  // Apply beta once up front; the blocked loops then only accumulate. beta = 0 overwrites, so
  // NaN/Inf in C's old contents never leak into the result (BLAS semantics).
  if (beta === 0) {
    for (let i = 0; i < M; i++) C.fill(0, offC + i * ldc, offC + i * ldc + N);
  } else if (beta !== 1) {
    for (let i = 0; i < M; i++) {
      const r = offC + i * ldc;
      for (let j = 0; j < N; j++) C[r + j] *= beta;
    }
  }
  if (K === 0 || alpha === 0) return;

  for (let jc = 0; jc < N; jc += NC) {
    const nc = Math.min(NC, N - jc);
    for (let pc = 0; pc < K; pc += KC) {
      const kc = Math.min(KC, K - pc);
      const bp = packPanelB(B, transB, ldb, offB, pc, jc, kc, nc);
      for (let ic = 0; ic < M; ic += MC) {
        const mc = Math.min(MC, M - ic);
        const ap = packPanelA(A, transA, lda, offA, ic, pc, mc, kc);
        for (let jr = 0; jr < nc; jr += NR) {
          const nr = Math.min(NR, nc - jr);
          const bOff = (jr / NR) * kc * NR;
          for (let ir = 0; ir < mc; ir += MR) {
            const mr = Math.min(MR, mc - ir);
            micro(
              kc,
              ap,
              (ir / MR) * kc * MR,
              bp,
              bOff,
              alpha,
              C,
              offC + (ic + ir) * ldc + jc + jr,
              ldc,
              mr,
              nr,
            );
          }
        }
      }
    }
  }
}

/**
 * Packs op(A)[ic:ic+mc, pc:pc+kc] into MR-row micro-panels, k-major inside each panel
 * (panel q holds rows q*MR.. as [p*MR + r]); rows past mc are zero-padded.
 */
function packPanelA(
  A: F32,
  transA: boolean,
  lda: number,
  offA: number,
  ic: number,
  pc: number,
  mc: number,
  kc: number,
): Float64Array {
  const panels = Math.ceil(mc / MR);
  if (packA.length < panels * MR * kc) packA = new Float64Array(panels * MR * kc);
  const out = packA;
  for (let q = 0; q < panels; q++) {
    const base = q * MR * kc;
    for (let r = 0; r < MR; r++) {
      const i = q * MR + r;
      if (i >= mc) {
        for (let p = 0; p < kc; p++) out[base + p * MR + r] = 0;
      } else if (!transA) {
        const src = offA + (ic + i) * lda + pc;
        for (let p = 0; p < kc; p++) out[base + p * MR + r] = A[src + p];
      } else {
        let src = offA + pc * lda + ic + i;
        for (let p = 0; p < kc; p++, src += lda) out[base + p * MR + r] = A[src];
      }
    }
  }
  return out;
}

/** Packs op(B)[pc:pc+kc, jc:jc+nc] into NR-column micro-panels ([p*NR + c]); zero-padded. */
function packPanelB(
  B: F32,
  transB: boolean,
  ldb: number,
  offB: number,
  pc: number,
  jc: number,
  kc: number,
  nc: number,
): Float64Array {
  const panels = Math.ceil(nc / NR);
  if (packB.length < panels * NR * kc) packB = new Float64Array(panels * NR * kc);
  const out = packB;
  for (let q = 0; q < panels; q++) {
    const base = q * NR * kc;
    const j0 = q * NR;
    const w = Math.min(NR, nc - j0);
    if (!transB) {
      for (let p = 0; p < kc; p++) {
        const src = offB + (pc + p) * ldb + jc + j0;
        const dst = base + p * NR;
        for (let c = 0; c < w; c++) out[dst + c] = B[src + c];
        for (let c = w; c < NR; c++) out[dst + c] = 0;
      }
    } else {
      for (let c = 0; c < NR; c++) {
        if (c >= w) {
          for (let p = 0; p < kc; p++) out[base + p * NR + c] = 0;
        } else {
          const src = offB + (jc + j0 + c) * ldb + pc;
          for (let p = 0; p < kc; p++) out[base + p * NR + c] = B[src + p];
        }
      }
    }
  }
  return out;
}

/** C[0:mr, 0:nr] += alpha * (packed A panel) x (packed B panel), 4x4 register tile. */
function micro(
  kc: number,
  ap: Float64Array,
  ai: number,
  bp: Float64Array,
  bi: number,
  alpha: number,
  C: F32,
  c0: number,
  ldc: number,
  mr: number,
  nr: number,
): void {
  let c00 = 0,
    c01 = 0,
    c02 = 0,
    c03 = 0;
  let c10 = 0,
    c11 = 0,
    c12 = 0,
    c13 = 0;
  let c20 = 0,
    c21 = 0,
    c22 = 0,
    c23 = 0;
  let c30 = 0,
    c31 = 0,
    c32 = 0,
    c33 = 0;
  for (let p = 0; p < kc; p++) {
    const b0 = bp[bi],
      b1 = bp[bi + 1],
      b2 = bp[bi + 2],
      b3 = bp[bi + 3];
    let a = ap[ai];
    c00 += a * b0;
    c01 += a * b1;
    c02 += a * b2;
    c03 += a * b3;
    a = ap[ai + 1];
    c10 += a * b0;
    c11 += a * b1;
    c12 += a * b2;
    c13 += a * b3;
    a = ap[ai + 2];
    c20 += a * b0;
    c21 += a * b1;
    c22 += a * b2;
    c23 += a * b3;
    a = ap[ai + 3];
    c30 += a * b0;
    c31 += a * b1;
    c32 += a * b2;
    c33 += a * b3;
    ai += 4;
    bi += 4;
  }
  if (mr === MR && nr === NR) {
    let r = c0;
    C[r] += alpha * c00;
    C[r + 1] += alpha * c01;
    C[r + 2] += alpha * c02;
    C[r + 3] += alpha * c03;
    r += ldc;
    C[r] += alpha * c10;
    C[r + 1] += alpha * c11;
    C[r + 2] += alpha * c12;
    C[r + 3] += alpha * c13;
    r += ldc;
    C[r] += alpha * c20;
    C[r + 1] += alpha * c21;
    C[r + 2] += alpha * c22;
    C[r + 3] += alpha * c23;
    r += ldc;
    C[r] += alpha * c30;
    C[r + 1] += alpha * c31;
    C[r + 2] += alpha * c32;
    C[r + 3] += alpha * c33;
    return;
  }
  // Edge tile: write only the valid part.
  const t = [c00, c01, c02, c03, c10, c11, c12, c13, c20, c21, c22, c23, c30, c31, c32, c33];
  for (let i = 0; i < mr; i++) {
    for (let j = 0; j < nr; j++) C[c0 + i * ldc + j] += alpha * t[i * 4 + j];
  }
}
