/**
 * A LoRA adapter attached to one module (PEFT semantics). For a Linear [out, in]:
 *   y = x W^T + b + scale * (dropout(x) A^T) B^T,  A [r, in], B [out, r], scale = alpha / r.
 * For the embedding (PEFT `lora_embedding_A` [r, V], `lora_embedding_B` [d, r]):
 *   y = E[id] + scale * (A^T[id]) B^T, i.e. the weight delta is (B·A)^T; no dropout (PEFT applies none).
 * The base weight is frozen unless its Param has a gradient array.
 */
import { alloc, allocFrom } from '../engine/alloc.js';
import type { Rng } from '../engine/rng.js';

type F32 = Float32Array;

export interface LoraOptions {
  r: number;
  alpha: number;
  /** Dropout probability on the LoRA input in training mode (PEFT lora_dropout). */
  dropout?: number;
  /** Initial factors (copied). Without them: PEFT default init, drawn from `rng`. */
  A?: ArrayLike<number>;
  B?: ArrayLike<number>;
  rng?: Rng;
}

export class Lora {
  readonly r: number;
  readonly alpha: number;
  readonly scale: number;
  readonly dropout: number;
  /** [r, in] (embedding: [r, V]). */
  A: F32;
  /** [out, r] (embedding: [d, r]). */
  B: F32;
  /** Gradients, accumulated by backward (zero them between steps). */
  dA: F32;
  dB: F32;

  /**
   * @param inDim  columns of A (`in` of the Linear, V for the embedding)
   * @param outDim rows of B (`out` of the Linear, d for the embedding)
   * @param embedding PEFT's embedding default init differs (A = 0, B normal)
   */
  constructor(
    readonly inDim: number,
    readonly outDim: number,
    opts: LoraOptions,
    readonly embedding = false,
  ) {
    const { r, alpha } = opts;
    if (!Number.isInteger(r) || r < 1) throw new Error(`LoRA rank must be a positive integer, got ${r}`);
    if (!(alpha > 0)) throw new Error(`LoRA alpha must be positive, got ${alpha}`);
    const p = opts.dropout ?? 0;
    if (!(p >= 0 && p < 1)) throw new Error(`LoRA dropout must be in [0, 1), got ${p}`);
    this.r = r;
    this.alpha = alpha;
    this.scale = alpha / r;
    this.dropout = embedding ? 0 : p;
    this.A = initFactor(opts.A, r * inDim, 'A');
    this.B = initFactor(opts.B, outDim * r, 'B');
    if (!opts.A && !opts.B) this.defaultInit(opts.rng);
    else if (!opts.A || !opts.B) throw new Error('LoRA init: give both A and B, or neither');
    this.dA = alloc(this.A.length);
    this.dB = alloc(this.B.length);
  }

  /**
   * PEFT's default init: Linear A ~ kaiming_uniform(a = sqrt(5)) (bound 1/sqrt(in)), B = 0;
   * embedding A = 0, B ~ N(0, 1). Either way B·A = 0 at the start.
   */
  private defaultInit(rng: Rng | undefined): void {
    if (!rng) throw new Error('LoRA default init needs an rng (or give A and B)');
    if (this.embedding) {
      this.A.fill(0);
      rng.fillNormal(this.B);
    } else {
      rng.fillKaimingUniform(this.A, this.inDim);
      this.B.fill(0);
    }
  }

  zeroGrads(): void {
    this.dA.fill(0);
    this.dB.fill(0);
  }
}

function initFactor(src: ArrayLike<number> | undefined, n: number, what: string): F32 {
  if (!src) return alloc(n);
  if (src.length !== n) throw new Error(`LoRA ${what} has ${src.length} values, expected ${n}`);
  return allocFrom(src);
}
