/**
 * PEFT LoRA adapter folders, exactly as docs/formats.md and PEFT's save_pretrained lay them out:
 *   adapter_config.json + adapter_model.safetensors with keys
 *   base_model.model.model.layers.{i}.self_attn.q_proj.lora_A.weight [r, in] / .lora_B.weight [out, r]
 *   (k/v/o and mlp.{gate,up,down}_proj likewise), base_model.model.lm_head.lora_{A,B}.weight, and
 *   base_model.model.model.embed_tokens.lora_embedding_A [r, V] / lora_embedding_B [d, r] (no .weight).
 *
 * PEFT loads a wrongly named key as a silent "missing key" (the module keeps a fresh init), so every
 * folder written here can be, and in tests is, passed through `checkAdapterStructure`.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { ModelConfig } from '../model/config.js';
import { InputError } from '../errors.js';
import { readJsonFile } from '../io/json.js';
import { writeJsonAtomic } from '../io/atomic.js';
import { writeSafetensors, openSafetensors } from '../io/safetensors.js';
import {
  ALL_KINDS,
  ATTENTION_KINDS,
  MLP_KINDS,
  factorShape,
  isLayerKind,
  modulePath,
  type ModuleKind,
  type ModuleRef,
} from './modules.js';

export const ADAPTER_CONFIG = 'adapter_config.json';
export const ADAPTER_WEIGHTS = 'adapter_model.safetensors';
const PREFIX = 'base_model.model.';

/** One module's factors in the factor layout: B [n, r], A [r, m] (embedding: B [d, r], A [r, V]). */
export interface AdapterModule {
  ref: ModuleRef;
  r: number;
  alpha: number;
  B: Float32Array;
  A: Float32Array;
}

/** adapter_config.json as written (the fields PEFT's LoraConfig has known since rank_pattern, peft 0.6). */
export interface AdapterConfig {
  peft_type: 'LORA';
  task_type: 'CAUSAL_LM';
  r: number;
  lora_alpha: number;
  lora_dropout: number;
  target_modules: string[];
  bias: 'none';
  base_model_name_or_path: string | null;
  inference_mode: boolean;
  init_lora_weights: boolean | string;
  fan_in_fan_out: false;
  modules_to_save: null;
  rank_pattern: Record<string, number>;
  alpha_pattern: Record<string, number>;
}

export interface WriteAdapterOptions {
  /** Recorded as base_model_name_or_path. */
  baseModel: string | null;
  /** lora_dropout (reference 0.05). */
  loraDropout: number;
  inferenceMode?: boolean;
  /** init_lora_weights; default true. Never "pissa" & co.: PEFT would re-run them on load and change the base weights. */
  initLoraWeights?: boolean | string;
  /** Storage dtype of the factors; default F32. */
  dtype?: 'F32' | 'F16' | 'BF16';
  /** Extra safetensors __metadata__ (strings). */
  metadata?: Record<string, string>;
}

/** The two tensor names of a module's factors. */
export function peftKeys(ref: ModuleRef): { A: string; B: string } {
  const base = PREFIX + modulePath(ref);
  if (ref.kind === 'embed_tokens') return { A: `${base}.lora_embedding_A`, B: `${base}.lora_embedding_B` };
  return { A: `${base}.lora_A.weight`, B: `${base}.lora_B.weight` };
}

const LAYER_KEY = /^base_model\.model\.model\.layers\.(\d+)\.(self_attn|mlp)\.(\w+)\.lora_(A|B)\.weight$/;
const HEAD_KEY = /^base_model\.model\.lm_head\.lora_(A|B)\.weight$/;
const EMBED_KEY = /^base_model\.model\.model\.embed_tokens\.lora_embedding_(A|B)$/;

