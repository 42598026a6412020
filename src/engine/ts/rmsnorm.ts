/**
 * RMSNorm (LLaMA's LlamaRMSNorm): out = x * rstd * w, rstd = 1/sqrt(mean(x^2) + eps).
 * Reference implementation: every reduction in JS numbers (float64); works unchanged on Float64Array
 * buffers passed as Float32Array (gradient checks).
 */
import type { F32 } from '../kernels.js';

export function rmsnormForward(
  out: F32,
  rstd: F32,
  x: F32,
  w: F32,
  rows: number,
  dim: number,
  eps: number,
): void {
  for (let r = 0; r < rows; r++) {
    const o = r * dim;
    let ss = 0;
    for (let c = 0; c < dim; c++) ss += x[o + c] * x[o + c];
    const s = 1 / Math.sqrt(ss / dim + eps);
    rstd[r] = s;
    for (let c = 0; c < dim; c++) out[o + c] = x[o + c] * s * w[c];
  }
}

/**
 * y_c = x_c * s * w_c with s = (mean(x^2) + eps)^(-1/2), ds/dx_c = -s^3 x_c / dim, so
 * dx_c = s * w_c * dy_c - (s^3 / dim) * x_c * sum_k(dy_k * w_k * x_k);  dw_c += dy_c * x_c * s.
 * Uses the saved rstd (recomputing it would differ from the forward's in float32 by rounding).
 */
export function rmsnormBackward(
  dx: F32,
  dw: F32 | null,
  dout: F32,
  x: F32,
  w: F32,
  rstd: F32,
  rows: number,
  dim: number,
): void {
  for (let r = 0; r < rows; r++) {
    const o = r * dim;
    const s = rstd[r];
    let dot = 0;
    for (let c = 0; c < dim; c++) dot += dout[o + c] * w[c] * x[o + c];
    const k = (s * s * s * dot) / dim;
    if (dw) for (let c = 0; c < dim; c++) dw[c] += dout[o + c] * x[o + c] * s;
    // dx last: dx may alias dout (in-place backward), so every read of dout for this row is done.
    for (let c = 0; c < dim; c++) dx[o + c] = s * w[c] * dout[o + c] - k * x[o + c];
  }
}
