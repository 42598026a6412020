/**
 * The model architecture in nuggets' own terms, normalised from an HF config.json (see
 * src/io/hfconfig.ts) or a llama2.c header (src/io/llama2c.ts). Every field changes the math.
 */
import type { RopeScaling } from '../engine/rope.js';

export interface ModelConfig {
  /** HF model_type: llama, mistral or qwen2. */
  arch: 'llama' | 'mistral' | 'qwen2';
  vocabSize: number;
  hiddenSize: number;
  intermediateSize: number;
  numLayers: number;
  numHeads: number;
  numKvHeads: number;
  /** Per-head width; may differ from hiddenSize / numHeads. */
  headDim: number;
  rmsNormEps: number;
  ropeTheta: number;
  ropeScaling: RopeScaling | null;
  /** 'half' = HF rotate_half (every HF checkpoint); 'pairs' = llama2.c adjacent pairs (raw llama2.c weights). */
  ropeStyle: 'half' | 'pairs';
  maxPositionEmbeddings: number;
  tieWordEmbeddings: boolean;
  /** q/k/v projection biases (Qwen2). */
  attentionBias: boolean;
  /** o_proj bias as well (HF attention_bias on llama puts a bias on o too). */
  oBias: boolean;
  mlpBias: boolean;
  bosTokenId: number | null;
  eosTokenId: number[];
  padTokenId: number | null;
  /** Storage dtype named in config.json (informational; compute is fp32). */
  torchDtype: string;
  /**
   * Mistral / Qwen2 sliding-window attention: each token sees the last `slidingWindow` tokens. Attention
   * over at most that many tokens is full attention, so nuggets runs such models exactly up to the window
   * and refuses longer sequences (contextLength). Absent or null: full attention.
   */
  slidingWindow?: number | null;
}

/** The longest sequence the model computes exactly: its context, capped by a sliding window. */
export function contextLength(c: ModelConfig): number {
  return c.slidingWindow ? Math.min(c.maxPositionEmbeddings, c.slidingWindow) : c.maxPositionEmbeddings;
}

/** Names of the tensors of decoder layer i in HF layout. */
export function layerNames(c: ModelConfig, i: number): string[] {
  const names: string[] = [];
  const p = `model.layers.${i}`;
  for (const m of ['q', 'k', 'v', 'o']) {
    names.push(`${p}.self_attn.${m}_proj.weight`);
    if (m !== 'o' ? c.attentionBias : c.oBias) names.push(`${p}.self_attn.${m}_proj.bias`);
  }
  for (const m of ['gate', 'up', 'down']) {
    names.push(`${p}.mlp.${m}_proj.weight`);
    if (c.mlpBias) names.push(`${p}.mlp.${m}_proj.bias`);
  }
  names.push(`${p}.input_layernorm.weight`, `${p}.post_attention_layernorm.weight`);
  return names;
}

/**
 * How many tensors config c implies, computed without listing them: compared with what the files
 * hold before any list is built, so a config claiming millions of layers costs nothing.
 */
export function expectedTensorCount(c: ModelConfig): number {
  const perLayer = 9 + (c.attentionBias ? 3 : 0) + (c.oBias ? 1 : 0) + (c.mlpBias ? 3 : 0);
  return 2 + c.numLayers * perLayer + (c.tieWordEmbeddings ? 0 : 1);
}

/**
 * The first tensor config c implies that `has` lacks, or null. Names are made one layer at a time and
 * the search stops at the first gap, so the work is bounded by what the files hold, not by what a
 * (possibly absurd) config claims.
 */
export function firstMissingTensor(c: ModelConfig, has: (name: string) => boolean): string | null {
  if (!has('model.embed_tokens.weight')) return 'model.embed_tokens.weight';
  for (let i = 0; i < c.numLayers; i++) {
    const gap = layerNames(c, i).find((n) => !has(n));
    if (gap !== undefined) return gap;
  }
  if (!has('model.norm.weight')) return 'model.norm.weight';
  if (!c.tieWordEmbeddings && !has('lm_head.weight')) return 'lm_head.weight';
  return null;
}

/** Names of the tensors of a LLaMA-family model in HF layout, for one config. */
export function expectedTensorNames(c: ModelConfig): string[] {
  const names = ['model.embed_tokens.weight'];
  for (let i = 0; i < c.numLayers; i++) names.push(...layerNames(c, i));
  names.push('model.norm.weight');
  if (!c.tieWordEmbeddings) names.push('lm_head.weight');
  return names;
}

/** The shape each tensor must have under config c. */
export function expectedShape(c: ModelConfig, name: string): number[] {
  const d = c.hiddenSize,
    f = c.intermediateSize,
    V = c.vocabSize;
  const qd = c.numHeads * c.headDim,
    kvd = c.numKvHeads * c.headDim;
  if (name === 'model.embed_tokens.weight' || name === 'lm_head.weight') return [V, d];
  if (name === 'model.norm.weight' || name.endsWith('layernorm.weight')) return [d];
  const m = /\.(self_attn|mlp)\.(\w+)_proj\.(weight|bias)$/.exec(name);
  if (!m) throw new Error(`not a LLaMA-family tensor name: ${name}`);
  const [, , proj, kind] = m;
  const shapes: Record<string, [number, number]> = {
    q: [qd, d],
    k: [kvd, d],
    v: [kvd, d],
    o: [d, qd],
    gate: [f, d],
    up: [f, d],
    down: [d, f],
  };
  const s = shapes[proj];
  if (!s) throw new Error(`not a LLaMA-family tensor name: ${name}`);
  return kind === 'weight' ? [...s] : [s[0]];
}
