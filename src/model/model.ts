/**
 * The LLaMA-family causal LM (LLaMA, Mistral, Qwen2 layouts): embedding -> decoder layers -> final
 * RMSNorm -> lm_head, with explicit backward, answer-only loss, gradients for every parameter and
 * for the embedding output, and LoRA on any linear module, the embedding and lm_head.
 *
 * Typical training step:
 *   model.zeroGrads(); const l = model.loss(batch, targets); model.backward();
 * Gradients then sit in `model.params.get(name).grad` (when enabled) and in each Lora's dA/dB.
 */
import { alloc } from '../engine/alloc.js';
import { contextLength, type ModelConfig } from './config.js';
import type { WeightSource } from './weights.js';
import { loadAllParams, ParamStore } from './params.js';
import { RunMode } from './mode.js';
import { Workspace, Growable } from './workspace.js';
import { Embedding } from './embedding.js';
import { DecoderLayer, newActivationBuffers, type LayerCache, type SeqContext } from './block.js';
import { Head } from './head.js';
import { Linear } from './linear.js';
import type { Lora, LoraOptions } from './lora.js';
import type { KdTerm } from '../distill/kl.js';
import { checkBatch, positionsFromMask, type Batch } from './batch.js';

type F32 = Float32Array;

export interface ModelSource {
  config: ModelConfig;
  weights: WeightSource;
}

export class LlamaModel {
  readonly embed: Embedding;
  readonly layers: DecoderLayer[];
  readonly head: Head;
  readonly ws = new Workspace();
  /** Training flag and the seeded RNG of the LoRA dropout masks (save its state to resume). */
  readonly mode = new RunMode();

  private readonly embOut = new Growable();
  private readonly posBuf = new Growable32();
  private readonly gradA = new Growable();
  private readonly gradB = new Growable();
  private last: { batch: Batch; rows: number } | null = null;
  private inGrad: F32 | null = null;
  private lossPending = false;
  /** Activation checkpointing: per layer, its input and the dropout RNG state before its forward. */
  private checkpoint: { rngBefore: number[][]; ctx: SeqContext | null } | null = null;

  constructor(
    readonly config: ModelConfig,
    readonly params: ParamStore,
  ) {
    this.embed = new Embedding('model.embed_tokens', params.get('model.embed_tokens.weight'), this.ws);
    this.layers = [];
    for (let i = 0; i < config.numLayers; i++)
      this.layers.push(new DecoderLayer(config, i, params, this.ws, this.mode));
    this.head = new Head(config, params, this.ws, this.mode);
  }

  /** Loads every tensor of the model (names and shapes checked against the config). */
  static load(src: ModelSource): LlamaModel {
    return new LlamaModel(src.config, loadAllParams(src.weights, src.config));
  }

  // ------------------------------------------------------------------ modules, LoRA, grads

  /** Every LoRA-capable module by its HF/PEFT path (`model.embed_tokens`, `model.layers.0.self_attn.q_proj`, `lm_head`). */
  modules(): Map<string, Linear | Embedding> {
    const m = new Map<string, Linear | Embedding>();
    m.set(this.embed.name, this.embed);
    for (const layer of this.layers) for (const lin of layer.linears()) m.set(lin.name, lin);
    m.set(this.head.lmHead.name, this.head.lmHead);
    return m;
  }

  module(name: string): Linear | Embedding {
    const m = this.modules().get(name);
    if (!m) throw new Error(`no module named ${name}`);
    return m;
  }

  attachLora(name: string, opts: LoraOptions): Lora {
    return this.module(name).attachLora(opts);
  }

  /** The attached adapters by module path. */
  loras(): Map<string, Lora> {
    const out = new Map<string, Lora>();
    for (const [name, m] of this.modules()) if (m.lora) out.set(name, m.lora);
    return out;
  }

  /** Makes base parameters trainable: all of them, or those whose HF name passes `filter`. */
  enableGrads(filter?: (name: string) => boolean): void {
    this.params.enableGrads(filter);
  }

  /** Zeroes base-parameter and LoRA gradients. */
  zeroGrads(): void {
    this.params.zeroGrads();
    for (const l of this.loras().values()) l.zeroGrads();
  }

  setTraining(on: boolean): void {
    this.mode.training = on;
  }

