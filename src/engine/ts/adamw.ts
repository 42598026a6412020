/**
 * AdamW exactly as torch.optim.AdamW (decoupled weight decay, bias correction; amsgrad off):
 *   p *= 1 - lr*wd; m = b1 m + (1-b1) g; v = b2 v + (1-b2) g^2;
 *   denom = sqrt(v)/sqrt(1 - b2^t) + eps; p -= (lr / (1 - b1^t)) * m / denom.
 */
import type { F32 } from '../kernels.js';

export function adamw(
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
): void {
  if (!(step >= 1) || !Number.isInteger(step))
    throw new RangeError(`adamw: step must be an integer >= 1 (1-based), got ${step}`);
  const decay = 1 - lr * weightDecay;
  const stepSize = lr / (1 - beta1 ** step);
  const bc2sqrt = Math.sqrt(1 - beta2 ** step);
  for (let i = 0; i < n; i++) {
    const g = grad[i];
    // Store m and v first and read them back, so the update uses the stored (rounded) moments like torch.
    m[i] = beta1 * m[i] + (1 - beta1) * g;
    v[i] = beta2 * v[i] + (1 - beta2) * g * g;
    const p = param[i] * decay;
    param[i] = p - stepSize * (m[i] / (Math.sqrt(v[i]) / bc2sqrt + eps));
  }
}
