/**
 * One LLaMA-family decoder layer, forward and backward written out per op (llm.c style):
 *
 *   xn1 = RMSNorm(x)            q,k,v = Linear(xn1) (+bias)     RoPE(q), RoPE(k)
 *   att = GQA attention(q,k,v) with causal + key-padding mask   x1 = x + o_proj(att)
 *   xn2 = RMSNorm(x1)           g,u = gate(xn2), up(xn2)         a = silu(g) * u
 *   out = x1 + down(a)
 *
 * Rows are tokens: x is [B*T, d], laid out batch-major, so q [B*T, Hq*hd] is exactly the
 * attention kernel's [B, T, Hq, hd].
 *
 * A layer can be built from a WeightSource on its own (`DecoderLayer.load`), run forward and
 * backward, and dropped: the streaming sensitivity code recomputes one layer's forward from a saved
 * boundary hidden state right before its backward. forward() keeps a reference to its input x
 * (the caller must leave it unchanged until backward) and saves the activations backward needs in
 * buffers owned by the layer; backward temporaries live in a Workspace shared by all layers.
 */
import { kernels } from '../engine/backend.js';
import type { ModelConfig } from './config.js';
import { Linear } from './linear.js';
import { RunMode } from './mode.js';
import { loadLayerParams, ParamStore, type Param } from './params.js';
import { ropeInvFreq } from '../engine/rope.js';
import { Growable, Workspace } from './workspace.js';
import type { WeightSource } from './weights.js';

type F32 = Float32Array;

/** Keys and values of one layer for KV-cache decoding: [B, capacity, Hkv, hd] each. */
export interface LayerCache {
  k: F32;
  v: F32;
}

/** What the attention of a forward call sees. Rows of x are B*T query tokens. */
export interface SeqContext {
  B: number;
  T: number;
  /** RoPE position of each query row [B*T]. */
  positions: Int32Array;
  /**
   * Which keys are real tokens: [B*T] without a cache, [B*capacity] with one. null = all real.
   */
  keyMask: Uint8Array | null;
  /**
   * KV-cache decoding: keys/values of positions [0, start) of each sequence are already in the
   * cache; this call appends T more and attends over start + T keys. Nothing is saved for backward.
   */
  cache?: { layer: LayerCache; start: number; capacity: number };
}

export const LINEAR_NAMES = [
  'q_proj',
  'k_proj',
  'v_proj',
  'o_proj',
  'gate_proj',
  'up_proj',
  'down_proj',
] as const;
export type LinearName = (typeof LINEAR_NAMES)[number];

export class DecoderLayer {
  readonly d: number;
  readonly f: number;
  readonly qd: number;
  readonly kvd: number;
  readonly q: Linear;
  readonly k: Linear;
  readonly v: Linear;
  readonly o: Linear;
  readonly gate: Linear;
  readonly up: Linear;
  readonly down: Linear;
  readonly norm1: Param;
  readonly norm2: Param;
  private readonly invFreq: F32;

  // saved activations (per layer; valid from forward to backward)
  private x: F32 | null = null;
  private rows = 0;
  private ctx: SeqContext | null = null;
  /** The layer's output: always its own, since it is the next layer's saved input. */
  private readonly outBuf = new Growable();
  private bufs: ActivationBuffers = newActivationBuffers();
  private ownBufs = this.bufs;

  constructor(
    readonly config: ModelConfig,
    readonly index: number,
    readonly params: ParamStore,
    readonly ws: Workspace = new Workspace(),
    readonly mode: RunMode = new RunMode(),
  ) {
    const c = config;
    this.d = c.hiddenSize;
    this.f = c.intermediateSize;
    this.qd = c.numHeads * c.headDim;
    this.kvd = c.numKvHeads * c.headDim;
    if (c.numHeads % c.numKvHeads !== 0)
      throw new Error(
        `num_attention_heads ${c.numHeads} is not a multiple of num_key_value_heads ${c.numKvHeads}`,
      );
    if (c.headDim % 2 !== 0) throw new Error(`head_dim ${c.headDim} is odd (RoPE needs pairs)`);
    const p = `model.layers.${index}`;
    const lin = (sub: string, hasBias: boolean) => {
      const name = `${p}.${sub}`;
      return new Linear(
        name,
        params.get(`${name}.weight`),
        hasBias ? params.get(`${name}.bias`) : null,
        ws,
        mode,
      );
    };
    this.q = lin('self_attn.q_proj', c.attentionBias);
    this.k = lin('self_attn.k_proj', c.attentionBias);
    this.v = lin('self_attn.v_proj', c.attentionBias);
    this.o = lin('self_attn.o_proj', c.oBias);
    this.gate = lin('mlp.gate_proj', c.mlpBias);
    this.up = lin('mlp.up_proj', c.mlpBias);
    this.down = lin('mlp.down_proj', c.mlpBias);
    this.norm1 = params.get(`${p}.input_layernorm.weight`);
    this.norm2 = params.get(`${p}.post_attention_layernorm.weight`);
    this.invFreq = ropeInvFreq(c.headDim, c.ropeTheta, c.ropeScaling);
  }