/** Inverse of peftKeys; null for any name PEFT would not load into a LoRA factor. */
export function parsePeftKey(key: string): { ref: ModuleRef; factor: 'A' | 'B' } | null {
  let m = LAYER_KEY.exec(key);
  if (m) {
    const kind = m[3] as ModuleKind;
    const block = (ATTENTION_KINDS as readonly string[]).includes(kind)
      ? 'self_attn'
      : (MLP_KINDS as readonly string[]).includes(kind)
        ? 'mlp'
        : null;
    if (block !== m[2] || String(Number(m[1])) !== m[1]) return null;
    return { ref: { kind, layer: Number(m[1]) }, factor: m[4] as 'A' | 'B' };
  }
  m = HEAD_KEY.exec(key);
  if (m) return { ref: { kind: 'lm_head', layer: null }, factor: m[1] as 'A' | 'B' };
  m = EMBED_KEY.exec(key);
  if (m) return { ref: { kind: 'embed_tokens', layer: null }, factor: m[1] as 'A' | 'B' };
  return null;
}

/**
 * rank_pattern / alpha_pattern key for a module: matched by PEFT as the regex `(.*\.)?(key)$`
 * against the module path (peft >= 0.6 used `.*\.key$`, which the layer and embedding keys also
 * satisfy; `lm_head` needs the newer optional prefix).
 */
export function patternKey(ref: ModuleRef): string {
  if (ref.kind === 'embed_tokens') return 'embed_tokens';
  if (ref.kind === 'lm_head') return 'lm_head';
  return modulePath(ref).slice('model.'.length); // layers.{i}.self_attn.q_proj
}

/** PEFT's lookup: the first pattern key matching the module path, else the default. */
function patternValue(pattern: Record<string, number> | undefined, path: string, dflt: number): number {
  if (!pattern) return dflt;
  for (const [key, v] of Object.entries(pattern)) {
    let re: RegExp;
    try {
      re = new RegExp(`^(.*\\.)?(${key})$`);
    } catch {
      continue;
    }
    if (re.test(path)) return v;
  }
  return dflt;
}

function refOrder(a: ModuleRef, b: ModuleRef): number {
  const la = a.kind === 'embed_tokens' ? -1 : a.kind === 'lm_head' ? Infinity : (a.layer ?? 0);
  const lb = b.kind === 'embed_tokens' ? -1 : b.kind === 'lm_head' ? Infinity : (b.layer ?? 0);
  return la - lb || ALL_KINDS.indexOf(a.kind) - ALL_KINDS.indexOf(b.kind);
}

/** The most frequent value (ties: the first seen). */
function mode(xs: number[]): number {
  const count = new Map<number, number>();
  let best = xs[0],
    bestN = 0;
  for (const x of xs) {
    const n = (count.get(x) ?? 0) + 1;
    count.set(x, n);
    if (n > bestN) {
      best = x;
      bestN = n;
    }
  }
  return best;
}

/** Builds adapter_config.json for these modules (global r/alpha = the most common; the rest as patterns). */
export function adapterConfigFor(
  modules: readonly AdapterModule[],
  opts: WriteAdapterOptions,
): AdapterConfig {
  if (modules.length === 0) throw new InputError('adapter', 'no modules to write');
  const init = opts.initLoraWeights ?? true;
  if (!(opts.loraDropout >= 0 && opts.loraDropout < 1))
    throw new InputError('adapter', `lora_dropout must be in [0, 1), got ${opts.loraDropout}`);
  if (typeof init === 'string' && BASE_MUTATING.test(init)) {
    throw new InputError(
      'adapter',
      `init_lora_weights "${init}" would make PEFT recompute it on load and change the base weights`,
    );
  }
  const r = mode(modules.map((m) => m.r));
  const alpha = mode(modules.map((m) => m.alpha));
  const rank_pattern: Record<string, number> = {};
  const alpha_pattern: Record<string, number> = {};
  for (const m of modules) {
    if (m.r !== r) rank_pattern[patternKey(m.ref)] = m.r;
    if (m.alpha !== alpha) alpha_pattern[patternKey(m.ref)] = m.alpha;
  }
  const kinds = new Set(modules.map((m) => m.ref.kind));
  return {
    peft_type: 'LORA',
    task_type: 'CAUSAL_LM',
    r,
    lora_alpha: alpha,
    lora_dropout: opts.loraDropout,
    target_modules: ALL_KINDS.filter((k) => kinds.has(k)),
    bias: 'none',
    base_model_name_or_path: opts.baseModel,
    inference_mode: opts.inferenceMode ?? false,
    init_lora_weights: init,
    fan_in_fan_out: false,
    modules_to_save: null,
    rank_pattern,
    alpha_pattern,
  };
}

