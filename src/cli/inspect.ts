/**
 * `nuggets inspect <model>`: what a checkpoint is, without running it. The config fields that change
 * the math (docs/formats.md), parameters per module kind and in total, storage dtypes, bytes on disk and
 * as fp32, and the tokenizer found beside it. Works for HF folders and llama2.c checkpoints; `--json`
 * prints the same facts as one JSON object.
 *
 * Only tensor headers are needed for counts, so HF folders are inspected without reading weights
 * (openHfModel still checks every name and shape against config.json, so a folder that inspects
 * cleanly is one that loads). A llama2.c file has no header per tensor and is read whole.
 */
import type { Command } from 'commander';
import { existsSync, statSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { InputError } from '../errors.js';
import { LINEAR_NAMES } from '../model/block.js';
import { expectedShape, expectedTensorNames, type ModelConfig } from '../model/config.js';
import type { TensorInfo, WeightSource } from '../model/weights.js';
import { parseHfConfig } from '../io/hfconfig.js';
import { INDEX_FILE, SINGLE_FILE, TORCH_TO_DTYPE, openHfModel } from '../io/checkpoint.js';
import { readJsonFile } from '../io/json.js';
import { readLlama2c } from '../io/llama2c.js';
import { DTYPE_BYTES } from '../io/safetensors.js';
import { resolveModelPath } from '../io/load.js';
import { loadTokenizer } from '../io/tokenizer-hf.js';
import type { Tokenizer } from '../model/tokenizer.js';

export interface ModuleCount {
  tensors: number;
  parameters: number;
}

export interface Inspection {
  source: string;
  /** 'config': a folder with config.json and no weights; counts come from the shapes it implies. */
  format: 'hf' | 'llama2c' | 'config';
  architecture: Record<string, unknown>;
  parameters: {
    /** By module kind (summed over layers), in model order; a tied lm_head counts 0 (it is embed_tokens). */
    byModule: Record<string, ModuleCount>;
    /** One decoder layer (all layers have the same shape). */
    perLayer: number;
    total: number;
  };
  /** Storage dtypes: tensors, parameters and bytes of each. */
  dtypes: Record<string, ModuleCount & { bytes: number }>;
  bytes: {
    /** Sizes of the weight files (config and tokenizer files not counted). */
    files: Record<string, number>;
    onDisk: number;
    /** Tensor data alone, in the stored dtypes. */
    tensorData: number;
    /** What the weights take in memory as fp32 (nuggets computes in fp32). */
    asFp32: number;
  };
  tokenizer: {
    path: string;
    vocabSize: number;
    bosId: number | null;
    eosId: number | null;
    chatTemplate: boolean;
  } | null;
}

/** Module kind of an HF tensor name (`q_proj`, `input_layernorm`, `embed_tokens`, ...). */
export function moduleKind(name: string): string {
  if (name === 'model.embed_tokens.weight') return 'embed_tokens';
  if (name === 'model.norm.weight') return 'norm';
  if (name === 'lm_head.weight') return 'lm_head';
  const m = /^model\.layers\.\d+\.(?:self_attn\.|mlp\.)?(\w+)\.(?:weight|bias)$/.exec(name);
  return m ? m[1] : name;
}

const KIND_ORDER: readonly string[] = [
  'embed_tokens',
  ...LINEAR_NAMES,
  'input_layernorm',
  'post_attention_layernorm',
  'norm',
  'lm_head',
];

function numel(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/** The config fields that change the math, under their config.json names. */
export function architectureOf(c: ModelConfig): Record<string, unknown> {
  return {
    model_type: c.arch,
    vocab_size: c.vocabSize,
    hidden_size: c.hiddenSize,
    intermediate_size: c.intermediateSize,
    num_hidden_layers: c.numLayers,
    num_attention_heads: c.numHeads,
    num_key_value_heads: c.numKvHeads,
    head_dim: c.headDim,
    hidden_act: 'silu',
    rms_norm_eps: c.rmsNormEps,
    rope_theta: c.ropeTheta,
    rope_scaling: c.ropeScaling,
    // not a config.json field: which RoPE pairing the stored q/k rows need
    rope_style: c.ropeStyle,
    max_position_embeddings: c.maxPositionEmbeddings,
    tie_word_embeddings: c.tieWordEmbeddings,
    attention_bias: c.attentionBias,
    o_proj_bias: c.oBias,
    mlp_bias: c.mlpBias,
    bos_token_id: c.bosTokenId,
    eos_token_id: c.eosTokenId,
    pad_token_id: c.padTokenId,
    torch_dtype: c.torchDtype,
  };
}

/** The tensors a config implies, in the dtype it names, without data (inspect of a config alone). */
class ShapeOnlyWeights implements WeightSource {
  readonly source = 'config.json';
  private readonly names_: string[];
  constructor(private readonly c: ModelConfig) {
    this.names_ = expectedTensorNames(c);
  }
  names(): string[] {
    return [...this.names_];
  }
  has(name: string): boolean {
    return this.names_.includes(name);
  }
  info(name: string): TensorInfo {
    return { dtype: TORCH_TO_DTYPE[this.c.torchDtype] ?? 'F32', shape: expectedShape(this.c, name) };
  }
  get(name: string): Float32Array {
    throw new Error(`${name}: a config alone has no weights`);
  }
  close(): void {}
}

/** Counts parameters and bytes of a weight source under a config. */
export function countParameters(
  c: ModelConfig,
  w: WeightSource,
): Pick<Inspection, 'parameters' | 'dtypes'> & { tensorData: number } {
  const byKind = new Map<string, ModuleCount>();
  const dtypes: Record<string, ModuleCount & { bytes: number }> = {};
  let total = 0,
    perLayer = 0,
    tensorData = 0;
  for (const name of w.names()) {
    const { dtype, shape } = w.info(name);
    const n = numel(shape);
    const kind = moduleKind(name);
    const k = byKind.get(kind) ?? { tensors: 0, parameters: 0 };
    k.tensors++;
    k.parameters += n;
    byKind.set(kind, k);
    const bytes = n * (DTYPE_BYTES[dtype] ?? 4);
    const d = (dtypes[dtype] ??= { tensors: 0, parameters: 0, bytes: 0 });
    d.tensors++;
    d.parameters += n;
    d.bytes += bytes;
    tensorData += bytes;
    total += n;
    if (name.startsWith('model.layers.0.')) perLayer += n;
  }
  if (c.tieWordEmbeddings && !byKind.has('lm_head')) byKind.set('lm_head', { tensors: 0, parameters: 0 });
  const rank = (k: string) => (KIND_ORDER.indexOf(k) < 0 ? KIND_ORDER.length : KIND_ORDER.indexOf(k));
  const byModule: Record<string, ModuleCount> = {};
  for (const k of [...byKind.keys()].sort((a, b) => rank(a) - rank(b))) byModule[k] = byKind.get(k)!;
  return { parameters: { byModule, perLayer, total }, dtypes, tensorData };
}

/** The weight files of an HF folder: the shards its index names, or model.safetensors. */
function hfWeightFiles(folder: string): string[] {
  const index = join(folder, INDEX_FILE);
  if (existsSync(index)) {
    const map = (readJsonFile(index) as { weight_map: Record<string, string> }).weight_map;
    return [INDEX_FILE, ...new Set(Object.values(map))];
  }
  return [SINGLE_FILE];
}

/** The path given, resolved as loading does, plus 'config' for a folder with config.json and no weights. */
function resolveInspected(path: string): { target: string; format: Inspection['format'] } {
  const { target, format } = resolveModelPath(path);
  if (format !== 'hf') return { target, format };
  const hasWeights = existsSync(join(target, SINGLE_FILE)) || existsSync(join(target, INDEX_FILE));
  const configOnly = !hasWeights && existsSync(join(target, 'config.json'));
  return { target, format: configOnly ? 'config' : 'hf' };
}

export function inspectModel(path: string, opts: { tokenizer?: string } = {}): Inspection {
  const { target, format } = resolveInspected(path);
  let config: ModelConfig;
  let counts: ReturnType<typeof countParameters>;
  const files: Record<string, number> = {};
  if (format === 'hf') {
    const m = openHfModel(target);
    try {
      config = m.config;
      counts = countParameters(config, m.weights);
    } finally {
      m.weights.close();
    }
    for (const f of hfWeightFiles(target)) files[f] = statSync(join(target, f)).size;
  } else if (format === 'config') {
    const cfgPath = join(target, 'config.json');
    config = parseHfConfig(readJsonFile(cfgPath), cfgPath);
    counts = countParameters(config, new ShapeOnlyWeights(config));
  } else {
    const m = readLlama2c(target);
    config = m.config;
    counts = countParameters(config, m.weights);
    files[basename(target)] = statSync(target).size;
  }
  let tokPath: string | null = opts.tokenizer ?? null;
  if (tokPath === null) {
    const dir = format === 'llama2c' ? dirname(target) : target;
    for (const f of ['tokenizer.json', 'tokenizer.bin']) {
      if (existsSync(join(dir, f))) {
        tokPath = join(dir, f);
        break;
      }
    }
  } else if (!existsSync(tokPath)) {
    throw new InputError(tokPath, 'no such tokenizer file or folder');
  }
  let tokenizer: Inspection['tokenizer'] = null;
  if (tokPath !== null) {
    const tok: Tokenizer = loadTokenizer(tokPath, config.vocabSize);
    tokenizer = {
      path: tokPath,
      vocabSize: tok.vocabSize,
      bosId: tok.bosId,
      eosId: tok.eosId,
      chatTemplate: tok.chatTemplate !== null,
    };
  }
  return {
    source: target,
    format,
    architecture: architectureOf(config),
    parameters: counts.parameters,
    dtypes: counts.dtypes,
    bytes: {
      files,
      onDisk: Object.values(files).reduce((a, b) => a + b, 0),
      tensorData: counts.tensorData,
      asFp32: counts.parameters.total * 4,
    },
    tokenizer,
  };
}

const int = (n: number) => n.toLocaleString('en-US');

/** Bytes as "1,234,567 (1.2 MiB)". */
function bytesText(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = n,
    u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return u === 0 ? `${int(n)} B` : `${int(n)} B (${v.toFixed(1)} ${units[u]})`;
}

function table(rows: string[][], right: number[]): string[] {
  const w = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)));
  return rows.map(
    (r) =>
      '  ' +
      r
        .map((c, i) => (right.includes(i) ? c.padStart(w[i]) : c.padEnd(w[i])))
        .join('  ')
        .trimEnd(),
  );
}

