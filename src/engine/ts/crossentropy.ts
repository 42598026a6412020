/**
 * Fused log-softmax + negative log-likelihood (docs/method.md step 1 and 6: the loss on answer tokens; prompt
 * tokens arrive as ignored targets < 0). Max-subtraction for stability, float64 sums.
 */
import type { F32 } from '../kernels.js';

export function crossEntropy(
  logits: F32,
  targets: Int32Array,
  rows: number,
  V: number,
  dlogits: F32 | null,
  dscale: number,
  rowLoss: F32 | null,
): number {
  for (let r = 0; r < rows; r++) {
    const t = targets[r];
    if (t >= V)
      throw new RangeError(`crossEntropy: targets[${r}] = ${t} is not below the vocabulary size ${V}`);
  }
  let total = 0;
  for (let r = 0; r < rows; r++) {
    const o = r * V;
    const t = targets[r];
    if (t < 0) {
      if (rowLoss) rowLoss[r] = 0;
      if (dlogits) for (let c = 0; c < V; c++) dlogits[o + c] = 0;
      continue;
    }
    let mx = -Infinity;
    for (let c = 0; c < V; c++) if (logits[o + c] > mx) mx = logits[o + c];
    let se = 0;
    for (let c = 0; c < V; c++) se += Math.exp(logits[o + c] - mx);
    const lse = mx + Math.log(se);
    // Read the target logit before dlogits (which may alias logits) overwrites the row.
    const loss = lse - logits[o + t];
    total += loss;
    if (rowLoss) rowLoss[r] = loss;
    if (dlogits) {
      const inv = 1 / se;
      for (let c = 0; c < V; c++) dlogits[o + c] = dscale * (Math.exp(logits[o + c] - mx) * inv);
      dlogits[o + t] -= dscale;
    }
  }
  return total;
}
