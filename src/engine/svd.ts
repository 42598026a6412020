/**
 * Truncated SVD on top of any Kernels (docs/method.md step 4: `U, s, Vh = svd(W_e)`, keep the top r).
 *
 * - 'exact': the backend's thin SVD (LAPACK gesdd natively), then the first r triplets.
 * - 'randomized': Halko, Martinsson & Tropp (2011), Algorithms 4.4 + 5.1: a Gaussian sketch
 *   Y = A Omega with l = r + oversample columns, q power iterations re-orthonormalised by QR at
 *   every half step (so float32 round-off does not wash out the small directions), Q = qr(Y),
 *   B = Q^T A [l, n], the small exact SVD B = Ub S Vt, and U = Q Ub. Only GEMMs touch A, so the
 *   cost is ~(2q + 2) * 2mnl flops instead of gesdd's O(mn min(m, n)).
 * - 'auto': 'exact' up to AUTO_EXACT_MAX_SIDE on the smaller side, 'randomized' above. gesdd's cost
 *   grows with mn min(m, n): on a 2-core machine a 2048 x 2048 block takes ~9 s and a 4096 x 11008 one
 *   minutes, so a 13B -> 7B extraction (224 such blocks) would take hours; the sketch takes ~1 s each.
 *   Every matrix of the bundled models stays exact.
 *
 * Works on Float64Array inputs too (float64 mode, TS backend): every temporary takes A's type.
 */
import type { F32, Kernels } from './kernels.js';
import { Rng } from './rng.js';

export type SvdMethod = 'exact' | 'randomized' | 'auto';

/** 'auto' takes the exact SVD when min(m, n) is at most this, the randomized one above it. */
export const AUTO_EXACT_MAX_SIDE = 1024;

/** The method 'auto' (or an explicit method) resolves to for an [m, n] matrix. */
export function resolveSvdMethod(method: SvdMethod, m: number, n: number): 'exact' | 'randomized' {
  if (method !== 'auto') return method;
  return Math.min(m, n) <= AUTO_EXACT_MAX_SIDE ? 'exact' : 'randomized';
}

export interface SvdTopROptions {
  method?: SvdMethod;
  /** Extra sketch columns beyond r (randomized). Default 10. */
  oversample?: number;
  /** Power iterations (randomized). Default 2. */
  powerIters?: number;
  /** Seed of the Gaussian test matrix (randomized). Default 0. */
  seed?: number;
}

export interface TruncatedSvd {
  /** [m, r] row-major. */
  U: F32;
  /** [r], descending. */
  S: F32;
  /** [r, n] row-major. */
  Vt: F32;
  r: number;
}

function like(A: ArrayLike<number>, n: number): F32 {
  return A instanceof Float64Array ? (new Float64Array(n) as unknown as F32) : new Float32Array(n);
}

/** The top-r singular triplets of A [m, n] (A is not modified). */
export function svdTopR(
  k: Kernels,
  A: F32,
  m: number,
  n: number,
  r: number,
  opts: SvdTopROptions = {},
): TruncatedSvd {
  const method = opts.method === 'auto' ? resolveSvdMethod('auto', m, n) : (opts.method ?? 'exact');
  const oversample = opts.oversample ?? 10;
  const powerIters = opts.powerIters ?? 2;
  const seed = opts.seed ?? 0;
  if (!Number.isInteger(m) || m < 1 || !Number.isInteger(n) || n < 1) {
    throw new RangeError(`svdTopR: shape [${m}, ${n}] must be positive integers`);
  }
  if (A.length < m * n)
    throw new RangeError(`svdTopR: A has ${A.length} elements, [${m}, ${n}] needs ${m * n}`);
  if (!Number.isInteger(r) || r < 1 || r > Math.min(m, n)) {
    throw new RangeError(`svdTopR: rank r=${r} must be an integer in [1, min(m, n) = ${Math.min(m, n)}]`);
  }
  if (!Number.isInteger(oversample) || oversample < 0)
    throw new RangeError(`svdTopR: oversample=${oversample} must be an integer >= 0`);
  if (!Number.isInteger(powerIters) || powerIters < 0)
    throw new RangeError(`svdTopR: powerIters=${powerIters} must be an integer >= 0`);
  if (method === 'exact') return truncate(A, k.svd(A, m, n), m, n, r);
  if (method !== 'randomized')
    throw new RangeError(`svdTopR: method "${String(method)}" is not "exact", "randomized" or "auto"`);
  return randomized(k, A, m, n, r, oversample, powerIters, seed);
}

/** First r columns of U, r values of S, r rows of Vt of a thin SVD with k = min(m, n). */
function truncate(
  A: F32,
  full: { U: F32; S: F32; Vt: F32; k: number },
  m: number,
  n: number,
  r: number,
): TruncatedSvd {
  const U = like(A, m * r),
    S = like(A, r);
  const kk = full.k;
  for (let i = 0; i < m; i++) for (let q = 0; q < r; q++) U[i * r + q] = full.U[i * kk + q];
  for (let q = 0; q < r; q++) S[q] = full.S[q];
  const Vt = like(A, r * n);
  Vt.set(full.Vt.subarray(0, r * n));
  return { U, S, Vt, r };
}

function randomized(
  k: Kernels,
  A: F32,
  m: number,
  n: number,
  r: number,
  oversample: number,
  powerIters: number,
  seed: number,
): TruncatedSvd {
  const l = Math.min(r + oversample, m, n);
  // Omega [n, l], standard normal.
  const omega = like(A, n * l);
  new Rng(seed).fillNormal(omega);
  const Y = like(A, m * l);
  k.gemm(false, false, m, l, n, 1, A, n, omega, l, 0, Y, l);
  let Q = k.qr(Y, m, l); // [m, l]
  const Z = like(A, n * l);
  for (let it = 0; it < powerIters; it++) {
    k.gemm(true, false, n, l, m, 1, A, n, Q, l, 0, Z, l); // Z = A^T Q  [n, l]
    const Qz = k.qr(Z, n, l);
    k.gemm(false, false, m, l, n, 1, A, n, Qz, l, 0, Y, l); // Y = A Qz  [m, l]
    Q = k.qr(Y, m, l);
  }
  // B = Q^T A [l, n]; its exact SVD is small (l x n).
  const Bm = like(A, l * n);
  k.gemm(true, false, l, n, m, 1, Q, l, A, n, 0, Bm, n);
  const small = k.svd(Bm, l, n); // Ub [l, l], S [l], Vt [l, n]
  // U = Q Ub[:, :r]  ([m, l] x [l, r]), reading the first r columns of Ub through ldb = l.
  const U = like(A, m * r);
  k.gemm(false, false, m, r, l, 1, Q, l, small.U, small.k, 0, U, r);
  const S = like(A, r);
  for (let q = 0; q < r; q++) S[q] = small.S[q];
  const Vt = like(A, r * n);
  Vt.set(small.Vt.subarray(0, r * n));
  return { U, S, Vt, r };
}