  /**
   * Activation checkpointing: with `shared` set, the activations backward needs live in buffers shared
   * by every layer, so only one layer's are held at a time; the model recomputes a layer's forward
   * from its saved input right before that layer's backward. null: the layer's own buffers again.
   */
  shareActivations(shared: ActivationBuffers | null): void {
    this.bufs = shared ?? this.ownBufs;
    if (shared) for (const g of Object.values(this.ownBufs)) g.release();
  }

  /** Builds layer i alone from a WeightSource (shapes checked against the config). */
  static load(
    ws: WeightSource,
    config: ModelConfig,
    i: number,
    workspace?: Workspace,
    mode?: RunMode,
  ): DecoderLayer {
    return new DecoderLayer(config, i, loadLayerParams(ws, config, i), workspace, mode);
  }

  linears(): Linear[] {
    return [this.q, this.k, this.v, this.o, this.gate, this.up, this.down];
  }

  /**
   * out [B*T, d] = layer(x [B*T, d]). Returns a view of a buffer owned by the layer, valid until its
   * next forward (it is the next layer's saved input, so it must not be overwritten by the caller).
   */
  forward(x: F32, ctx: SeqContext): F32 {
    const kk = kernels();
    const c = this.config;
    const { d, f, qd, kvd } = this;
    const N = ctx.B * ctx.T;
    const b = this.bufs;
    const eps = c.rmsNormEps;
    const H = c.numHeads,
      Hkv = c.numKvHeads,
      hd = c.headDim;
    this.x = x;
    this.rows = N;
    this.ctx = ctx;

    const xn1 = b.xn1.view(N * d),
      rstd1 = b.rstd1.view(N);
    kk.rmsnormForward(xn1, rstd1, x, this.norm1.data, N, d, eps);
    const q = b.q.view(N * qd),
      k = b.k.view(N * kvd),
      v = b.v.view(N * kvd);
    this.q.forward(q, xn1, N);
    this.k.forward(k, xn1, N);
    this.v.forward(v, xn1, N);
    kk.rope(q, ctx.positions, N, H, hd, this.invFreq, c.ropeStyle, false);
    kk.rope(k, ctx.positions, N, Hkv, hd, this.invFreq, c.ropeStyle, false);

    const att = b.att.view(N * qd);
    const scale = 1 / Math.sqrt(hd);
    if (ctx.cache) {
      this.attendCached(att, q, k, v, ctx, scale);
    } else {
      const probs = b.probs.view(ctx.B * H * ctx.T * ctx.T);
      kk.attentionForward(att, probs, q, k, v, ctx.keyMask, ctx.B, ctx.T, ctx.T, H, Hkv, hd, scale);
    }

    const x1 = b.x1.view(N * d);
    this.o.forward(x1, att, N);
    addInPlace(x1, x, N * d);

    const xn2 = b.xn2.view(N * d),
      rstd2 = b.rstd2.view(N);
    kk.rmsnormForward(xn2, rstd2, x1, this.norm2.data, N, d, eps);
    const g = b.g.view(N * f),
      u = b.u.view(N * f),
      a = b.a.view(N * f);
    this.gate.forward(g, xn2, N);
    this.up.forward(u, xn2, N);
    kk.swigluForward(a, g, u, N * f);
    const out = this.outBuf.view(N * d);
    this.down.forward(out, a, N);
    addInPlace(out, x1, N * d);
    return out;
  }

  /** Appends this step's k, v to the cache and attends over everything cached, one sequence at a time. */
  private attendCached(att: F32, q: F32, k: F32, v: F32, ctx: SeqContext, scale: number): void {
    const kk = kernels();
    const c = this.config;
    const { qd, kvd } = this;
    const { B, T } = ctx;
    const { layer, start, capacity } = ctx.cache!;
    const Tk = start + T;
    if (Tk > capacity) throw new Error(`KV cache overflow: ${Tk} positions, capacity ${capacity}`);
    const probs = this.ws.view('attn.cachedProbs', c.numHeads * T * Tk);
    for (let bi = 0; bi < B; bi++) {
      const base = bi * capacity * kvd;
      layer.k.set(k.subarray(bi * T * kvd, (bi + 1) * T * kvd), base + start * kvd);
      layer.v.set(v.subarray(bi * T * kvd, (bi + 1) * T * kvd), base + start * kvd);
      const mask = ctx.keyMask ? ctx.keyMask.subarray(bi * capacity, bi * capacity + Tk) : null;
      kk.attentionForward(
        att.subarray(bi * T * qd, (bi + 1) * T * qd),
        probs,
        q.subarray(bi * T * qd, (bi + 1) * T * qd),
        layer.k.subarray(base, base + Tk * kvd),
        layer.v.subarray(base, base + Tk * kvd),
        mask,
        1,
        T,
        Tk,
        c.numHeads,
        c.numKvHeads,
        c.headDim,
        scale,
      );
    }
  }

