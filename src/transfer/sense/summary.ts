/** The JSON summary of a sensitivity file (also stored in its safetensors metadata) and its sums. */
import type { ModelConfig } from '../../model/config.js';
import { expectedTensorNames } from '../../model/config.js';
import type { SeedLoss } from './types.js';

export const SENS_FORMAT = 'nuggets-sensitivity';
export const SENS_VERSION = 1;
/** safetensors __metadata__ key holding the JSON summary (so `sense merge` needs only the files). */
export const SUMMARY_METADATA_KEY = 'nuggets.summary';

export interface SensSummary {
  format: typeof SENS_FORMAT;
  version: typeof SENS_VERSION;
  created: string;
  teacher: { path: string; config: ModelConfig };
  seeds: {
    path: string;
    sha256: string | null;
    /** Seeds taken from the file (the first k); a shard processes a slice of them. */
    used: number;
    /** Global indices of the seeds this file covers. */
    indices: number[];
    shard: { index: number; count: number } | null;
    /** Shard files summed into this one (sense merge). */
    mergedFrom?: string[];
  };
  options: Record<string, unknown>;
  encode: { truncatedLines: number[]; skippedLines: number[]; maxLength: number; note: string | null } | null;
  loss: { mean: number; perSeed: SeedLoss[] };
  /** How the tied embedding's sensitivity was formed (null when lm_head is its own tensor). */
  tiedEmbeddings: string | null;
  /** Per tensor: shape and the float64 sum of its float32 S (before any bf16 rounding of the file). */
  tensors: Record<string, { shape: number[]; sum: number }>;
  /** Per teacher layer: the sum over its tensors (docs/method.md step 2's score). */
  layers: number[];
  /** Sums of the non-layer tensors. */
  outer: { embed_tokens: number; norm: number; lm_head: number | null };
  total: number;
  compute: {
    backend: string;
    streaming: boolean;
    seconds: number;
    tokens: number;
    answerTokens: number;
    tokensPerSecond: number;
  } | null;
}

export const TIED_NOTE =
  'lm_head is tied to model.embed_tokens.weight: per example, the gradients of both uses are added (as PyTorch accumulates them ' +
  'into the one tied parameter) and |theta * grad| is taken of the sum; the file has no separate lm_head.weight';

/** Per-tensor, per-layer and outer sums from a sink's recorded sums. */
export function tensorSums(
  sink: { names(): string[]; shape(n: string): number[]; sum(n: string): number },
  c: ModelConfig,
) {
  const tensors: SensSummary['tensors'] = {};
  const layers = new Array<number>(c.numLayers).fill(0);
  let total = 0;
  for (const name of expectedTensorNames(c)) {
    const s = sink.sum(name);
    tensors[name] = { shape: sink.shape(name), sum: s };
    total += s;
    const m = /^model\.layers\.(\d+)\./.exec(name);
    if (m) layers[Number(m[1])] += s;
  }
  const outer = {
    embed_tokens: tensors['model.embed_tokens.weight'].sum,
    norm: tensors['model.norm.weight'].sum,
    lm_head: c.tieWordEmbeddings ? null : tensors['lm_head.weight'].sum,
  };
  return { tensors, layers, outer, total };
}

/** How closely a stored tensor's values reproduce the float32 sum the summary took before storing. */
const SUM_RTOL: Readonly<Record<string, number>> = { F32: 1e-6, BF16: 1e-2, F16: Infinity };

/**
 * The per-tensor sums of a sensitivity file's summary (its safetensors metadata), or null when it has
 * none or it does not describe this file's tensors (same names, same shapes): the caller then sums the
 * values itself.
 */
export function recordedSums(file: {
  metadata: Record<string, string> | null;
  names(): string[];
  info(name: string): { dtype: string; shape: number[] };
}): Map<string, { sum: number; rtol: number }> | null {
  const text = file.metadata?.[SUMMARY_METADATA_KEY];
  if (file.metadata?.format !== SENS_FORMAT || typeof text !== 'string') return null;
  let summary: Partial<SensSummary>;
  try {
    summary = JSON.parse(text) as Partial<SensSummary>;
  } catch {
    return null;
  }
  const tensors = summary.tensors;
  if (!tensors || typeof tensors !== 'object') return null;
  const names = file.names();
  if (Object.keys(tensors).length !== names.length) return null;
  const out = new Map<string, { sum: number; rtol: number }>();
  for (const name of names) {
    const t = tensors[name];
    const info = file.info(name);
    if (
      !t ||
      typeof t.sum !== 'number' ||
      !Number.isFinite(t.sum) ||
      !Array.isArray(t.shape) ||
      t.shape.join(',') !== info.shape.join(',')
    )
      return null;
    out.set(name, { sum: t.sum, rtol: SUM_RTOL[info.dtype] ?? Infinity });
  }
  return out;
}

/** `sens.safetensors` -> `sens.summary.json` (beside the sensitivity file). */
export function summaryPathFor(out: string): string {
  return out.replace(/\.safetensors$/, '') + '.summary.json';
}
