/**
 * HF config.json <-> ModelConfig for LLaMA, Mistral and Qwen2 (docs/formats.md "config.json fields that
 * change the math"). Defaults are those of the transformers config classes; every field that would change
 * the computation in a way src/model does not implement is refused by name rather than ignored.
 */
import { InputError } from '../errors.js';
import type { RopeScaling } from '../engine/rope.js';
import type { ModelConfig } from '../model/config.js';

type Arch = ModelConfig['arch'];
const ARCH_CLASS: Record<Arch, string> = {
  llama: 'LlamaForCausalLM',
  mistral: 'MistralForCausalLM',
  qwen2: 'Qwen2ForCausalLM',
};

/** transformers' per-class defaults for the fields config.json may leave out. */
const DEFAULTS: Record<
  Arch,
  { maxPos: number; eps: number; theta: number; bos: number | null; eos: number | null }
> = {
  llama: { maxPos: 2048, eps: 1e-6, theta: 10000, bos: 1, eos: 2 },
  mistral: { maxPos: 4096 * 32, eps: 1e-6, theta: 10000, bos: 1, eos: 2 },
  qwen2: { maxPos: 32768, eps: 1e-6, theta: 10000, bos: null, eos: null },
};

export function parseHfConfig(json: unknown, source: string): ModelConfig {
  const fail = (problem: string) => new InputError(source, problem);
  if (typeof json !== 'object' || json === null || Array.isArray(json))
    throw fail('config is not a JSON object');
  const j = json as Record<string, unknown>;

  const arch = archOf(j, fail);
  if (j.quantization_config != null) {
    const q = j.quantization_config as Record<string, unknown>;
    throw fail(
      `quantized checkpoints are not supported (quantization_config.quant_method = ${JSON.stringify(q?.quant_method ?? null)})`,
    );
  }

  const int = (key: string, def?: number): number => {
    const v = j[key] ?? def;
    if (v === undefined) throw fail(`missing required field "${key}"`);
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v <= 0)
      throw fail(`"${key}" must be a positive integer, got ${JSON.stringify(v)}`);
    return v;
  };
  const num = (key: string, def: number): number => {
    const v = j[key] ?? def;
    if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0)
      throw fail(`"${key}" must be a positive number, got ${JSON.stringify(v)}`);
    return v;
  };
  const bool = (key: string, def: boolean): boolean => {
    const v = j[key] ?? def;
    if (typeof v !== 'boolean') throw fail(`"${key}" must be true or false, got ${JSON.stringify(v)}`);
    return v;
  };
  const d = DEFAULTS[arch];

  const hiddenSize = int('hidden_size');
  const numHeads = int('num_attention_heads');
  const numKvHeads = int('num_key_value_heads', numHeads);
  if (numHeads % numKvHeads !== 0)
    throw fail(`num_attention_heads ${numHeads} is not a multiple of num_key_value_heads ${numKvHeads}`);
  if (j.head_dim == null && hiddenSize % numHeads !== 0) {
    throw fail(
      `hidden_size ${hiddenSize} is not divisible by num_attention_heads ${numHeads} and no head_dim is given`,
    );
  }
  const headDim = int('head_dim', hiddenSize / numHeads);
  if (headDim % 2 !== 0) throw fail(`head_dim ${headDim} is odd; RoPE needs an even head size`);

  const act = j.hidden_act ?? 'silu';
  if (act !== 'silu' && act !== 'swish')
    throw fail(`hidden_act "${String(act)}" is not supported (only silu)`);
  if (j.partial_rotary_factor != null && j.partial_rotary_factor !== 1) {
    throw fail(
      `partial_rotary_factor ${JSON.stringify(j.partial_rotary_factor)} is not supported (only full rotary)`,
    );
  }

  // transformers v5 moves rope_theta/rope_scaling into rope_parameters; read either place.
  const ropeParams = (j.rope_parameters ?? null) as Record<string, unknown> | null;
  const ropeTheta =
    ropeParams?.rope_theta != null
      ? numIn(ropeParams, 'rope_theta', 'rope_parameters', fail)
      : num('rope_theta', d.theta);
  const ropeScaling = parseRopeScaling(j.rope_scaling ?? ropeParams ?? null, fail);

  const maxPositionEmbeddings = int('max_position_embeddings', d.maxPos);
  const slidingWindow = slidingWindowOf(arch, j, maxPositionEmbeddings, fail);

  // Biases: llama's attention_bias covers q, k, v and o; Qwen2 always has q/k/v bias and no o bias;
  // MistralForCausalLM builds its linears without bias whatever the config says (so do we).
  let attentionBias = false,
    oBias = false,
    mlpBias = false;
  if (arch === 'llama') {
    attentionBias = oBias = bool('attention_bias', false);
    mlpBias = bool('mlp_bias', false);
  } else if (arch === 'qwen2') {
    attentionBias = true;
  }

  const tieWordEmbeddings = bool('tie_word_embeddings', false);

  const optId = (key: string, def: number | null): number | null => {
    const v = key in j ? j[key] : def;
    if (v === null || v === undefined) return null;
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0)
      throw fail(`"${key}" must be a token id, got ${JSON.stringify(v)}`);
    return v;
  };
  let eos: number[];
  const eosRaw = 'eos_token_id' in j ? j.eos_token_id : d.eos;
  if (eosRaw === null || eosRaw === undefined) eos = [];
  else if (Array.isArray(eosRaw)) eos = eosRaw.map((v) => checkId(v, 'eos_token_id', fail));
  else eos = [checkId(eosRaw, 'eos_token_id', fail)];

  const dtype = j.torch_dtype ?? j.dtype ?? 'float32';
  if (typeof dtype !== 'string') throw fail(`"torch_dtype" must be a string, got ${JSON.stringify(dtype)}`);

  return {
    arch,
    vocabSize: int('vocab_size'),
    hiddenSize,
    intermediateSize: int('intermediate_size'),
    numLayers: int('num_hidden_layers'),
    numHeads,
    numKvHeads,
    headDim,
    rmsNormEps: num('rms_norm_eps', d.eps),
    ropeTheta,
    ropeScaling,
    ropeStyle: 'half',
    maxPositionEmbeddings,
    tieWordEmbeddings,
    attentionBias,
    oBias,
    mlpBias,
    bosTokenId: optId('bos_token_id', d.bos),
    eosTokenId: eos,
    padTokenId: optId('pad_token_id', null),
    torchDtype: dtype,
    ...(slidingWindow !== null ? { slidingWindow } : {}),
  };
}