export function formatInspection(x: Inspection): string {
  const out: string[] = [];
  const a = x.architecture;
  const style = a.rope_style === 'pairs' ? 'adjacent pairs, llama2.c row order' : 'rotate_half, HF row order';
  out.push(`model     ${x.source}`);
  const formats = {
    hf: 'Hugging Face folder (safetensors)',
    llama2c: 'llama2.c checkpoint',
    config: 'config.json only (no weights: counts and bytes from the shapes and torch_dtype it names)',
  };
  out.push(`format    ${formats[x.format]}`);
  out.push('', 'architecture');
  out.push(
    ...table(
      Object.entries(a).map(([k, v]) => [
        k,
        k === 'rope_style'
          ? `${v} (${style})`
          : v === null
            ? 'null'
            : typeof v === 'object'
              ? JSON.stringify(v)
              : String(v),
      ]),
      [],
    ),
  );
  out.push('', 'parameters');
  const total = x.parameters.total;
  const rows = [['module', 'tensors', 'parameters', 'share']];
  for (const [k, c] of Object.entries(x.parameters.byModule)) {
    const tied = k === 'lm_head' && c.tensors === 0 && a.tie_word_embeddings === true;
    rows.push([
      tied ? 'lm_head (tied to embed_tokens)' : k,
      String(c.tensors),
      int(c.parameters),
      total > 0 ? `${((100 * c.parameters) / total).toFixed(1)}%` : '',
    ]);
  }
  rows.push([
    'per decoder layer',
    '',
    int(x.parameters.perLayer),
    total > 0 ? `${((100 * x.parameters.perLayer) / total).toFixed(1)}%` : '',
  ]);
  rows.push([
    'total',
    String(Object.values(x.parameters.byModule).reduce((s, c) => s + c.tensors, 0)),
    int(total),
    '100.0%',
  ]);
  out.push(...table(rows, [1, 2, 3]));
  out.push('', 'dtypes');
  out.push(
    ...table(
      Object.entries(x.dtypes).map(([d, c]) => [
        d,
        `${c.tensors} tensors`,
        `${int(c.parameters)} parameters`,
        bytesText(c.bytes),
      ]),
      [1, 2],
    ),
  );
  out.push('', 'bytes');
  const byteRows = Object.entries(x.bytes.files).map(([f, n]) => [f, bytesText(n)]);
  byteRows.push(
    ['on disk (weight files)', bytesText(x.bytes.onDisk)],
    ['tensor data', bytesText(x.bytes.tensorData)],
    ['as fp32 in memory', bytesText(x.bytes.asFp32)],
  );
  out.push(...table(byteRows, []));
  out.push('');
  const t = x.tokenizer;
  out.push(
    t
      ? `tokenizer ${t.path} (${int(t.vocabSize)} tokens, bos ${t.bosId ?? 'none'}, eos ${t.eosId ?? 'none'}, ${t.chatTemplate ? 'chat template' : 'no chat template'})`
      : 'tokenizer none found beside the model (give one with --tokenizer)',
  );
  return out.join('\n');
}

export function registerInspect(program: Command): void {
  program
    .command('inspect')
    .description(
      'show a model: architecture, parameters per module, dtypes, bytes (HF folder or llama2.c checkpoint)',
    )
    .argument('<model>', 'HF model folder or llama2.c checkpoint file')
    .option('--tokenizer <path>', 'tokenizer file or folder to report (default: the one beside the model)')
    .option('--json', 'print JSON')
    .action((model: string, opts: { tokenizer?: string; json?: boolean }) => {
      const x = inspectModel(model, { tokenizer: opts.tokenizer });
      console.log(opts.json ? JSON.stringify(x, null, 2) : formatInspection(x));
    });
}
