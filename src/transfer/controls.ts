/**
 * The control initialisations an honest comparison needs (docs/method.md "Controls"): PEFT's default
 * LoRA init, PiSSA, and random factors of matched norm. The self-teacher control needs no code here:
 * it is the teacher init with teacher = student.
 *
 * Followed: PEFT's `LoraLayer.reset_lora_parameters` / `pissa_init` in src/peft/tuners/lora/layer.py as
 * of peft 0.17 (2025; the Linear/Embedding defaults predate PiSSA, which arrived in peft 0.11): Linear A ~ kaiming_uniform_(a = sqrt(5)) on [r, in], B = 0; Embedding
 * lora_embedding_A = 0, lora_embedding_B ~ N(0, 1); PiSSA V, S, Uh = svd(W), S_r /= scaling,
 * B = V_r diag(sqrt S_r), A = diag(sqrt S_r) Uh_r, W' = W - scaling·B·A. Our draws come from the
 * seeded src/engine/rng.ts stream, not torch's generator, so values match PEFT in distribution only.
 */
import type { Rng } from '../engine/rng.js';
import { InputError } from '../errors.js';
import { topSvd, type Factorization, type Factors, type SvdOptions } from './factorize.js';

/**
 * PEFT's default init for a module whose factor-layout shape is [n, m]. `embedding`: the factor
 * layout is [d, V] (A [r, V] = 0, B [d, r] ~ N(0,1)); otherwise a Linear [out, in] (A kaiming, B = 0).
 * Either way B·A = 0, so the subtract trick leaves the base weight unchanged. Draws A then B, as PEFT.
 */
export function loraDefaultInit(n: number, m: number, r: number, embedding: boolean, rng: Rng): Factors {
  if (!Number.isInteger(r) || r < 1)
    throw new InputError('lora init', `LoRA rank must be a positive integer, got ${r}`);
  const A = new Float32Array(r * m);
  const B = new Float32Array(n * r);
  if (embedding) rng.fillNormal(B);
  else rng.fillKaimingUniform(A, m);
  return { B, A, n, m, r };
}

/**
 * PiSSA: the student's own top-r SVD, W = U S Vh, split as B = U_r sqrt(S_r/scale),
 * A = sqrt(S_r/scale) Vh_r, so that scale·B·A is W's best rank-r approximation; the trainer then
 * applies the same subtract trick. For the embedding pass the student weight in the factor layout
 * [d, V] (PEFT itself does not offer PiSSA on embeddings; we use the same formula there).
 */
export function pissaInit(
  Ws: Float32Array,
  n: number,
  m: number,
  r: number,
  scale: number,
  svd: SvdOptions,
  what = 'pissa',
): Factorization {
  if (!(scale > 0)) throw new InputError(what, `LoRA scale alpha/r must be positive, got ${scale}`);
  const t = topSvd(Ws, n, m, r, svd, what);
  const root = new Float64Array(r);
  for (let c = 0; c < r; c++) root[c] = Math.sqrt(t.S[c] / scale);
  const B = new Float32Array(n * r);
  for (let i = 0; i < n; i++) for (let c = 0; c < r; c++) B[i * r + c] = t.U[i * r + c] * root[c];
  const A = new Float32Array(r * m);
  for (let c = 0; c < r; c++) for (let j = 0; j < m; j++) A[c * m + j] = root[c] * t.Vt[c * m + j];
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

/**
 * ||B·A||_F without forming B·A: ||BA||^2 = sum_ij (BᵀB)_ij (AAᵀ)_ij, two r x r Gram matrices
 * (float64). O((n + m)·r²).
 */
export function productNorm(f: Factors): number {
  const { B, A, n, m, r } = f;
  const G = new Float64Array(r * r);
  const H = new Float64Array(r * r);
  for (let i = 0; i < n; i++) {
    for (let a = 0; a < r; a++) {
      const ba = B[i * r + a];
      if (ba === 0) continue;
      for (let b = 0; b < r; b++) G[a * r + b] += ba * B[i * r + b];
    }
  }
  for (let a = 0; a < r; a++) {
    for (let b = a; b < r; b++) {
      let s = 0;
      for (let j = 0; j < m; j++) s += A[a * m + j] * A[b * m + j];
      H[a * r + b] = s;
      H[b * r + a] = s;
    }
  }
  let tot = 0;
  for (let i = 0; i < r * r; i++) tot += G[i] * H[i];
  return Math.sqrt(Math.max(0, tot));
}

/**
 * Random-matched control: Gaussian factors of the same shapes as `target`, rescaled (the same
 * factor on B and A) so that ||B·A||_F equals ||B_t·A_t||_F. The LoRA scale is the same for both,
 * so the weight deltas have equal norms too.
 */
export function randomMatched(target: Factors, rng: Rng): Factors {
  const { n, m, r } = target;
  const B = rng.fillNormal(new Float32Array(n * r));
  const A = rng.fillNormal(new Float32Array(r * m));
  const want = productNorm(target);
  const have = productNorm({ B, A, n, m, r });
  const c = have > 0 ? Math.sqrt(want / have) : 0;
  for (let i = 0; i < B.length; i++) B[i] *= c;
  for (let i = 0; i < A.length; i++) A[i] *= c;
  return { B, A, n, m, r };
}
