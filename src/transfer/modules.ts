/**
 * The modules a transfer touches and how each is named and shaped: HF tensor names (docs/formats.md),
 * PEFT module paths, and the "factor layout" in which a matrix is cut, factorised and stored as LoRA
 * factors. The factor layout is the HF [out, in] layout for every linear; the embedding is handled
 * transposed, [d, V] (docs/method.md step 3), which is exactly PEFT's embedding layout
 * (lora_embedding_B [d, r] · lora_embedding_A [r, V], weight delta (B·A)^T).
 */
import type { ModelConfig } from '../model/config.js';
import { InputError } from '../errors.js';

export type ModuleKind =
  | 'q_proj'
  | 'k_proj'
  | 'v_proj'
  | 'o_proj'
  | 'gate_proj'
  | 'up_proj'
  | 'down_proj'
  | 'embed_tokens'
  | 'lm_head';

export const ATTENTION_KINDS: readonly ModuleKind[] = ['q_proj', 'k_proj', 'v_proj', 'o_proj'];
export const MLP_KINDS: readonly ModuleKind[] = ['gate_proj', 'up_proj', 'down_proj'];
/** The seven per-layer linears, in canonical order. */
export const LAYER_KINDS: readonly ModuleKind[] = [...ATTENTION_KINDS, ...MLP_KINDS];
/** Every module kind, canonical order (embedding first, lm_head last, as in the model). */
export const ALL_KINDS: readonly ModuleKind[] = ['embed_tokens', ...LAYER_KINDS, 'lm_head'];

/** Module groups accepted on the command line (docs/method.md "modules" axis). */
export const MODULE_GROUPS: Readonly<Record<string, readonly ModuleKind[]>> = {
  all: ALL_KINDS,
  attention: ATTENTION_KINDS,
  mlp: MLP_KINDS,
  ffn: MLP_KINDS,
  embedding: ['embed_tokens'],
  lm_head: ['lm_head'],
};

export function isModuleKind(s: string): s is ModuleKind {
  return (ALL_KINDS as readonly string[]).includes(s);
}

export function isLayerKind(k: ModuleKind): boolean {
  return k !== 'embed_tokens' && k !== 'lm_head';
}

/** One module instance: a per-layer linear (layer set) or the embedding / lm_head (layer null). */
export interface ModuleRef {
  kind: ModuleKind;
  layer: number | null;
}

/** The module path inside the HF model, as PEFT names it: `model.layers.3.self_attn.q_proj`, `model.embed_tokens`, `lm_head`. */
export function modulePath(ref: ModuleRef): string {
  switch (ref.kind) {
    case 'embed_tokens':
      return 'model.embed_tokens';
    case 'lm_head':
      return 'lm_head';
    default: {
      if (ref.layer === null) throw new Error(`module ${ref.kind} needs a layer index`);
      const block = (ATTENTION_KINDS as readonly string[]).includes(ref.kind) ? 'self_attn' : 'mlp';
      return `model.layers.${ref.layer}.${block}.${ref.kind}`;
    }
  }
}

/**
 * The HF tensor holding this module's weight under config c. With tied embeddings the lm_head's
 * weight IS `model.embed_tokens.weight` (and so is its sensitivity).
 */
export function weightName(ref: ModuleRef, c: ModelConfig): string {
  if (ref.kind === 'lm_head' && c.tieWordEmbeddings) return 'model.embed_tokens.weight';
  return `${modulePath(ref)}.weight`;
}

/** Storage shape [rows, cols] of the weight (HF [out, in]; embedding and lm_head [V, d]). */
export function weightShape(kind: ModuleKind, c: ModelConfig): [number, number] {
  const d = c.hiddenSize,
    f = c.intermediateSize,
    V = c.vocabSize;
  const qd = c.numHeads * c.headDim,
    kvd = c.numKvHeads * c.headDim;
  switch (kind) {
    case 'q_proj':
      return [qd, d];
    case 'k_proj':
      return [kvd, d];
    case 'v_proj':
      return [kvd, d];
    case 'o_proj':
      return [d, qd];
    case 'gate_proj':
      return [f, d];
    case 'up_proj':
      return [f, d];
    case 'down_proj':
      return [d, f];
    case 'embed_tokens':
      return [V, d];
    case 'lm_head':
      return [V, d];
  }
}

/** True when the factor layout is the transpose of the storage layout (the embedding only). */
export function isTransposed(kind: ModuleKind): boolean {
  return kind === 'embed_tokens';
}

/** Factor-layout shape [n, m]: B is [n, r], A is [r, m]. Embedding: [d, V]. */
export function factorShape(kind: ModuleKind, c: ModelConfig): [number, number] {
  const [rows, cols] = weightShape(kind, c);
  return isTransposed(kind) ? [cols, rows] : [rows, cols];
}

/** Which config fields set each storage dimension, for error messages. */
export function dimNames(kind: ModuleKind): [string, string] {
  const qd = 'num_attention_heads*head_dim',
    kvd = 'num_key_value_heads*head_dim';
  switch (kind) {
    case 'q_proj':
      return [qd, 'hidden_size'];
    case 'k_proj':
    case 'v_proj':
      return [kvd, 'hidden_size'];
    case 'o_proj':
      return ['hidden_size', qd];
    case 'gate_proj':
    case 'up_proj':
      return ['intermediate_size', 'hidden_size'];
    case 'down_proj':
      return ['hidden_size', 'intermediate_size'];
    case 'embed_tokens':
    case 'lm_head':
      return ['vocab_size', 'hidden_size'];
  }
}

/** Every module instance of the given kinds in a model with `numLayers` layers, canonical order. */
export function moduleRefs(kinds: readonly ModuleKind[], numLayers: number): ModuleRef[] {
  const want = new Set(kinds);
  const out: ModuleRef[] = [];
  if (want.has('embed_tokens')) out.push({ kind: 'embed_tokens', layer: null });
  for (let l = 0; l < numLayers; l++) {
    for (const k of LAYER_KINDS) if (want.has(k)) out.push({ kind: k, layer: l });
  }
  if (want.has('lm_head')) out.push({ kind: 'lm_head', layer: null });
  return out;
}

/** Parses "all", group names and kind names (comma lists allowed) into module kinds, canonical order. */
export function parseModules(spec: readonly string[] | string): ModuleKind[] {
  const items = (typeof spec === 'string' ? [spec] : spec)
    .flatMap((s) => s.split(','))
    .map((s) => s.trim())
    .filter((s) => s !== '');
  const want = new Set<ModuleKind>();
  for (const it of items) {
    const group = MODULE_GROUPS[it];
    if (group) group.forEach((k) => want.add(k));
    else if (isModuleKind(it)) want.add(it);
    else {
      throw new InputError(
        'modules option',
        `unknown module "${it}": use all, attention, mlp, embedding, lm_head or one of ${ALL_KINDS.join(', ')}`,
      );
    }
  }
  return ALL_KINDS.filter((k) => want.has(k));
}