function archOf(j: Record<string, unknown>, fail: (p: string) => InputError): Arch {
  const archs = j.architectures;
  if (archs != null) {
    if (!Array.isArray(archs) || archs.length === 0) throw fail('"architectures" must be a non-empty list');
    const a = String(archs[0]);
    if (!/ForCausalLM$/i.test(a))
      throw fail(`architecture "${a}" is not supported (only *ForCausalLM language models)`);
  }
  let mt = j.model_type;
  if (mt == null && Array.isArray(archs)) {
    const hit = (Object.entries(ARCH_CLASS) as Array<[Arch, string]>).find(([, cls]) => cls === archs[0]);
    mt = hit?.[0];
  }
  if (mt == null) throw fail('missing "model_type" (and no known "architectures" entry)');
  if (mt !== 'llama' && mt !== 'mistral' && mt !== 'qwen2') {
    throw fail(`model_type "${String(mt)}" is not supported (supported: llama, mistral, qwen2)`);
  }
  return mt;
}

function checkId(v: unknown, key: string, fail: (p: string) => InputError): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0)
    throw fail(`"${key}" must be a token id or a list of them, got ${JSON.stringify(v)}`);
  return v;
}

function numIn(
  o: Record<string, unknown>,
  key: string,
  where: string,
  fail: (p: string) => InputError,
): number {
  const v = o[key];
  if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0)
    throw fail(`"${where}.${key}" must be a positive number, got ${JSON.stringify(v)}`);
  return v;
}

function parseRopeScaling(raw: unknown, fail: (p: string) => InputError): RopeScaling | null {
  if (raw === null) return null;
  if (typeof raw !== 'object' || Array.isArray(raw))
    throw fail(`"rope_scaling" must be an object or null, got ${JSON.stringify(raw)}`);
  const r = raw as Record<string, unknown>;
  const type = r.rope_type ?? r.type;
  if (type === undefined || type === 'default') return null;
  if (type === 'linear') {
    return { type: 'linear', factor: numIn(r, 'factor', 'rope_scaling', fail) };
  }
  if (type === 'llama3') {
    return {
      type: 'llama3',
      factor: numIn(r, 'factor', 'rope_scaling', fail),
      lowFreqFactor: numIn(r, 'low_freq_factor', 'rope_scaling', fail),
      highFreqFactor: numIn(r, 'high_freq_factor', 'rope_scaling', fail),
      originalMaxPositionEmbeddings: numIn(r, 'original_max_position_embeddings', 'rope_scaling', fail),
    };
  }
  throw fail(`rope_scaling type "${String(type)}" is not supported (supported: linear, llama3)`);
}

