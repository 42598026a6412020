/**
 * The logit-distillation term of `kd-logits` training (docs/method.md "Distillation"), per answer token:
 *
 *   KD = T² · KL(p_t ‖ p_s),   p_t = softmax(z_t / T),  p_s = softmax(z_s / T)
 *
 * with z_t the teacher's and z_s the student's logits at the token. Its gradient with respect to the
 * student logits is T² · (p_s − p_t) / T = T · (p_s − p_t): the T² factor (Hinton et al.) keeps the
 * term's gradient on the scale of the cross-entropy's as T changes. The training loss of a token is
 * (1 − λ)·CE + λ·KD, averaged over the answer tokens of the effective batch.
 *
 * Plain TypeScript over whatever precision the buffers have (the float64 gradient check runs this very
 * code); the cost is O(tokens × V), small beside the model's GEMMs.
 */
import type { EncodedExample } from '../data/encode.js';

type Num = Float32Array | Float64Array;

/** What the model needs to add the distillation term to its answer-token loss. */
export interface KdTerm {
  /** Teacher logits [answer tokens, V], in the order of the batch's rows whose target is >= 0. */
  teacher: ArrayLike<number>;
  /** Weight λ of the distillation term (0: plain cross-entropy). */
  lambda: number;
  /** Softmax temperature T (> 0). */
  temperature: number;
}

/**
 * Sum over the answer rows (targets >= 0) of T²·KL(p_t ‖ p_s). When `grad` is given, each answer row's
 * gradient, scaled by `scale`, is ADDED into grad's row (the other rows are left alone).
 */
export function distillLoss(
  logits: ArrayLike<number>,
  targets: Int32Array,
  rows: number,
  V: number,
  kd: Pick<KdTerm, 'teacher' | 'temperature'>,
  grad: Num | null,
  scale: number,
): number {
  const T = kd.temperature;
  if (!(T > 0 && Number.isFinite(T))) throw new RangeError(`distillation temperature must be > 0, got ${T}`);
  const zt = kd.teacher;
  const ps = new Float64Array(V);
  const pt = new Float64Array(V);
  let total = 0;
  let k = 0;
  for (let r = 0; r < rows; r++) {
    if (targets[r] < 0) continue;
    if ((k + 1) * V > zt.length)
      throw new RangeError(`distillation: ${zt.length / V} teacher rows for more answer tokens`);
    const o = r * V,
      ot = k * V;
    const lse = (src: ArrayLike<number>, off: number, p: Float64Array): number => {
      let mx = -Infinity;
      for (let c = 0; c < V; c++) mx = Math.max(mx, src[off + c] / T);
      let se = 0;
      for (let c = 0; c < V; c++) {
        p[c] = Math.exp(src[off + c] / T - mx);
        se += p[c];
      }
      for (let c = 0; c < V; c++) p[c] /= se;
      return mx + Math.log(se);
    };
    const lseS = lse(logits, o, ps);
    const lseT = lse(zt, ot, pt);
    let kl = 0;
    for (let c = 0; c < V; c++) {
      if (pt[c] === 0) continue;
      // log p_t − log p_s = (z_t − z_s)/T − lse_t + lse_s
      kl += pt[c] * ((zt[ot + c] - logits[o + c]) / T - lseT + lseS);
    }
    total += T * T * kl;
    if (grad) {
      const g = scale * T;
      for (let c = 0; c < V; c++) grad[o + c] += g * (ps[c] - pt[c]);
    }
    k++;
  }
  if (k * V !== zt.length)
    throw new RangeError(`distillation: ${zt.length / V} teacher rows for ${k} answer tokens`);
  return total;
}

/** Teacher rows for the trainer: the cached logits of a micro-batch's examples, and the term's weights. */
export interface KdSource {
  lambda: number;
  temperature: number;
  /** Teacher logits of the examples' answer tokens, concatenated in example order. */
  teacherRows(examples: readonly EncodedExample[]): ArrayLike<number>;
}
