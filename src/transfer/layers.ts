/**
 * docs/method.md step 2: score the teacher's layers by their summed sensitivity and pick which teacher
 * layer feeds each student layer.
 */
import { kernels } from '../engine/backend.js';
import { Rng } from '../engine/rng.js';
import { InputError } from '../errors.js';

/** Where sensitivity tensors come from (a sensitivity safetensors file, or memory in tests). */
export interface TensorSource {
  names(): string[];
  /** The tensor as float32 (the caller owns the array). */
  get(name: string): Float32Array;
}

export type LayerMethod = 'sensitivity' | 'first' | 'last' | 'random';
export const LAYER_METHODS: readonly LayerMethod[] = ['sensitivity', 'first', 'last', 'random'];

/** The nine tensors a LLaMA layer must have a sensitivity for (7 linears + 2 RMSNorm weights). */
export const LAYER_TENSORS = [
  'self_attn.q_proj.weight',
  'self_attn.k_proj.weight',
  'self_attn.v_proj.weight',
  'self_attn.o_proj.weight',
  'mlp.gate_proj.weight',
  'mlp.up_proj.weight',
  'mlp.down_proj.weight',
  'input_layernorm.weight',
  'post_attention_layernorm.weight',
] as const;

const LAYER_NAME = /^model\.layers\.(\d+)\.(.+)$/;

/**
 * The per-tensor float64 sums a sensitivity file's summary records (`sense` takes them from the float32
 * S, before any bf16 rounding of the file), each with the relative tolerance within which the file's
 * own values must reproduce it (Infinity: not checked, e.g. f16 files, whose tiny values underflow).
 */
export type RecordedSums = ReadonlyMap<string, { sum: number; rtol: number }>;

/**
 * score[l] = sum of S over every tensor of teacher layer l (the 7 linears and 2 norms; biases too,
 * when a Qwen2-style model has them). Embedding, final norm and lm_head do not count. Sums are
 * float64. Each tensor is loaded, summed and dropped, so memory stays at one tensor. With `recorded`
 * (the file's summary), no tensor is read: a 13B teacher's S is 26 GB even in bf16, and extract reads
 * the selected layers' tensors once more anyway, checking each against its recorded sum
 * (checkRecordedSum).
 */
export function layerScores(
  sens: TensorSource,
  numLayers: number,
  source: string,
  recorded?: RecordedSums | null,
): Float64Array {
  const k = kernels();
  const scores = new Float64Array(numLayers);
  const seen: Array<Set<string>> = Array.from({ length: numLayers }, () => new Set());
  for (const name of sens.names()) {
    const m = LAYER_NAME.exec(name);
    if (!m) continue;
    const l = Number(m[1]);
    if (l >= numLayers) {
      throw new InputError(
        source,
        `sensitivity tensor ${name} names layer ${l}, but the teacher has ${numLayers} layers`,
      );
    }
    let s: number;
    if (recorded) s = recorded.get(name)!.sum;
    else {
      const t = sens.get(name);
      s = k.sum(t, t.length);
    }
    if (!Number.isFinite(s)) throw new InputError(source, `sensitivity tensor ${name} holds NaN or Inf`);
    scores[l] += s;
    seen[l].add(m[2]);
  }
  for (let l = 0; l < numLayers; l++) {
    const missing = LAYER_TENSORS.filter((t) => !seen[l].has(t));
    if (missing.length > 0) {
      throw new InputError(
        source,
        `no sensitivity for layer ${l}: missing ${missing.map((t) => `model.layers.${l}.${t}`).join(', ')}`,
      );
    }
  }
  return scores;
}

/**
 * Refuses a sensitivity tensor whose values do not sum to what the file's summary records: the file was
 * changed after `sense` wrote it, so the layer scores taken from the summary would not be its own.
 */
export function checkRecordedSum(
  name: string,
  values: Float32Array,
  recorded: RecordedSums | null | undefined,
  source: string,
): void {
  const r = recorded?.get(name);
  if (!r || !Number.isFinite(r.rtol)) return;
  const s = kernels().sum(values, values.length);
  if (!(Math.abs(s - r.sum) <= r.rtol * Math.max(Math.abs(s), Math.abs(r.sum)) + 1e-30)) {
    throw new InputError(
      source,
      `sensitivity tensor ${name} sums to ${s}, but the file's summary records ${r.sum}: the file was changed ` +
        'after sense wrote it; rerun sense, or strip the nuggets.summary metadata to score layers from the values',
    );
  }
}

export interface LayerSelection {
  method: LayerMethod;
  /** teacherLayers[j] is the teacher layer that feeds student layer j (ascending depth order). */
  teacherLayers: number[];
  /** Per teacher layer score (empty when the method did not use sensitivity). */
  scores: number[];
  seed: number | null;
}

/**
 * Picks `count` teacher layers out of scores.length, returned in depth order.
 * - sensitivity: the `count` highest scores (ties: the shallower layer), then sorted back by depth;
 * - first / last: the first or last `count` layers;
 * - random: a seeded uniform subset (same seed, same subset).
 */
export function selectLayers(
  method: LayerMethod,
  numTeacherLayers: number,
  count: number,
  opts: { scores?: ArrayLike<number>; seed?: number } = {},
): LayerSelection {
  if (!Number.isInteger(count) || count < 1)
    throw new InputError('layer selection', `student layer count must be >= 1, got ${count}`);
  if (count > numTeacherLayers) {
    throw new InputError(
      'layer selection',
      `the student has ${count} layers but the teacher only ${numTeacherLayers}: cannot pick a teacher layer per student layer`,
    );
  }
  const scores = opts.scores ? Array.from(opts.scores) : [];
  let picked: number[];
  switch (method) {
    case 'sensitivity': {
      if (scores.length !== numTeacherLayers) {
        throw new InputError(
          'layer selection',
          `sensitivity selection needs ${numTeacherLayers} layer scores, got ${scores.length}`,
        );
      }
      const order = scores.map((_, i) => i).sort((a, b) => scores[b] - scores[a] || a - b);
      picked = order.slice(0, count);
      break;
    }
    case 'first':
      picked = Array.from({ length: count }, (_, i) => i);
      break;
    case 'last':
      picked = Array.from({ length: count }, (_, i) => numTeacherLayers - count + i);
      break;
    case 'random': {
      if (opts.seed === undefined)
        throw new InputError('layer selection', 'random layer selection needs a seed');
      const all = Array.from({ length: numTeacherLayers }, (_, i) => i);
      picked = new Rng(opts.seed).shuffle(all).slice(0, count);
      break;
    }
    default:
      throw new InputError(
        'layer selection',
        `unknown method "${method as string}": use ${LAYER_METHODS.join(', ')}`,
      );
  }
  picked.sort((a, b) => a - b);
  return { method, teacherLayers: picked, scores, seed: method === 'random' ? (opts.seed ?? null) : null };
}
