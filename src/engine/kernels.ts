/**
 * The compute-kernel interface. Two implementations exist: `ts` (plain TypeScript, the reference the
 * tests compare against and the fallback) and `native` (C++ N-API addon over OpenBLAS/LAPACK).
 * A later CUDA backend implements the same interface.
 *
 * Conventions shared by every kernel:
 * - All matrices are row-major Float32Array views (subarray views are fine: offsets are honoured).
 * - Backward kernels OVERWRITE gradients of activations (dx, dq, ...) and ACCUMULATE (+=)
 *   gradients of parameters (dw, dtable, ...), as llm.c does; callers zero parameter grads.
 * - Reductions that feed decisions (sums of sensitivity, window sums) are done in float64.
 * - Nothing allocates hidden copies of the big inputs; outputs are written into caller buffers
 *   unless the function returns a fresh result (svd, qr, topk).
 */

import type { HalfDtype } from './half.js';

export type F32 = Float32Array;

/** RoPE pairing: HF `rotate_half` pairs (i, i + hd/2); llama2.c pairs adjacent (2i, 2i + 1). */
export type RopeStyle = 'half' | 'pairs';

export interface SvdResult {
  /** [m, k] row-major, k = min(m, n) (or the requested rank for truncated forms). */
  U: F32;
  /** [k], descending. */
  S: F32;
  /** [k, n] row-major. */
  Vt: F32;
  k: number;
}

export interface WindowResult {
  /** Top-left row and column of the best window. */
  i: number;
  j: number;
  /** Its sum (float64). */
  sum: number;
  /** Sum of the whole matrix (float64), for "share captured". */
  total: number;
}

export interface Kernels {
  readonly name: 'native' | 'ts';

  // ---------------------------------------------------------------- GEMM
  /**
   * C[M,N] = alpha * op(A)[M,K] * op(B)[K,N] + beta * C. Row-major.
   * A is stored [M, lda] (lda >= K) or, when transA, [K, lda] (lda >= M); B likewise.
   * beta = 0 means C is overwritten (its old contents, even NaN, are ignored).
   */
  gemm(
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
  ): void;

  /** `batch` independent GEMMs; matrix b of A starts at A[b * strideA], likewise B and C. */
  gemmStridedBatched(
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
  ): void;

  // ---------------------------------------------------------------- half-precision weights
  /**
   * C[M,N] = alpha * A[M,K] * op(B)[K,N] + beta * C with B holding bf16 or f16 bits (a frozen weight
   * kept in its file dtype): transB means B is stored [N, ldb] (forward Y = X W^T), otherwise
   * [K, ldb] (backward dX = dY W). float32 accumulation; computeBf16 rounds A to bf16 first.
   */
  gemmHalf(
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
  ): void;
  /** embeddingForward with the table in bf16/f16 bits. */
  embeddingForwardHalf(
    out: F32,
    ids: Int32Array,
    table: Uint16Array,
    dtype: HalfDtype,
    n: number,
    dim: number,
  ): void;
  /** sensAccumulate with theta in bf16/f16 bits. */
  sensAccumulateHalf(S: F32, theta: Uint16Array, dtype: HalfDtype, grad: F32, n: number): void;
  /** out[i] = the float32 value of bf16/f16 bits[i] (exact), i < n: reading a half tensor as float32. */
  widenHalf(out: Float32Array, bits: Uint16Array, dtype: HalfDtype, n: number): void;

  // ---------------------------------------------------------------- RMSNorm
  /** out[r] = x[r] * rstd[r] * w, rstd[r] = 1/sqrt(mean(x[r]^2) + eps). Writes out [rows,dim], rstd [rows]. */
  rmsnormForward(out: F32, rstd: F32, x: F32, w: F32, rows: number, dim: number, eps: number): void;
  /** dx overwritten; dw accumulated (may be null when the weight is frozen). */
  rmsnormBackward(
    dx: F32,
    dw: F32 | null,
    dout: F32,
    x: F32,
    w: F32,
    rstd: F32,
    rows: number,
    dim: number,
  ): void;

  // ---------------------------------------------------------------- RoPE
  /**
   * In place on x laid out [rows, nHeads, headDim]; row r sits at position pos[r].
   * invFreq has headDim/2 entries (theta^(-2i/headDim), or a scaled version for rope_scaling).
   * angle = pos * invFreq[i] computed in float32 like HF. `inverse` rotates by -angle (the backward).
   */
  rope(
    x: F32,
    pos: Int32Array,
    rows: number,
    nHeads: number,
    headDim: number,
    invFreq: F32,
    style: RopeStyle,
    inverse: boolean,
  ): void;

  // ---------------------------------------------------------------- attention
  /**
   * Causal grouped-query self-attention.
   * q [B, Tq, Hq, hd]; k, v [B, Tk, Hkv, hd] (Hq % Hkv == 0; query head h reads kv head h / (Hq/Hkv));
   * out [B, Tq, Hq, hd]; probs [B, Hq, Tq, Tk] (saved softmax for the backward).
   * Query i may attend key j iff j <= (Tk - Tq) + i and keyMask[b*Tk + j] != 0 (keyMask may be null
   * = all valid). This covers training (Tq = Tk), KV-cache decoding (Tq < Tk) and left or right
   * padding. A query row with no admissible key gets probs 0 and out 0.
   */
  attentionForward(
    out: F32,
    probs: F32,
    q: F32,
    k: F32,
    v: F32,
    keyMask: Uint8Array | null,
    B: number,
    Tq: number,
    Tk: number,
    Hq: number,
    Hkv: number,
    hd: number,
    scale: number,
  ): void;
  /** dq, dk, dv overwritten. */
  attentionBackward(
    dq: F32,
    dk: F32,
    dv: F32,
    dout: F32,
    q: F32,
    k: F32,
    v: F32,
    probs: F32,
    B: number,
    Tq: number,
    Tk: number,
    Hq: number,
    Hkv: number,
    hd: number,
    scale: number,
  ): void;

