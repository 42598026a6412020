/**
 * The model's output end: final RMSNorm, lm_head (its own Linear, possibly sharing the embedding's
 * Param when tied, possibly with a LoRA), and the answer-only cross-entropy.
 */
import { kernels } from '../engine/backend.js';
import { distillLoss, type KdTerm } from '../distill/kl.js';
import type { ModelConfig } from './config.js';
import { Linear } from './linear.js';
import { RunMode } from './mode.js';
import type { Param, ParamStore } from './params.js';
import { Growable, Workspace } from './workspace.js';

type F32 = Float32Array;

export class Head {
  readonly norm: Param;
  readonly lmHead: Linear;
  readonly d: number;
  readonly V: number;
  private h: F32 | null = null;
  private rows = 0;
  private readonly hn = new Growable();
  private readonly rstd = new Growable();
  private readonly logitsBuf = new Growable();
  private readonly kdGrad = new Growable();

  constructor(
    readonly config: ModelConfig,
    params: ParamStore,
    readonly ws: Workspace = new Workspace(),
    mode: RunMode = new RunMode(),
  ) {
    this.d = config.hiddenSize;
    this.V = config.vocabSize;
    this.norm = params.get('model.norm.weight');
    this.lmHead = new Linear('lm_head', params.get('lm_head.weight'), null, ws, mode);
  }

  /** logits [rows, V] from the last hidden state h [rows, d] (h is kept for backward). */
  forward(h: F32, rows: number): F32 {
    const { d, V } = this;
    this.h = h;
    this.rows = rows;
    const hn = this.hn.view(rows * d);
    kernels().rmsnormForward(hn, this.rstd.view(rows), h, this.norm.data, rows, d, this.config.rmsNormEps);
    const logits = this.logitsBuf.view(rows * V);
    this.lmHead.forward(logits, hn, rows);
    return logits;
  }

  /** The logits of the last forward. */
  logits(): F32 {
    return this.logitsBuf.view(this.rows * this.V);
  }

  /**
   * Mean cross-entropy over rows whose target is >= 0 (targets -1 are ignored: answer-only loss).
   * Writes dL/dlogits into the logits buffer (the logits are consumed) so that backward can follow.
   * rowLoss, if given, receives each row's loss (0 for ignored rows). gradScale is the factor of each
   * token's gradient: 1/count by default (the gradient of the mean); a trainer averaging over a whole
   * accumulated batch passes 1/(tokens in the batch) instead.
   * With `kd` the loss is (1 − λ)·CE + λ·T²·KL(teacher ‖ student) per token (src/distill/kl.ts), its
   * gradient likewise; λ = 0 leaves the cross-entropy path exactly as without `kd`.
   */
  loss(
    targets: Int32Array,
    rowLoss: F32 | null = null,
    gradScale?: number,
    kd?: KdTerm,
  ): { loss: number; count: number } {
    const rows = this.rows,
      V = this.V;
    let count = 0;
    for (let i = 0; i < rows; i++) {
      const t = targets[i];
      if (t >= 0) {
        if (t >= V)
          throw new RangeError(`target id ${t} at position ${i} is outside the vocabulary [0, ${V})`);
        count++;
      }
    }
    if (count === 0) throw new Error('loss: every target is ignored (-1): no tokens to score');
    const logits = this.logits();
    const scale = gradScale ?? 1 / count;
    if (!kd) {
      const sum = kernels().crossEntropy(logits, targets, rows, V, logits, scale, rowLoss);
      return { loss: sum / count, count };
    }
    const lambda = kd.lambda;
    if (!(lambda >= 0 && lambda <= 1))
      throw new RangeError(`distillation weight must be in [0, 1], got ${lambda}`);
    // the KD gradient is taken from the logits before the cross-entropy overwrites them with its own
    let kdGrad: F32 | null = null;
    if (lambda > 0) {
      kdGrad = this.kdGrad.view(rows * V);
      kdGrad.fill(0);
    }
    const kdSum = distillLoss(logits, targets, rows, V, kd, kdGrad, lambda * scale);
    const ceSum = kernels().crossEntropy(logits, targets, rows, V, logits, (1 - lambda) * scale, rowLoss);
    if (kdGrad) for (let i = 0; i < rows * V; i++) logits[i] += kdGrad[i];
    return { loss: ((1 - lambda) * ceSum + lambda * kdSum) / count, count };
  }

  /** dh [rows, d] overwritten from dlogits (as left in the logits buffer by loss(), or given). */
  backward(dh: F32, dlogits: F32 = this.logits()): void {
    const h = this.h;
    if (!h) throw new Error('head: backward without a forward');
    const { d, rows } = this;
    const dhn = this.ws.view('head.dhn', rows * d);
    this.lmHead.backward(dhn, dlogits, this.hn.view(rows * d), rows);
    kernels().rmsnormBackward(dh, this.norm.grad, dhn, h, this.norm.data, this.rstd.view(rows), rows, d);
  }
}
