/**
 * Linear op y = x W^T + b (W [out, in], HF layout) with an optional LoRA (src/model/lora.ts).
 * Every product goes through kernels().gemm with transpose flags; nothing is transposed in memory.
 * A weight stored bf16/f16 (a frozen base) is read in place by kernels().gemmHalf.
 *
 * Forward saves only what the LoRA backward needs (h = drop(x) A^T and the dropout mask); the
 * input x itself is owned and kept by the caller (the decoder layer saves it anyway) and passed
 * back to backward.
 */
import { kernels } from '../engine/backend.js';
import { getComputeDtype } from '../engine/half.js';
import { Growable, Workspace } from './workspace.js';
import { Lora, type LoraOptions } from './lora.js';
import { RunMode } from './mode.js';
import type { Param } from './params.js';

type F32 = Float32Array;

export class Linear {
  readonly inDim: number;
  readonly outDim: number;
  lora: Lora | null = null;

  // saved for backward
  private readonly hBuf = new Growable();
  private readonly xdBuf = new Growable();
  private mask: Uint8Array | null = null;
  private dropped = false;

  constructor(
    /** HF module path, e.g. `model.layers.3.self_attn.q_proj` (PEFT keys derive from it). */
    readonly name: string,
    readonly weight: Param,
    readonly bias: Param | null,
    readonly ws: Workspace,
    readonly mode: RunMode,
  ) {
    [this.outDim, this.inDim] = weight.shape as [number, number];
    if (bias && bias.data.length !== this.outDim)
      throw new Error(`${name}: bias length ${bias.data.length} != ${this.outDim}`);
  }

  attachLora(opts: LoraOptions): Lora {
    this.lora = new Lora(this.inDim, this.outDim, opts);
    return this.lora;
  }

  detachLora(): void {
    this.lora = null;
    this.hBuf.release();
    this.xdBuf.release();
    this.mask = null;
  }

  /** y [rows, out] = x [rows, in] W^T + b (+ LoRA). y is overwritten. */
  forward(y: F32, x: F32, rows: number): void {
    const k = kernels();
    const { inDim: n, outDim: m } = this;
    let beta = 0;
    if (this.bias) {
      // y = 1 b^T, then the main GEMM accumulates on top (bias broadcast without a JS loop).
      k.gemm(false, false, rows, m, 1, 1, this.ws.ones(rows), 1, this.bias.data, m, 0, y, m);
      beta = 1;
    }
    const half = this.weight.half;
    if (half)
      k.gemmHalf(
        true,
        rows,
        m,
        n,
        1,
        x,
        n,
        half.bits,
        n,
        half.dtype,
        beta,
        y,
        m,
        getComputeDtype() === 'bf16',
      );
    else k.gemm(false, true, rows, m, n, 1, x, n, this.weight.data, n, beta, y, m);
    const lora = this.lora;
    if (!lora) return;
    const r = lora.r;
    let xd = x;
    this.dropped = this.mode.training && lora.dropout > 0;
    if (this.dropped) xd = this.dropout(x, rows * n, lora.dropout);
    const h = this.hBuf.view(rows * r);
    k.gemm(false, true, rows, r, n, 1, xd, n, lora.A, n, 0, h, r);
    k.gemm(false, true, rows, m, r, lora.scale, h, r, lora.B, r, 1, y, m);
  }

  /** Inverted dropout x * mask / (1 - p), the mask drawn from the mode's seeded RNG and saved. */
  private dropout(x: F32, len: number, p: number): F32 {
    if (!this.mask || this.mask.length < len) this.mask = new Uint8Array(len);
    const mask = this.mask;
    const xd = this.xdBuf.view(len);
    const keepScale = 1 / (1 - p);
    const threshold = Math.round(p * 4294967296);
    const rng = this.mode.rng;
    for (let i = 0; i < len; i++) {
      const keep = rng.nextU32() >= threshold ? 1 : 0;
      mask[i] = keep;
      xd[i] = keep ? x[i] * keepScale : 0;
    }
    return xd;
  }

  /**
   * Given dy [rows, out] and the forward input x: dx (if non-null) is overwritten, or added to when
   * `accumulate`; dW and db are accumulated when their Params have gradients (frozen otherwise);
   * LoRA dA, dB are accumulated.
   */
  backward(dx: F32 | null, dy: F32, x: F32, rows: number, accumulate = false): void {
    const k = kernels();
    const { inDim: n, outDim: m } = this;
    const W = this.weight;
    if (W.grad) k.gemm(true, false, m, n, rows, 1, dy, m, x, n, 1, W.grad, n);
    if (this.bias?.grad)
      k.gemm(true, false, m, 1, rows, 1, dy, m, this.ws.ones(rows), 1, 1, this.bias.grad, 1);
    if (dx) {
      // dX keeps float32 activations whatever the compute dtype: rounding gradients costs more than it saves
      const half = W.half;
      if (half)
        k.gemmHalf(false, rows, n, m, 1, dy, m, half.bits, n, half.dtype, accumulate ? 1 : 0, dx, n, false);
      else k.gemm(false, false, rows, n, m, 1, dy, m, W.data, n, accumulate ? 1 : 0, dx, n);
    }
    const lora = this.lora;
    if (!lora) return;
    const r = lora.r;
    const h = this.hBuf.view(rows * r);
    const xd = this.dropped ? this.xdBuf.view(rows * n) : x;
    // dB += scale dy^T h ; dh = scale dy B ; dA += dh^T xd ; dx += drop'(dh A)
    k.gemm(true, false, m, r, rows, lora.scale, dy, m, h, r, 1, lora.dB, r);
    const dh = this.ws.view('lora.dh', rows * r);
    k.gemm(false, false, rows, r, m, lora.scale, dy, m, lora.B, r, 0, dh, r);
    k.gemm(true, false, r, n, rows, 1, dh, r, xd, n, 1, lora.dA, n);
    if (!dx) return;
    if (!this.dropped) {
      k.gemm(false, false, rows, n, r, 1, dh, r, lora.A, n, 1, dx, n);
      return;
    }
    const len = rows * n;
    const t = this.ws.view('lora.dxd', len);
    k.gemm(false, false, rows, n, r, 1, dh, r, lora.A, n, 0, t, n);
    const mask = this.mask!;
    const keepScale = 1 / (1 - lora.dropout);
    for (let i = 0; i < len; i++) if (mask[i]) dx[i] += t[i] * keepScale;
  }
}