  /**
   * Activation checkpointing per decoder layer (HF's gradient_checkpointing): forward keeps each layer's
   * input and nothing else of it; backward recomputes the layer's forward, with the same LoRA dropout
   * masks (the RNG is rewound to where that layer's forward drew them), right before its backward. The
   * gradients equal the unchecked path's; the activations held drop from every layer's to one layer's,
   * at the price of a second forward through the layers.
   */
  setGradientCheckpointing(on: boolean): void {
    if (on === (this.checkpoint !== null)) return;
    const shared = on ? newActivationBuffers() : null;
    for (const layer of this.layers) layer.shareActivations(shared);
    this.checkpoint = on ? { rngBefore: [], ctx: null } : null;
  }

  get gradientCheckpointing(): boolean {
    return this.checkpoint !== null;
  }

  // ------------------------------------------------------------------ forward

  private positions(batch: Batch): Int32Array {
    const n = batch.B * batch.T;
    return positionsFromMask(batch.attentionMask, batch.B, batch.T, this.posBuf.view(n));
  }

  /** Embedding output [B*T, d] then every layer; returns the last hidden state (before the final norm). */
  hidden(batch: Batch): F32 {
    checkBatch(batch);
    const { B, T } = batch;
    if (T > contextLength(this.config))
      throw new RangeError(
        `${T} tokens a sequence is more than the model computes exactly (${contextLength(this.config)}: ${this.config.slidingWindow ? 'its sliding window' : 'its context'})`,
      );
    const N = B * T,
      d = this.config.hiddenSize;
    const ctx: SeqContext = {
      B,
      T,
      positions: this.positions(batch),
      keyMask: batch.attentionMask ? batch.attentionMask.subarray(0, N) : null,
    };
    let h: F32;
    if (batch.inputEmbeds) {
      if (batch.inputEmbeds.length < N * d)
        throw new RangeError(`inputEmbeds has ${batch.inputEmbeds.length} values for B*T*d = ${N * d}`);
      h = batch.inputEmbeds.subarray(0, N * d);
    } else {
      this.embed.checkIds(batch.ids, N);
      h = this.embOut.view(N * d);
      this.embed.forward(h, batch.ids, N);
    }
    const cp = this.checkpoint;
    if (cp) cp.ctx = ctx;
    for (let i = 0; i < this.layers.length; i++) {
      if (cp) cp.rngBefore[i] = this.mode.rng.getState();
      h = this.layers[i].forward(h, ctx);
    }
    this.last = { batch, rows: N };
    this.lossPending = false;
    return h;
  }

  /** Logits [B*T, V] (a view of a model buffer, valid until the next forward or loss). */
  forward(batch: Batch): F32 {
    const h = this.hidden(batch);
    return this.head.forward(h, batch.B * batch.T);
  }

  /**
   * Mean next-token cross-entropy over positions whose target is >= 0 (targets [B*T], -1 = ignored,
   * so masking the prompt gives the answer-only loss). Targets are aligned with the rows: the target
   * of row i is the token that should follow it. Prepares backward().
   * opts.rowLoss receives each row's loss; opts.gradScale replaces the 1/count factor of the
   * gradient (e.g. 1/tokens of a whole accumulated batch); the returned loss is the mean either way.
   * opts.kd adds the logit-distillation term (src/distill/kl.ts): loss (1 − λ)·CE + λ·T²·KL.
   */
  loss(
    batch: Batch,
    targets: Int32Array,
    opts: { rowLoss?: F32; gradScale?: number; kd?: KdTerm } = {},
  ): number {
    this.forward(batch);
    if (targets.length < batch.B * batch.T)
      throw new RangeError(`loss: ${targets.length} targets for B*T = ${batch.B * batch.T}`);
    const { loss } = this.head.loss(targets, opts.rowLoss ?? null, opts.gradScale, opts.kd);
    this.lossPending = true;
    return loss;
  }