/** Sliding-window attention changes the math only for sequences longer than the window: refuse it unless it never applies. */
/** The window, when one applies and is shorter than the context (else null: full attention). */
function slidingWindowOf(
  arch: Arch,
  j: Record<string, unknown>,
  maxPos: number,
  fail: (p: string) => InputError,
): number | null {
  // MistralConfig's default window is 4096 when config.json leaves the key out.
  const w = 'sliding_window' in j ? j.sliding_window : arch === 'mistral' ? 4096 : null;
  if (w === null || w === undefined) return null;
  if (arch === 'llama') return null; // LlamaConfig has no sliding window; transformers ignores the key
  if (arch === 'qwen2' && j.use_sliding_window !== true) return null; // Qwen2 applies it only with use_sliding_window
  if (j.use_sliding_window === false) return null;
  if (typeof w !== 'number' || !Number.isSafeInteger(w) || w <= 0)
    throw fail(`"sliding_window" must be a positive integer or null, got ${JSON.stringify(w)}`);
  if (w >= maxPos) return null;
  if (arch === 'qwen2') {
    // Qwen2 windows only the layers from max_window_layers on; a per-layer window is not modelled.
    throw fail(
      `use_sliding_window with sliding_window ${w} < max_position_embeddings ${maxPos}: per-layer sliding-window attention is not supported`,
    );
  }
  return w;
}

/** A config.json for c (HF field names, transformers' conventions). */
export function toHfConfig(c: ModelConfig): Record<string, unknown> {
  if (c.ropeStyle !== 'half') {
    throw new Error(
      "toHfConfig: weights with 'pairs' RoPE are not HF layout; permute q/k (permuteForHf) and use ropeStyle 'half'",
    );
  }
  const out: Record<string, unknown> = {
    architectures: [ARCH_CLASS[c.arch]],
    model_type: c.arch,
    vocab_size: c.vocabSize,
    hidden_size: c.hiddenSize,
    intermediate_size: c.intermediateSize,
    num_hidden_layers: c.numLayers,
    num_attention_heads: c.numHeads,
    num_key_value_heads: c.numKvHeads,
    head_dim: c.headDim,
    hidden_act: 'silu',
    max_position_embeddings: c.maxPositionEmbeddings,
    rms_norm_eps: c.rmsNormEps,
    rope_theta: c.ropeTheta,
    rope_scaling: c.ropeScaling === null ? null : ropeScalingJson(c.ropeScaling),
    tie_word_embeddings: c.tieWordEmbeddings,
    bos_token_id: c.bosTokenId,
    eos_token_id:
      c.eosTokenId.length === 1 ? c.eosTokenId[0] : c.eosTokenId.length === 0 ? null : [...c.eosTokenId],
    pad_token_id: c.padTokenId,
    torch_dtype: c.torchDtype,
    initializer_range: 0.02,
    use_cache: true,
  };
  if (c.arch === 'llama') {
    if (c.attentionBias !== c.oBias)
      throw new Error('toHfConfig: llama attention_bias covers q, k, v and o together');
    out.attention_bias = c.attentionBias;
    out.mlp_bias = c.mlpBias;
    out.attention_dropout = 0.0;
    out.pretraining_tp = 1;
  } else {
    const want = c.arch === 'qwen2';
    if (c.attentionBias !== want || c.oBias || c.mlpBias) {
      throw new Error(
        `toHfConfig: ${c.arch} has ${want ? 'q/k/v biases only' : 'no biases'}; this config's biases cannot be expressed`,
      );
    }
    out.sliding_window = c.slidingWindow ?? null;
    if (c.arch === 'qwen2') out.use_sliding_window = false;
  }
  return out;
}

function ropeScalingJson(r: RopeScaling): Record<string, unknown> {
  const o: Record<string, unknown> = { rope_type: r.type, factor: r.factor };
  if (r.lowFreqFactor !== undefined) o.low_freq_factor = r.lowFreqFactor;
  if (r.highFreqFactor !== undefined) o.high_freq_factor = r.highFreqFactor;
  if (r.originalMaxPositionEmbeddings !== undefined)
    o.original_max_position_embeddings = r.originalMaxPositionEmbeddings;
  return o;
}