/**
 * Writes a PEFT adapter folder (both files atomically). Factor sizes are checked against `model`
 * first; the written folder then passes checkAdapterStructure for the same model.
 */
export function writeAdapter(
  dir: string,
  modules: readonly AdapterModule[],
  model: ModelConfig,
  opts: WriteAdapterOptions,
): AdapterConfig {
  const seen = new Set<string>();
  for (const m of modules) {
    const path = modulePath(m.ref);
    if (seen.has(path)) throw new InputError('adapter', `module ${path} given twice`);
    seen.add(path);
    if (
      isLayerKind(m.ref.kind) &&
      (m.ref.layer === null || m.ref.layer < 0 || m.ref.layer >= model.numLayers)
    ) {
      throw new InputError(
        'adapter',
        `module ${m.ref.kind} has layer ${m.ref.layer}, the model has ${model.numLayers} layers`,
      );
    }
    if (!Number.isInteger(m.r) || m.r < 1)
      throw new InputError('adapter', `module ${path}: rank ${m.r} is not a positive integer`);
    if (!(m.alpha > 0))
      throw new InputError('adapter', `module ${path}: lora_alpha ${m.alpha} is not positive`);
    const [n, c] = factorShape(m.ref.kind, model);
    if (m.A.length !== m.r * c || m.B.length !== n * m.r) {
      throw new InputError(
        'adapter',
        `module ${path}: factors have ${m.B.length} and ${m.A.length} values, expected B [${n}, ${m.r}] and A [${m.r}, ${c}]`,
      );
    }
  }
  const config = adapterConfigFor(modules, opts);
  const entries: Array<{
    name: string;
    shape: number[];
    data: Float32Array;
    dtype?: 'F32' | 'F16' | 'BF16';
  }> = [];
  for (const m of [...modules].sort((a, b) => refOrder(a.ref, b.ref))) {
    const [n, c] = factorShape(m.ref.kind, model);
    const keys = peftKeys(m.ref);
    entries.push({ name: keys.A, shape: [m.r, c], data: m.A, dtype: opts.dtype ?? 'F32' });
    entries.push({ name: keys.B, shape: [n, m.r], data: m.B, dtype: opts.dtype ?? 'F32' });
  }
  writeSafetensors(join(dir, ADAPTER_WEIGHTS), entries, { format: 'pt', ...(opts.metadata ?? {}) });
  writeJsonAtomic(join(dir, ADAPTER_CONFIG), config);
  return config;
}

export interface LoadedAdapter {
  config: AdapterConfig;
  modules: AdapterModule[];
}

/** Reads adapter_config.json (as JSON, unchecked beyond being an object). */
export function readAdapterConfig(dir: string): Record<string, unknown> {
  const path = join(dir, ADAPTER_CONFIG);
  if (!existsSync(path)) throw new InputError(dir, `no ${ADAPTER_CONFIG} (not a PEFT adapter folder)`);
  const cfg = readJsonFile(path);
  if (typeof cfg !== 'object' || cfg === null || Array.isArray(cfg))
    throw new InputError(path, 'must hold a JSON object');
  return cfg as Record<string, unknown>;
}

/**
 * Reads a PEFT LoRA adapter folder back into modules (factors as float32), after checking its
 * structure against `model`: a folder PEFT would load with missing or ignored keys is refused.
 */
export function readAdapter(dir: string, model: ModelConfig): LoadedAdapter {
  const cfg = readAdapterConfig(dir);
  const st = openAdapterWeights(dir);
  try {
    const tensors = st.names().map((name) => ({ name, ...st.info(name) }));
    const problems = checkAdapterStructure(cfg, tensors, model);
    if (problems.length > 0)
      throw new InputError(
        dir,
        `not a valid PEFT LoRA adapter for this model:\n  - ${problems.join('\n  - ')}`,
      );
    const config = cfg as unknown as AdapterConfig;
    const byPath = new Map<string, { ref: ModuleRef; A?: Float32Array; B?: Float32Array }>();
    for (const t of tensors) {
      const p = parsePeftKey(t.name)!;
      const path = modulePath(p.ref);
      const e = byPath.get(path) ?? { ref: p.ref };
      e[p.factor] = st.get(t.name);
      byPath.set(path, e);
    }
    const modules: AdapterModule[] = [];
    for (const [path, e] of byPath) {
      modules.push({
        ref: e.ref,
        r: patternValue(config.rank_pattern, path, config.r),
        alpha: patternValue(config.alpha_pattern, path, config.lora_alpha),
        A: e.A!,
        B: e.B!,
      });
    }
    modules.sort((a, b) => refOrder(a.ref, b.ref));
    return { config, modules };
  } finally {
    st.close();
  }
}