  /**
   * Backward of the last loss(): accumulates gradients into trainable params and LoRA factors and
   * leaves dL/d(embedding output) in `inputGrad`.
   */
  backward(): void {
    if (!this.last || !this.lossPending) throw new Error('backward: call loss() first');
    this.lossPending = false;
    const { batch, rows: N } = this.last;
    const d = this.config.hiddenSize;
    let dout = this.gradA.view(N * d);
    let dx = this.gradB.view(N * d);
    this.head.backward(dout);
    const cp = this.checkpoint;
    const rngAfter = cp ? this.mode.rng.getState() : null;
    for (let i = this.layers.length - 1; i >= 0; i--) {
      if (cp) {
        // Recompute layer i from its input (the previous layer's output, or the embedding output).
        this.mode.rng.setState(cp.rngBefore[i]);
        const x = i === 0 ? this.layerInput(batch, N) : this.layers[i - 1].output(N);
        this.layers[i].forward(x, cp.ctx!);
      }
      this.layers[i].backward(dout, dx);
      [dout, dx] = [dx, dout];
    }
    if (rngAfter) this.mode.rng.setState(rngAfter);
    this.inGrad = dout;
    if (!batch.inputEmbeds) this.embed.backward(dout, batch.ids, N);
  }

  /** What the first layer read in the last forward: the embedding output or the given embeddings. */
  private layerInput(batch: Batch, N: number): F32 {
    const d = this.config.hiddenSize;
    return batch.inputEmbeds ? batch.inputEmbeds.subarray(0, N * d) : this.embOut.view(N * d);
  }

  /** dL/d(embedding output) [B*T, d] from the last backward. */
  get inputGrad(): F32 {
    if (!this.inGrad) throw new Error('inputGrad: call backward() first');
    return this.inGrad;
  }

  // ------------------------------------------------------------------ KV-cache decoding

  /** A KV cache for B sequences of up to `capacity` positions. */
  newCache(B: number, capacity: number): KvCache {
    return new KvCache(this.config, B, capacity);
  }

  /**
   * Runs T new tokens per sequence (ids [B*T], batch-major) through the model against the cache,
   * appending their keys and values, and returns the logits of each sequence's LAST new token [B, V].
   * positions [B*T] are the RoPE positions of the new tokens; cache.mask must already mark the new
   * places (1 real, 0 padding).
   */
  step(ids: Int32Array, B: number, T: number, positions: Int32Array, cache: KvCache): F32 {
    const N = B * T,
      d = this.config.hiddenSize;
    if (B !== cache.B) throw new Error(`step: ${B} sequences but the cache holds ${cache.B}`);
    if (cache.length + T > contextLength(this.config))
      throw new RangeError(
        `step: ${cache.length + T} tokens are more than the model computes exactly (${contextLength(this.config)})`,
      );
    this.embed.checkIds(ids, N);
    let h = this.embOut.view(N * d);
    this.embed.forward(h, ids, N);
    for (let l = 0; l < this.layers.length; l++) {
      const ctx: SeqContext = {
        B,
        T,
        positions,
        keyMask: cache.mask,
        cache: { layer: cache.layers[l], start: cache.length, capacity: cache.capacity },
      };
      h = this.layers[l].forward(h, ctx);
    }
    cache.length += T;
    this.last = null;
    // only the last token of each sequence needs logits
    let hl = h;
    if (T > 1) {
      hl = this.ws.view('step.last', B * d);
      for (let b = 0; b < B; b++) hl.set(h.subarray((b * T + T - 1) * d, (b * T + T) * d), b * d);
    }
    return this.head.forward(hl, B);
  }
}

/** Keys/values of every layer for B sequences, [B, capacity, Hkv, hd], plus the key mask [B, capacity]. */
export class KvCache {
  readonly layers: LayerCache[];
  readonly mask: Uint8Array;
  /** Positions filled so far (the same for every sequence: prompts are left-padded). */
  length = 0;

  constructor(
    config: ModelConfig,
    readonly B: number,
    readonly capacity: number,
  ) {
    const n = B * capacity * config.numKvHeads * config.headDim;
    this.layers = [];
    // allocated in the compute precision, so the attention kernel sees one array type
    for (let l = 0; l < config.numLayers; l++) this.layers.push({ k: alloc(n), v: alloc(n) });
    this.mask = new Uint8Array(B * capacity);
  }
}

/** A growable Int32Array. */
class Growable32 {
  private buf = new Int32Array(0);
  view(n: number): Int32Array {
    if (this.buf.length < n) this.buf = new Int32Array(n);
    return this.buf.subarray(0, n);
  }
}
