/**
 * Next-token choice from one row of logits: greedy (temperature 0), or temperature sampling with
 * optional top-k and nucleus (top-p) truncation, applied in that order as HF's warpers are, from a
 * seeded RNG. Probabilities are computed in float64.
 */
import type { Rng } from '../engine/rng.js';

export interface SamplingOptions {
  /** 0 (default) = greedy argmax. */
  temperature?: number;
  /** Nucleus mass in (0, 1]; 1 = no truncation. */
  topP?: number;
  /** Keep only the k most probable tokens (ties with the k-th kept, as HF's TopKLogitsWarper); 0 = all. */
  topK?: number;
}

/** Index of the largest value; ties go to the lowest index (torch.argmax, llama2.c). NaN is never chosen. */
export function argmax(x: ArrayLike<number>, off: number, n: number): number {
  let best = -1,
    bv = -Infinity;
  for (let i = 0; i < n; i++) {
    const v = x[off + i];
    if (v === v && (best < 0 || v > bv)) {
      best = i;
      bv = v;
    }
  }
  return best < 0 ? 0 : best;
}

export function checkSampling(o: SamplingOptions): void {
  const t = o.temperature ?? 0,
    p = o.topP ?? 1;
  if (!(t >= 0 && Number.isFinite(t)))
    throw new RangeError(`temperature must be a finite number >= 0, got ${t}`);
  if (!(p > 0 && p <= 1)) throw new RangeError(`top_p must be in (0, 1], got ${p}`);
  const k = o.topK ?? 0;
  if (!(Number.isInteger(k) && k >= 0)) throw new RangeError(`top_k must be an integer >= 0, got ${k}`);
}

/** Chooses a token from logits[off .. off + V). */
export function sampleToken(
  logits: ArrayLike<number>,
  off: number,
  V: number,
  o: SamplingOptions,
  rng: Rng,
): number {
  const t = o.temperature ?? 0;
  if (t === 0) return argmax(logits, off, V);
  const topP = o.topP ?? 1;
  let mx = -Infinity;
  for (let i = 0; i < V; i++) if (logits[off + i] > mx) mx = logits[off + i];
  const p = new Float64Array(V);
  let z = 0;
  for (let i = 0; i < V; i++) {
    const e = Math.exp((logits[off + i] - mx) / t);
    p[i] = e;
    z += e;
  }
  for (let i = 0; i < V; i++) p[i] /= z;
  const topK = o.topK ?? 0;
  if (topK > 0 && topK < V) {
    // probabilities are monotonic in the logits, so the k-th largest probability is the cut
    const cut = Float64Array.from(p).sort()[V - topK];
    let kept = 0;
    for (let i = 0; i < V; i++) {
      if (p[i] < cut) p[i] = 0;
      else kept += p[i];
    }
    for (let i = 0; i < V; i++) p[i] /= kept;
  }
  if (topP < 1) {
    // Keep the smallest set of most probable tokens whose mass reaches top_p (at least one token).
    const order = Array.from({ length: V }, (_, i) => i).sort((a, b) => p[b] - p[a] || a - b);
    let cum = 0,
      kept = 0;
    while (kept < V && (kept === 0 || cum < topP)) cum += p[order[kept++]];
    const u = rng.uniform() * cum;
    let acc = 0;
    for (let j = 0; j < kept; j++) {
      acc += p[order[j]];
      if (u < acc) return order[j];
    }
    return order[kept - 1];
  }
  const u = rng.uniform();
  let acc = 0;
  for (let i = 0; i < V; i++) {
    acc += p[i];
    if (u < acc) return i;
  }
  // rounding left u above the total: the last token with any mass
  for (let i = V - 1; i >= 0; i--) if (p[i] > 0) return i;
  return 0;
}
