/**
 * Products with half-precision weights in plain TypeScript: the reference for the native kernels
 * (native/src/gemm_half.cc) and the fallback. B holds bf16 or f16 bits; each value is widened to
 * float32 exactly (a 65536-entry table), so with computeBf16 = false the result equals the float32
 * GEMM on the upcast weights (here exactly: the TS GEMM accumulates in float64). computeBf16 rounds A to bf16 (nearest even)
 * first, as the native vdpbf16ps path does.
 */
import { bf16ToF32, f16ToF32 } from '../dtype.js';
import type { HalfDtype } from '../half.js';
import type { F32 } from '../kernels.js';
import { checkGemmArgs, gemm } from './gemm.js';

let bf16Table: Float32Array | null = null;
let f16Table: Float32Array | null = null;

/** Every half bit pattern's float32 value. */
export function halfTable(dtype: HalfDtype): Float32Array {
  if (dtype === 'bf16') return (bf16Table ??= bf16ToF32(Uint16Array.from({ length: 65536 }, (_, i) => i)));
  return (f16Table ??= f16ToF32(Uint16Array.from({ length: 65536 }, (_, i) => i)));
}

function checkDtype(who: string, dtype: string): void {
  if (dtype !== 'bf16' && dtype !== 'f16')
    throw new RangeError(`${who}: dtype must be "bf16" or "f16", got ${dtype}`);
}

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** v rounded to the nearest bf16 (ties to even), as a number. */
export function roundBf16(v: number): number {
  f32[0] = v;
  const x = u32[0];
  if ((x & 0x7fffffff) > 0x7f800000) return v;
  u32[0] = ((x + 0x7fff + ((x >>> 16) & 1)) >>> 16) << 16;
  return f32[0];
}

/** Rows of B widened per panel: bounds the float32 scratch whatever the weight's size. */
const PANEL_FLOATS = 1 << 18;

/**
 * C[M,N] = alpha * A[M,K] * op(B)[K,N] + beta * C with B in half bits: transB means B is stored
 * [N, ldb] (a weight W [out, in] in Y = X W^T), otherwise [K, ldb] (dX = dY W). beta = 0
 * overwrites C. B is widened one panel of rows at a time into a float32 scratch that the float32
 * GEMM then reads, so memory stays at one panel.
 */
export function gemmHalf(
  transB: boolean,
  M: number,
  N: number,
  K: number,
  alpha: number,
  A: F32,
  lda: number,
  B: Uint16Array,
  ldb: number,
  dtype: HalfDtype,
  beta: number,
  C: F32,
  ldc: number,
  computeBf16: boolean,
): void {
  checkDtype('gemmHalf', dtype);
  checkGemmArgs('gemmHalf', false, transB, M, N, K, A, lda, 0, B, ldb, 0, C, ldc, 0);
  if (M === 0 || N === 0) return;
  if (K === 0) {
    gemm(false, false, M, N, 0, alpha, A, lda, new Float32Array(0), N, beta, C, ldc);
    return;
  }
  const tab = halfTable(dtype);
  let a = A,
    la = lda;
  if (computeBf16) {
    a = new Float32Array(M * K);
    la = K;
    for (let i = 0; i < M; i++) for (let p = 0; p < K; p++) a[i * K + p] = roundBf16(A[i * lda + p]);
  }
  const cols = transB ? K : N;
  const total = transB ? N : K;
  const step = Math.max(1, Math.min(total, Math.floor(PANEL_FLOATS / cols)));
  const panel = new Float32Array(step * cols);
  for (let r0 = 0; r0 < total; r0 += step) {
    const rows = Math.min(step, total - r0);
    for (let r = 0; r < rows; r++) {
      const src = (r0 + r) * ldb;
      for (let c = 0; c < cols; c++) panel[r * cols + c] = tab[B[src + c]];
    }
    if (transB) {
      // C[:, r0:r0+rows] = alpha A panel^T + beta C[:, r0:r0+rows]
      gemm(false, true, M, rows, K, alpha, a, la, panel, cols, beta, C.subarray(r0), ldc);
    } else {
      // C += alpha A[:, r0:r0+rows] panel (beta applied with the first panel only)
      gemm(false, false, M, N, rows, alpha, a.subarray(r0), la, panel, cols, r0 === 0 ? beta : 1, C, ldc);
    }
  }
}

/** out[i] = table[ids[i]] widened to float32, table [vocab, dim] in half bits. */
export function embeddingForwardHalf(
  out: F32,
  ids: Int32Array,
  table: Uint16Array,
  dtype: HalfDtype,
  n: number,
  dim: number,
): void {
  checkDtype('embeddingForwardHalf', dtype);
  const vocab = Math.floor(table.length / dim);
  for (let i = 0; i < n; i++) {
    const id = ids[i];
    if (!(id >= 0 && id < vocab))
      throw new RangeError(`embedding: ids[${i}] = ${id} is outside the table's ${vocab} rows`);
  }
  const row = new Float32Array(dim);
  for (let i = 0; i < n; i++) {
    const src = table.subarray(ids[i] * dim, (ids[i] + 1) * dim);
    if (dtype === 'bf16') bf16ToF32(src, row);
    else f16ToF32(src, row);
    out.set(row, i * dim);
  }
}

/** S += |theta * grad| with theta in half bits (sensitivity of a frozen half weight, method step 1). */
export function sensAccumulateHalf(S: F32, theta: Uint16Array, dtype: HalfDtype, grad: F32, n: number): void {
  checkDtype('sensAccumulateHalf', dtype);
  if (theta.length < n || S.length < n || grad.length < n)
    throw new RangeError(`sensAccumulateHalf: arrays shorter than n = ${n}`);
  const tab = halfTable(dtype);
  for (let i = 0; i < n; i++) S[i] += Math.abs(tab[theta[i]] * grad[i]);
}

export function widenHalf(out: Float32Array, bits: Uint16Array, dtype: HalfDtype, n: number): void {
  checkDtype('widenHalf', dtype);
  if (bits.length < n || out.length < n) throw new RangeError(`widenHalf: arrays shorter than n = ${n}`);
  const tab = halfTable(dtype);
  for (let i = 0; i < n; i++) out[i] = tab[bits[i]];
}