  /**
   * Backward of the last forward: dx [B*T, d] is overwritten with dL/dx given dout = dL/dout.
   * Parameter gradients are accumulated into Params that have gradient arrays, LoRA grads into
   * the attached adapters. dout is read only; dx must not alias it.
   */
  backward(dout: F32, dx: F32): void {
    const x = this.x,
      ctx = this.ctx;
    if (!x || !ctx) throw new Error(`layer ${this.index}: backward without a forward`);
    if (ctx.cache) throw new Error(`layer ${this.index}: backward after a KV-cache forward`);
    const kk = kernels();
    const c = this.config;
    const { d, f, qd, kvd } = this;
    const N = this.rows;
    const b = this.bufs;
    const ws = this.ws;
    const H = c.numHeads,
      Hkv = c.numKvHeads,
      hd = c.headDim;
    const xn1 = b.xn1.view(N * d),
      rstd1 = b.rstd1.view(N);
    const x1 = b.x1.view(N * d),
      xn2 = b.xn2.view(N * d),
      rstd2 = b.rstd2.view(N);
    const g = b.g.view(N * f),
      u = b.u.view(N * f),
      a = b.a.view(N * f);

    // MLP branch: out = x1 + down(silu(g) * u)
    const da = ws.view('blk.da', N * f);
    this.down.backward(da, dout, a, N);
    const dg = ws.view('blk.dg', N * f),
      du = ws.view('blk.du', N * f);
    kk.swigluBackward(dg, du, da, g, u, N * f);
    const dxn2 = ws.view('blk.dxn2', N * d);
    this.gate.backward(dxn2, dg, xn2, N);
    this.up.backward(dxn2, du, xn2, N, true);
    const dx1 = ws.view('blk.dx1', N * d);
    kk.rmsnormBackward(dx1, this.norm2.grad, dxn2, x1, this.norm2.data, rstd2, N, d);
    addInPlace(dx1, dout, N * d);

    // attention branch: x1 = x + o(att)
    const datt = ws.view('blk.datt', N * qd);
    this.o.backward(datt, dx1, b.att.view(N * qd), N);
    const dq = ws.view('blk.dq', N * qd),
      dk = ws.view('blk.dk', N * kvd),
      dv = ws.view('blk.dv', N * kvd);
    const q = b.q.view(N * qd),
      k = b.k.view(N * kvd),
      v = b.v.view(N * kvd);
    const probs = b.probs.view(ctx.B * H * ctx.T * ctx.T);
    kk.attentionBackward(
      dq,
      dk,
      dv,
      datt,
      q,
      k,
      v,
      probs,
      ctx.B,
      ctx.T,
      ctx.T,
      H,
      Hkv,
      hd,
      1 / Math.sqrt(hd),
    );
    // RoPE is a rotation: its backward is the inverse rotation of the gradient.
    kk.rope(dq, ctx.positions, N, H, hd, this.invFreq, c.ropeStyle, true);
    kk.rope(dk, ctx.positions, N, Hkv, hd, this.invFreq, c.ropeStyle, true);
    const dxn1 = ws.view('blk.dxn1', N * d);
    this.q.backward(dxn1, dq, xn1, N);
    this.k.backward(dxn1, dk, xn1, N, true);
    this.v.backward(dxn1, dv, xn1, N, true);
    kk.rmsnormBackward(dx, this.norm1.grad, dxn1, x, this.norm1.data, rstd1, N, d);
    addInPlace(dx, dx1, N * d);
  }

  /** The output of the last forward, [rows, d] (the next layer's input). */
  output(rows: number): F32 {
    return this.outBuf.view(rows * this.d);
  }

  /** Frees the saved activations (the params stay). */
  releaseActivations(): void {
    for (const g of Object.values(this.bufs)) g.release();
    this.outBuf.release();
    this.x = null;
    this.ctx = null;
  }
}

/** What a layer's backward reads of its forward (besides its input and output). */
export interface ActivationBuffers {
  xn1: Growable;
  rstd1: Growable;
  q: Growable;
  k: Growable;
  v: Growable;
  att: Growable;
  probs: Growable;
  x1: Growable;
  xn2: Growable;
  rstd2: Growable;
  g: Growable;
  u: Growable;
  a: Growable;
}

export function newActivationBuffers(): ActivationBuffers {
  return {
    xn1: new Growable(),
    rstd1: new Growable(),
    q: new Growable(),
    k: new Growable(),
    v: new Growable(),
    att: new Growable(),
    probs: new Growable(),
    x1: new Growable(),
    xn2: new Growable(),
    rstd2: new Growable(),
    g: new Growable(),
    u: new Growable(),
    a: new Growable(),
  };
}

function addInPlace(y: F32, x: F32, n: number): void {
  for (let i = 0; i < n; i++) y[i] += x[i];
}
