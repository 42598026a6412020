/**
 * Learning-rate schedules, exactly as Hugging Face transformers defines them (the reference trains
 * with HF Trainer: warmup_ratio 0.03, linear decay; docs/method.md step 6).
 *
 * Step convention: `lrAt(k)` is the learning rate used by optimizer update number k (0-based).
 * HF calls `scheduler.step()` after each `optimizer.step()`, so update k uses lr_lambda(k): with any
 * warmup, the very first update has lr 0. The value HF logs after update k (its `learning_rate`, and
 * `current_steps = k + 1`) is lr_lambda(k + 1) = `lrAt(k + 1)`.
 *
 *   warmup steps = ceil(warmup_ratio * total)      (TrainingArguments.get_warmup_steps)
 *   linear:  k < w ? k / max(1, w) : max(0, (total - k) / max(1, total - w))
 *   cosine:  k < w ? k / max(1, w) : max(0, 0.5 * (1 + cos(pi * 2 * cycles * progress))),
 *            progress = (k - w) / max(1, total - w), cycles = 0.5
 *   constant: k < w ? k / max(1, w) : 1
 */
import { InputError } from '../errors.js';

export type ScheduleKind = 'linear' | 'cosine' | 'constant';

/** Everything that defines a schedule (saved in checkpoints; the schedule is a pure function of the step). */
export interface ScheduleState {
  kind: ScheduleKind;
  baseLr: number;
  totalSteps: number;
  warmupSteps: number;
}

/** HF's warmup steps: an explicit count wins, else ceil(ratio * total). */
export function warmupStepsFor(totalSteps: number, warmupRatio: number, warmupSteps = 0): number {
  if (warmupSteps > 0) return warmupSteps;
  // Same float product as Python's math.ceil(num_training_steps * warmup_ratio), rounding quirks included.
  return Math.ceil(totalSteps * warmupRatio);
}

/**
 * Optimizer updates for a run: ceil(examples / effective batch) per epoch (a final partial batch is
 * one update), times epochs.
 */
export function totalTrainingSteps(examples: number, effectiveBatch: number, epochs: number): number {
  return Math.ceil(examples / effectiveBatch) * epochs;
}

export class LrSchedule {
  readonly state: ScheduleState;

  constructor(state: ScheduleState) {
    const { kind, baseLr, totalSteps, warmupSteps } = state;
    if (!['linear', 'cosine', 'constant'].includes(kind))
      throw new InputError('scheduler', `unknown schedule "${kind}" (linear, cosine, constant)`);
    if (!(baseLr >= 0 && Number.isFinite(baseLr)))
      throw new InputError('learning rate', `must be a finite number >= 0, got ${baseLr}`);
    if (!(Number.isInteger(totalSteps) && totalSteps >= 1))
      throw new InputError('scheduler', `total steps must be a positive integer, got ${totalSteps}`);
    if (!(Number.isInteger(warmupSteps) && warmupSteps >= 0))
      throw new InputError('scheduler', `warmup steps must be an integer >= 0, got ${warmupSteps}`);
    this.state = { ...state };
  }

  /** The schedule HF Trainer builds from (total, warmup_ratio). */
  static fromRatio(kind: ScheduleKind, baseLr: number, totalSteps: number, warmupRatio: number): LrSchedule {
    if (!(warmupRatio >= 0 && warmupRatio <= 1))
      throw new InputError('warmup ratio', `must be in [0, 1], got ${warmupRatio}`);
    return new LrSchedule({ kind, baseLr, totalSteps, warmupSteps: warmupStepsFor(totalSteps, warmupRatio) });
  }

  /** The multiplier lr_lambda(k) of the base learning rate. */
  factor(k: number): number {
    const { kind, totalSteps: n, warmupSteps: w } = this.state;
    if (k < w) return k / Math.max(1, w);
    switch (kind) {
      case 'constant':
        return 1;
      case 'linear':
        return Math.max(0, (n - k) / Math.max(1, n - w));
      case 'cosine': {
        const progress = (k - w) / Math.max(1, n - w);
        return Math.max(0, 0.5 * (1 + Math.cos(Math.PI * 2 * 0.5 * progress)));
      }
    }
  }

  /** Learning rate of optimizer update k (0-based). */
  lrAt(k: number): number {
    return this.state.baseLr * this.factor(k);
  }
}
