/**
 * docs/method.md step 4: factorise the cut matrix W_e [n, m] into LoRA factors.
 *   U, s, Vh = svd(W_e);  B = U[:, :r] * s[:r] / scale  ([n, r]);  A = Vh[:r, :]  ([r, m])
 * All of the spectrum goes into B (no sqrt split), as the reference does. With scale = alpha / r != 1
 * the init is divided by the scale (we divide B, keeping A's rows orthonormal) so that scale·B·A is
 * still the best rank-r approximation of W_e.
 */
import { kernels } from '../engine/backend.js';
import { svdTopR, type SvdMethod } from '../engine/svd.js';
import { InputError } from '../errors.js';

export interface SvdOptions {
  /**
   * `exact`: LAPACK thin SVD then truncation; `randomized`: Halko et al. range finder; `auto`: exact
   * for blocks up to 1024 on the smaller side, randomized above (src/engine/svd.ts).
   */
  method: SvdMethod;
  oversample?: number;
  powerIters?: number;
  seed?: number;
}

/** LoRA factors in the factor layout: B [n, r], A [r, m]; the weight delta is scale·B·A. */
export interface Factors {
  B: Float32Array;
  A: Float32Array;
  n: number;
  m: number;
  r: number;
}

export interface Factorization extends Factors {
  /** The top r singular values of the factorised matrix (descending). */
  singularValues: number[];
  /** sum_{i<r} s_i^2 / ||W_e||_F^2: the share of the matrix's energy the rank-r factors keep. */
  energyKept: number;
  /** ||W_e||_F. */
  frobenius: number;
}

/** Checks that a rank can be taken from an [n, m] matrix (SVD-based inits). */
export function checkRank(r: number, n: number, m: number, what: string): void {
  if (!Number.isInteger(r) || r < 1)
    throw new InputError(what, `LoRA rank must be a positive integer, got ${r}`);
  if (r > Math.min(n, m)) {
    throw new InputError(what, `rank ${r} exceeds the smaller side of the [${n}, ${m}] matrix it factorises`);
  }
}

/** Top-r SVD of X [n, m] plus the energy bookkeeping shared by the teacher init and PiSSA. */
export function topSvd(X: Float32Array, n: number, m: number, r: number, svd: SvdOptions, what: string) {
  checkRank(r, n, m, what);
  if (X.length !== n * m) throw new Error(`${what}: matrix has ${X.length} values, expected ${n * m}`);
  let fro2 = 0;
  for (let i = 0; i < X.length; i++) fro2 += X[i] * X[i];
  if (!Number.isFinite(fro2)) throw new InputError(what, 'matrix holds NaN or Inf');
  const res = svdTopR(kernels(), X, n, m, r, svd);
  const singularValues = Array.from(res.S.subarray(0, r));
  let kept = 0;
  for (const s of singularValues) kept += s * s;
  // A zero matrix is reproduced exactly by any rank: nothing is lost.
  const energyKept = fro2 > 0 ? Math.min(1, kept / fro2) : 1;
  return { U: res.U, S: res.S, Vt: res.Vt, singularValues, energyKept, frobenius: Math.sqrt(fro2) };
}

/** The reference factorisation of docs/method.md step 4. `scale` = alpha / r. */
export function factorize(
  We: Float32Array,
  n: number,
  m: number,
  r: number,
  scale: number,
  svd: SvdOptions,
  what = 'factorize',
): Factorization {
  if (!(scale > 0)) throw new InputError(what, `LoRA scale alpha/r must be positive, got ${scale}`);
  const t = topSvd(We, n, m, r, svd, what);
  const B = new Float32Array(n * r);
  for (let i = 0; i < n; i++) {
    for (let c = 0; c < r; c++) B[i * r + c] = (t.U[i * r + c] * t.S[c]) / scale;
  }
  const A = Float32Array.from(t.Vt.subarray(0, r * m));
  return {
    B,
    A,
    n,
    m,
    r,
    singularValues: t.singularValues,
    energyKept: t.energyKept,
    frobenius: t.frobenius,
  };
}
