/**
 * AdamW over a flat parameter group (src/train/lora-params.ts), as torch.optim.AdamW with HF
 * Trainer's defaults (betas 0.9/0.999, eps 1e-8, decoupled weight decay), plus the global
 * gradient-norm clipping HF Trainer applies before each update (torch.nn.utils.clip_grad_norm_,
 * max_grad_norm 1.0 by default). The update itself is kernels().adamw (one call per update).
 *
 * State = the two moment arrays and the update count; a checkpoint saves them and `restore` puts
 * them back, so a resumed run continues bit for bit.
 */
import { kernels } from '../engine/backend.js';
import { alloc } from '../engine/alloc.js';

type F32 = Float32Array;

export interface AdamWConfig {
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
}

export class AdamW {
  /** First moment (torch `exp_avg`). */
  readonly m: F32;
  /** Second moment (torch `exp_avg_sq`). */
  readonly v: F32;
  /** Updates done so far (torch's `step`; the next update uses step + 1 in the bias correction). */
  step = 0;

  constructor(
    readonly size: number,
    readonly config: AdamWConfig,
  ) {
    const { beta1, beta2, eps, weightDecay } = config;
    if (!(beta1 >= 0 && beta1 < 1)) throw new RangeError(`AdamW beta1 must be in [0, 1), got ${beta1}`);
    if (!(beta2 >= 0 && beta2 < 1)) throw new RangeError(`AdamW beta2 must be in [0, 1), got ${beta2}`);
    if (!(eps > 0)) throw new RangeError(`AdamW eps must be positive, got ${eps}`);
    if (!(weightDecay >= 0)) throw new RangeError(`AdamW weight decay must be >= 0, got ${weightDecay}`);
    this.m = alloc(size);
    this.v = alloc(size);
  }

  /** One update of `param` from `grad` at learning rate `lr`. */
  update(param: F32, grad: F32, lr: number): void {
    if (param.length !== this.size || grad.length !== this.size) {
      throw new RangeError(
        `AdamW: group has ${this.size} values, got param ${param.length} and grad ${grad.length}`,
      );
    }
    this.step++;
    const { beta1, beta2, eps, weightDecay } = this.config;
    kernels().adamw(param, grad, this.m, this.v, this.size, lr, beta1, beta2, eps, weightDecay, this.step);
  }

  /** Puts saved moments and the update count back (resume). */
  restore(m: ArrayLike<number>, v: ArrayLike<number>, step: number): void {
    if (m.length !== this.size || v.length !== this.size) {
      throw new RangeError(
        `AdamW.restore: saved moments have ${m.length} and ${v.length} values, the group ${this.size}`,
      );
    }
    if (!(Number.isInteger(step) && step >= 0))
      throw new RangeError(`AdamW.restore: step must be an integer >= 0, got ${step}`);
    this.m.set(m);
    this.v.set(v);
    this.step = step;
  }
}

/** The L2 norm of one or more gradient arrays taken together, accumulated in float64 in order. */
export function gradNorm(grads: ArrayLike<number> | readonly ArrayLike<number>[]): number {
  let s = 0;
  for (const g of gradList(grads)) for (let i = 0; i < g.length; i++) s += g[i] * g[i];
  return Math.sqrt(s);
}

/**
 * How the clip factor multiplies float32 gradients: rounded to float32 first, like torch's
 * grad.mul_(clip_coef) on float32 grads (the LoRA trainer), or in float64 with the product rounded
 * once (pretrain: the bundled zoo models were built this way, and their rebuild is bitwise).
 */
export type ClipFactor = 'float32' | 'float64';

/**
 * torch.nn.utils.clip_grad_norm_ over one gradient array or several taken together (one global
 * norm): total = ||grads||; coef = maxNorm / (total + 1e-6), clamped to 1; grads *= coef when
 * coef < 1. maxNorm 0 (or less) disables clipping. Returns the norm before clipping (what HF logs as
 * grad_norm). A non-finite norm leaves the gradients as they are and is returned: the caller refuses
 * the update.
 */
export function clipGradNorm(
  grads: F32 | readonly F32[],
  maxNorm: number,
  factor: ClipFactor = 'float32',
): number {
  const total = gradNorm(grads);
  if (!(maxNorm > 0) || !Number.isFinite(total)) return total;
  const coef = maxNorm / (total + 1e-6);
  if (coef < 1) {
    for (const g of gradList(grads)) {
      // float32 grads get a float32 factor (exact in float64 mode, whose grads are Float64Array)
      const c = factor === 'float32' && g instanceof Float32Array ? Math.fround(coef) : coef;
      for (let i = 0; i < g.length; i++) g[i] *= c;
    }
  }
  return total;
}

function gradList<T extends ArrayLike<number>>(grads: T | readonly T[]): readonly T[] {
  return Array.isArray(grads) ? (grads as readonly T[]) : [grads as T];
}