function openAdapterWeights(dir: string) {
  const path = join(dir, ADAPTER_WEIGHTS);
  if (!existsSync(path)) {
    const bin = join(dir, 'adapter_model.bin');
    if (existsSync(bin))
      throw new InputError(
        dir,
        'holds a pickled adapter_model.bin; only adapter_model.safetensors is read (convert it with PEFT first)',
      );
    throw new InputError(dir, `no ${ADAPTER_WEIGHTS}`);
  }
  return openSafetensors(path);
}

/**
 * init_lora_weights values with which PEFT rewrites the base weight while creating the layers (so
 * also when loading): pissa / pissa_niter_k, olora, loftq, corda.
 */
const BASE_MUTATING = /^(pissa|olora|loftq|corda)/i;

/**
 * Validates an adapter against a model the way PEFT would load it: config fields, every key name,
 * every shape (with rank_pattern), both factors present, every targeted module present in every
 * layer, nothing outside target_modules. Returns the problems (empty = loads cleanly).
 */
export function checkAdapterStructure(
  config: unknown,
  tensors: ReadonlyArray<{ name: string; shape: readonly number[]; dtype?: string }>,
  model: ModelConfig,
): string[] {
  const problems: string[] = [];
  if (typeof config !== 'object' || config === null || Array.isArray(config))
    return ['adapter config is not a JSON object'];
  const c = config as Record<string, unknown>;
  if (c.peft_type !== 'LORA') problems.push(`peft_type is ${JSON.stringify(c.peft_type)}, expected "LORA"`);
  if (c.task_type !== 'CAUSAL_LM')
    problems.push(`task_type is ${JSON.stringify(c.task_type)}, expected "CAUSAL_LM"`);
  const r = c.r;
  if (typeof r !== 'number' || !Number.isInteger(r) || r < 1)
    problems.push(`r is ${JSON.stringify(r)}, expected a positive integer`);
  if (typeof c.lora_alpha !== 'number' || !(c.lora_alpha > 0))
    problems.push(`lora_alpha is ${JSON.stringify(c.lora_alpha)}, expected a positive number`);
  if (
    c.lora_dropout !== undefined &&
    (typeof c.lora_dropout !== 'number' || c.lora_dropout < 0 || c.lora_dropout >= 1)
  ) {
    problems.push(`lora_dropout is ${JSON.stringify(c.lora_dropout)}, expected a number in [0, 1)`);
  }
  if (c.bias !== undefined && c.bias !== 'none')
    problems.push(`bias is ${JSON.stringify(c.bias)}: bias tensors are not handled, expected "none"`);
  if (c.fan_in_fan_out === true)
    problems.push('fan_in_fan_out is true: LLaMA linears are [out, in], it must be false');
  if (c.use_dora === true) problems.push('use_dora is true: DoRA adapters are not plain LoRA');
  if (c.use_rslora === true)
    problems.push('use_rslora is true: the scale would be alpha/sqrt(r), not alpha/r');
  if (Array.isArray(c.modules_to_save) && c.modules_to_save.length > 0)
    problems.push('modules_to_save is set: full module copies are not part of a LoRA adapter here');
  if (typeof c.init_lora_weights === 'string' && BASE_MUTATING.test(c.init_lora_weights)) {
    problems.push(
      `init_lora_weights is "${c.init_lora_weights}": PEFT would recompute it on load and change the base weights`,
    );
  }
  for (const f of ['rank_pattern', 'alpha_pattern'] as const) {
    const p = c[f];
    if (
      p !== undefined &&
      p !== null &&
      (typeof p !== 'object' || Array.isArray(p) || Object.values(p).some((v) => typeof v !== 'number'))
    ) {
      problems.push(`${f} must map module patterns to numbers`);
    }
  }
  const tm = c.target_modules;
  let targeted: (path: string, kind: ModuleKind) => boolean;
  if (Array.isArray(tm) && tm.every((t) => typeof t === 'string')) {
    targeted = (path) => (tm as string[]).some((t) => path === t || path.endsWith('.' + t));
  } else if (typeof tm === 'string') {
    let re: RegExp | null = null;
    try {
      re = new RegExp(`^(?:${tm})$`);
    } catch {
      problems.push(`target_modules regex ${JSON.stringify(tm)} does not compile`);
    }
    targeted = (path) => (re ? re.test(path) : false);
  } else {
    problems.push('target_modules must be a list of module names or a regex string');
    targeted = () => false;
  }
  if (problems.length > 0 && (typeof r !== 'number' || r < 1)) return problems;
  const rankPattern = (c.rank_pattern ?? undefined) as Record<string, number> | undefined;

  const found = new Map<string, { ref: ModuleRef; A?: readonly number[]; B?: readonly number[] }>();
  for (const t of tensors) {
    const p = parsePeftKey(t.name);
    if (!p) {
      problems.push(
        `key ${t.name} is not a PEFT LoRA factor name for a LLaMA model (PEFT would not load it)`,
      );
      continue;
    }
    if (p.ref.layer !== null && p.ref.layer >= model.numLayers) {
      problems.push(`key ${t.name} names layer ${p.ref.layer}, the model has ${model.numLayers} layers`);
      continue;
    }
    if (t.dtype !== undefined && !['F32', 'F16', 'BF16'].includes(t.dtype))
      problems.push(`key ${t.name} has dtype ${t.dtype}, expected F32, F16 or BF16`);
    const path = modulePath(p.ref);
    if (!targeted(path, p.ref.kind))
      problems.push(`key ${t.name}: module ${path} is not in target_modules (PEFT would ignore it)`);
    const e = found.get(path) ?? { ref: p.ref };
    e[p.factor] = t.shape;
    found.set(path, e);
  }
  for (const [path, e] of found) {
    const keys = peftKeys(e.ref);
    if (!e.A) problems.push(`${keys.A} is missing (${path} has only its B factor)`);
    if (!e.B) problems.push(`${keys.B} is missing (${path} has only its A factor)`);
    const rr = patternValue(rankPattern, path, r as number);
    const [n, m] = factorShape(e.ref.kind, model);
    if (e.A && !sameShape(e.A, [rr, m]))
      problems.push(`${keys.A} has shape [${e.A.join(', ')}], expected [${rr}, ${m}]`);
    if (e.B && !sameShape(e.B, [n, rr]))
      problems.push(`${keys.B} has shape [${e.B.join(', ')}], expected [${n}, ${rr}]`);
  }
  // Every module PEFT will wrap must have its factors, or it loads as a silent "missing key".
  for (const kind of ALL_KINDS) {
    const layers = isLayerKind(kind) ? Array.from({ length: model.numLayers }, (_, i) => i) : [null];
    const missing: string[] = [];
    for (const layer of layers) {
      const path = modulePath({ kind, layer });
      if (targeted(path, kind) && !found.has(path)) missing.push(path);
    }
    if (missing.length > 0) {
      problems.push(
        `target_modules covers ${missing.length > 3 ? `${missing.slice(0, 3).join(', ')} and ${missing.length - 3} more` : missing.join(', ')} but the adapter has no factors for ${missing.length === 1 ? 'it' : 'them'} (PEFT would report missing keys and keep a fresh init)`,
      );
    }
  }
  return problems;
}

/** Checks an adapter folder (config + safetensors header only) against a model; throws InputError listing every problem. */
export function assertAdapterFolder(dir: string, model: ModelConfig): void {
  const cfg = readAdapterConfig(dir);
  const st = openAdapterWeights(dir);
  let tensors: Array<{ name: string; shape: number[]; dtype: string }>;
  try {
    tensors = st.names().map((name) => ({ name, ...st.info(name) }));
  } finally {
    st.close();
  }
  const problems = checkAdapterStructure(cfg, tensors, model);
  if (problems.length > 0)
    throw new InputError(
      dir,
      `not a valid PEFT LoRA adapter for this model:\n  - ${problems.join('\n  - ')}`,
    );
}

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}