  // ---------------------------------------------------------------- SiLU-gated MLP product
  /** out = silu(gate) * up, elementwise over n. */
  swigluForward(out: F32, gate: F32, up: F32, n: number): void;
  /** dgate, dup overwritten. */
  swigluBackward(dgate: F32, dup: F32, dout: F32, gate: F32, up: F32, n: number): void;

  // ---------------------------------------------------------------- embedding
  /** out[i] = table[ids[i]] for n ids, dim columns. */
  embeddingForward(out: F32, ids: Int32Array, table: F32, n: number, dim: number): void;
  /** dtable[ids[i]] += dout[i] (scatter-add; repeated ids accumulate). */
  embeddingBackward(dtable: F32, dout: F32, ids: Int32Array, n: number, dim: number): void;

  // ---------------------------------------------------------------- cross-entropy
  /**
   * Fused log-softmax + NLL over logits [rows, V]. targets[r] < 0 means ignored.
   * Returns the SUM of losses over non-ignored rows (float64). If rowLoss is given it receives each
   * row's loss (0 for ignored rows). If dlogits is given (may alias logits) it receives
   * dscale * (softmax - onehot) for valid rows and 0 for ignored rows; pass dscale = 1/count for a mean.
   */
  crossEntropy(
    logits: F32,
    targets: Int32Array,
    rows: number,
    V: number,
    dlogits: F32 | null,
    dscale: number,
    rowLoss: F32 | null,
  ): number;

  // ---------------------------------------------------------------- optimiser
  /**
   * AdamW exactly as torch.optim.AdamW (decoupled decay, bias correction), on a flat group:
   *   p *= 1 - lr*wd; m = b1 m + (1-b1) g; v = b2 v + (1-b2) g^2;
   *   denom = sqrt(v)/sqrt(1-b2^t) + eps; p -= (lr/(1-b1^t)) * m/denom.   t = step, 1-based.
   */
  adamw(
    param: F32,
    grad: F32,
    m: F32,
    v: F32,
    n: number,
    lr: number,
    beta1: number,
    beta2: number,
    eps: number,
    weightDecay: number,
    step: number,
  ): void;

  // ---------------------------------------------------------------- sensitivity (docs/method.md step 1-3)
  /** S += |theta * grad| elementwise. */
  sensAccumulate(S: F32, theta: F32, grad: F32, n: number): void;
  /** Sum of all n entries, float64. */
  sum(x: F32, n: number): number;
  /** out[r] = sum of row r of x [rows, cols] (float64). */
  rowSums(out: Float64Array, x: F32, rows: number, cols: number): void;
  /** out[c] = sum of column c of x [rows, cols] (float64). */
  colSums(out: Float64Array, x: F32, rows: number, cols: number): void;
  /**
   * The contiguous [wn, wm] window of S [n, m] with the largest sum (summed-area table in float64,
   * every window scored). Ties go to the smallest i, then the smallest j. Requires wn <= n, wm <= m.
   */
  maxWindow(S: F32, n: number, m: number, wn: number, wm: number): WindowResult;
  /**
   * Indices of the k largest values, returned in ascending index order (original order kept).
   * Ties prefer the lower index. Used for top rows/columns by mean and top elements.
   */
  topk(values: F32 | Float64Array, n: number, k: number): Int32Array;

  // ---------------------------------------------------------------- linear algebra
  /** Thin SVD of A [m, n] (A is not modified): U [m,k], S [k], Vt [k,n], k = min(m,n). LAPACK gesdd. */
  svd(A: F32, m: number, n: number): SvdResult;
  /** Thin QR: returns Q [m, n] with orthonormal columns (m >= n). A is not modified. */
  qr(A: F32, m: number, n: number): F32;
}

/** The name of every kernel function in Kernels (every member but `name`). */
export type KernelName = Exclude<keyof Kernels, 'name'>;

/**
 * Every kernel function, one entry each: the list the native addon's exports are checked against at
 * load (src/engine/native.ts). `satisfies` makes the compiler refuse this table when a Kernels
 * method is added without an entry here, or an entry names no method.
 */
export const KERNEL_TABLE = {
  gemm: true,
  gemmStridedBatched: true,
  rmsnormForward: true,
  rmsnormBackward: true,
  rope: true,
  attentionForward: true,
  attentionBackward: true,
  swigluForward: true,
  swigluBackward: true,
  embeddingForward: true,
  embeddingBackward: true,
  crossEntropy: true,
  adamw: true,
  sensAccumulate: true,
  sum: true,
  rowSums: true,
  colSums: true,
  maxWindow: true,
  topk: true,
  svd: true,
  qr: true,
  gemmHalf: true,
  embeddingForwardHalf: true,
  sensAccumulateHalf: true,
  widenHalf: true,
} as const satisfies Record<KernelName, true>;

export const KERNEL_NAMES = Object.keys(KERNEL_TABLE) as KernelName[];
