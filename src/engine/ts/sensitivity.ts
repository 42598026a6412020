/** Sensitivity accumulation and the float64 reductions over it (docs/method.md steps 1-3). */
import type { F32 } from '../kernels.js';

/** S += |theta * grad| (per example, then summed over examples: docs/method.md step 1). */
export function sensAccumulate(S: F32, theta: F32, grad: F32, n: number): void {
  for (let i = 0; i < n; i++) S[i] += Math.abs(theta[i] * grad[i]);
}

export function sum(x: F32, n: number): number {
  let s = 0;
  for (let i = 0; i < n; i++) s += x[i];
  return s;
}

export function rowSums(out: Float64Array, x: F32, rows: number, cols: number): void {
  for (let r = 0; r < rows; r++) {
    let s = 0;
    const o = r * cols;
    for (let c = 0; c < cols; c++) s += x[o + c];
    out[r] = s;
  }
}

export function colSums(out: Float64Array, x: F32, rows: number, cols: number): void {
  out.fill(0, 0, cols);
  for (let r = 0; r < rows; r++) {
    const o = r * cols;
    for (let c = 0; c < cols; c++) out[c] += x[o + c];
  }
}
