/**
 * Token embedding y[i] = E[ids[i]] (E [V, d]) with an optional LoRA the PEFT way:
 * A = lora_embedding_A [r, V], B = lora_embedding_B [d, r], y[i] += scale * A[:, ids[i]]^T B^T,
 * i.e. the weight delta is (B·A)^T [V, d]. PEFT applies no dropout to embedding LoRA.
 */
import { kernels } from '../engine/backend.js';
import { Growable, Workspace } from './workspace.js';
import { Lora, type LoraOptions } from './lora.js';
import type { Param } from './params.js';

type F32 = Float32Array;

export class Embedding {
  readonly vocab: number;
  readonly dim: number;
  lora: Lora | null = null;
  private readonly hBuf = new Growable();

  constructor(
    readonly name: string,
    readonly weight: Param,
    readonly ws: Workspace,
  ) {
    [this.vocab, this.dim] = weight.shape as [number, number];
  }

  attachLora(opts: LoraOptions): Lora {
    this.lora = new Lora(this.vocab, this.dim, opts, true);
    return this.lora;
  }

  detachLora(): void {
    this.lora = null;
    this.hBuf.release();
  }

  /** Throws a RangeError naming the first id outside [0, V). */
  checkIds(ids: Int32Array, n: number): void {
    const V = this.vocab;
    for (let i = 0; i < n; i++) {
      const t = ids[i];
      if (!(t >= 0 && t < V))
        throw new RangeError(`token id ${t} at position ${i} is outside the vocabulary [0, ${V})`);
    }
  }

  /** y [n, d] overwritten. */
  forward(y: F32, ids: Int32Array, n: number): void {
    const k = kernels();
    const half = this.weight.half;
    if (half) k.embeddingForwardHalf(y, ids, half.bits, half.dtype, n, this.dim);
    else k.embeddingForward(y, ids, this.weight.data, n, this.dim);
    const lora = this.lora;
    if (!lora) return;
    const r = lora.r,
      V = this.vocab,
      A = lora.A;
    // h[i, j] = A[j, ids[i]]: a gather of r values per token (r is small; the GEMM below dominates).
    const h = this.hBuf.view(n * r);
    for (let i = 0; i < n; i++) {
      const t = ids[i];
      for (let j = 0; j < r; j++) h[i * r + j] = A[j * V + t];
    }
    k.gemm(false, true, n, this.dim, r, lora.scale, h, r, lora.B, r, 1, y, this.dim);
  }

  /** Accumulates dE (when the weight has a gradient) and the LoRA dA, dB from dy [n, d]. */
  backward(dy: F32, ids: Int32Array, n: number): void {
    const k = kernels();
    const d = this.dim;
    if (this.weight.grad) k.embeddingBackward(this.weight.grad, dy, ids, n, d);
    const lora = this.lora;
    if (!lora) return;
    const r = lora.r,
      V = this.vocab;
    const h = this.hBuf.view(n * r);
    k.gemm(true, false, d, r, n, lora.scale, dy, d, h, r, 1, lora.dB, r);
    const dh = this.ws.view('emb.dh', n * r);
    k.gemm(false, false, n, r, d, lora.scale, dy, d, lora.B, r, 0, dh, r);
    const dA = lora.dA;
    for (let i = 0; i < n; i++) {
      const t = ids[i];
      for (let j = 0; j < r; j++) dA[j * V + t] += dh[i * r + j];
    }
  }
}
