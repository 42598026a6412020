/**
 * Putting LoRA factors onto a student without changing its function (docs/method.md step 5), and the
 * plain PEFT adapter after training (step 7).
 *
 * Factors live in the factor layout (modules.ts): B [n, r], A [r, m]. For a Linear the weight is
 * stored [n, m] and its delta is scale·B·A; for the embedding the weight is stored [V, d] = [m, n]
 * and its delta is scale·(B·A)^T, as in PEFT.
 */
import { kernels } from '../engine/backend.js';
import type { Factors } from './factorize.js';

/**
 * W_s' = W_s - scale·B·A (embedding, `transposed`: W_s - scale·(B·A)^T), in place. At step 0 the
 * LoRA-wrapped module computes W_s' + scale·B·A = W_s: the student starts as itself.
 */
export function subtractInit(Ws: Float32Array, f: Factors, scale: number, transposed: boolean): void {
  addDelta(Ws, f, -scale, transposed);
}

/** W += coef·B·A (or coef·(B·A)^T when `transposed`), in place, through kernels().gemm. */
export function addDelta(W: Float32Array, f: Factors, coef: number, transposed: boolean): void {
  const { B, A, n, m, r } = f;
  if (W.length !== n * m) throw new Error(`addDelta: weight has ${W.length} values, expected ${n * m}`);
  if (B.length !== n * r || A.length !== r * m) {
    throw new Error(
      `addDelta: factors have ${B.length} and ${A.length} values, expected B [${n}, ${r}] and A [${r}, ${m}]`,
    );
  }
  const k = kernels();
  if (!transposed) {
    // W[n, m] += coef · B[n, r] · A[r, m]
    k.gemm(false, false, n, m, r, coef, B, r, A, m, 1, W, m);
  } else {
    // W[m, n] += coef · (B·A)^T = coef · Aᵀ[m, r] · Bᵀ[r, n]; A is stored [r, m], B [n, r].
    k.gemm(true, true, m, n, r, coef, A, m, B, r, 1, W, n);
  }
}

/**
 * The plain adapter of docs/method.md step 7: after training (B1, A1) from the init (B0, A0), the rank-2r
 * factors B = [B1 | B0], A = [A1 ; -A0] give scale·B·A = scale·(B1·A1 - B0·A0), so the adapter loads
 * on the UNTOUCHED student and reproduces W_s - B0·A0 + B1·A1. Keep the same scale: with rank 2r,
 * lora_alpha must become 2·alpha (or use alpha_pattern) so that alpha'/r' = alpha/r.
 */
export function plainAdapterFactors(trained: Factors, init: Factors): Factors {
  const { n, m, r } = trained;
  if (init.n !== n || init.m !== m || init.r !== r) {
    throw new Error(
      `plainAdapterFactors: trained factors are [${n}, ${r}]·[${r}, ${m}] but init ones [${init.n}, ${init.r}]·[${init.r}, ${init.m}]`,
    );
  }
  const r2 = 2 * r;
  const B = new Float32Array(n * r2);
  for (let i = 0; i < n; i++) {
    B.set(trained.B.subarray(i * r, (i + 1) * r), i * r2);
    B.set(init.B.subarray(i * r, (i + 1) * r), i * r2 + r);
  }
  const A = new Float32Array(r2 * m);
  A.set(trained.A.subarray(0, r * m), 0);
  for (let i = 0; i < r * m; i++) A[r * m + i] = -init.A[i];
  return { B, A, n, m, r: r2 };
}
