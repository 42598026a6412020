/**
 * HF model folders (docs/formats.md "Hugging Face checkpoints"): config.json plus model.safetensors, or shards
 * model-0000k-of-0000n.safetensors listed by model.safetensors.index.json. Opening validates every
 * tensor against config.json (names, shapes, float dtypes) before anything runs, and reads tensors
 * lazily; writing produces the same layout atomically, file by file.
 */
import { existsSync, readdirSync, rmSync, statSync } from 'node:fs';
import { basename, join } from 'node:path';
import { InputError } from '../errors.js';
import type { ModelConfig } from '../model/config.js';
import {
  expectedShape,
  expectedTensorCount,
  expectedTensorNames,
  firstMissingTensor,
} from '../model/config.js';
import type { TensorInfo, WeightSource } from '../model/weights.js';
import type { HalfArray } from '../engine/half.js';
import { writeJsonAtomic } from './atomic.js';
import { parseHfConfig, toHfConfig } from './hfconfig.js';
import { readJsonFile } from './json.js';
import {
  openSafetensors,
  writeSafetensorsLazy,
  DTYPE_BYTES,
  type SafetensorsReader,
  type WriteDtype,
} from './safetensors.js';

// re-exported for the modules that read a model's other JSON files beside its weights
export { readJsonFile };

export const SINGLE_FILE = 'model.safetensors';
export const INDEX_FILE = 'model.safetensors.index.json';

export interface HfModel {
  config: ModelConfig;
  weights: WeightSource;
}

/** The tensors of a folder (single file or shards), not yet checked against any config. */
export class FolderWeights implements WeightSource {
  constructor(
    readonly source: string,
    private readonly where: Map<string, SafetensorsReader>,
    private readonly readers: SafetensorsReader[],
  ) {}

  names(): string[] {
    return [...this.where.keys()];
  }
  has(name: string): boolean {
    return this.where.has(name);
  }
  info(name: string): TensorInfo {
    return this.reader(name).info(name);
  }
  get(name: string): Float32Array {
    return this.reader(name).get(name);
  }
  getStored(name: string): Float32Array | HalfArray {
    return this.reader(name).getStored(name);
  }
  getRaw(name: string): Uint8Array {
    return this.reader(name).getRaw(name);
  }
  /** The file a tensor lives in (for error messages). */
  fileOf(name: string): string {
    return this.reader(name).source;
  }
  close(): void {
    for (const r of this.readers) r.close();
  }
  private reader(name: string): SafetensorsReader {
    const r = this.where.get(name);
    if (!r) throw new InputError(this.source, `no tensor named "${name}"`);
    return r;
  }
}

/** Opens the safetensors weights of an HF folder: the index and its shards, or model.safetensors. */
export function openFolderWeights(folder: string): FolderWeights {
  const index = join(folder, INDEX_FILE);
  if (existsSync(index)) return openSharded(folder, index);
  const single = join(folder, SINGLE_FILE);
  if (existsSync(single)) {
    const r = openSafetensors(single);
    return new FolderWeights(single, new Map(r.names().map((n) => [n, r])), [r]);
  }
  const present = existsSync(folder) ? readdirSync(folder) : [];
  const torch = present.find((f) => /^pytorch_model.*\.bin(\.index\.json)?$/.test(f));
  if (torch)
    throw new InputError(
      folder,
      `has ${torch} but no ${SINGLE_FILE}: only safetensors checkpoints are read (convert the PyTorch pickle first)`,
    );
  throw new InputError(folder, `no ${SINGLE_FILE} or ${INDEX_FILE} in this folder`);
}

function openSharded(folder: string, index: string): FolderWeights {
  const j = readJsonFile(index) as Record<string, unknown> | null;
  const map = j?.weight_map;
  if (typeof map !== 'object' || map === null || Array.isArray(map))
    throw new InputError(index, '"weight_map" is missing or not an object');
  const readers = new Map<string, SafetensorsReader>();
  const where = new Map<string, SafetensorsReader>();
  try {
    for (const [name, file] of Object.entries(map)) {
      if (
        typeof file !== 'string' ||
        file === '' ||
        file !== basename(file) ||
        file === '..' ||
        file === '.'
      ) {
        throw new InputError(
          index,
          `weight_map entry for "${name}" is not a file name in this folder: ${JSON.stringify(file)}`,
        );
      }
      let r = readers.get(file);
      if (!r) {
        const p = join(folder, file);
        if (!existsSync(p))
          throw new InputError(index, `weight_map sends "${name}" to ${file}, which does not exist`);
        r = openSafetensors(p);
        readers.set(file, r);
      }
      if (!r.has(name))
        throw new InputError(
          r.source,
          `tensor "${name}" is listed in ${INDEX_FILE} for this shard but the shard does not hold it`,
        );
      where.set(name, r);
    }
    for (const [file, r] of readers) {
      for (const n of r.names()) {
        if (where.get(n) !== r) {
          throw new InputError(
            r.source,
            `tensor "${n}" is in shard ${file} but ${INDEX_FILE} ${map[n as keyof typeof map] ? `sends it to ${String(map[n as keyof typeof map])}` : 'does not list it'}`,
          );
        }
      }
    }
  } catch (e) {
    for (const r of readers.values()) r.close();
    throw e;
  }
  return new FolderWeights(index, where, [...readers.values()]);
}

/** Names that checkpoints carry for no effect: non-persistent RoPE buffers of older exports. */
const HARMLESS = /^model\.layers\.\d+\.self_attn\.rotary_emb\.inv_freq$/;
const FLOAT_DTYPES = new Set(['F32', 'F16', 'BF16', 'F64']);

/** A view of a folder's weights restricted to (and checked against) the tensors a config expects. */
class CheckedWeights implements WeightSource {
  private readonly set: Set<string>;
  constructor(
    private readonly inner: FolderWeights,
    private readonly expected: string[],
  ) {
    this.set = new Set(expected);
  }
  get source(): string {
    return this.inner.source;
  }
  names(): string[] {
    return [...this.expected];
  }
  has(name: string): boolean {
    return this.set.has(name);
  }
  info(name: string): TensorInfo {
    this.check(name);
    return this.inner.info(name);
  }
  get(name: string): Float32Array {
    this.check(name);
    return this.inner.get(name);
  }
  getStored(name: string): Float32Array | HalfArray {
    this.check(name);
    return this.inner.getStored(name);
  }
  close(): void {
    this.inner.close();
  }
  private check(name: string): void {
    if (!this.set.has(name)) throw new InputError(this.inner.source, `no tensor named "${name}"`);
  }
}

/** Opens an HF model folder and validates every tensor against config.json (names, shapes, float dtypes). */
export function openHfModel(folder: string): HfModel {
  if (!existsSync(folder) || !statSync(folder).isDirectory())
    throw new InputError(folder, 'not a folder (an HF model folder holds config.json and model.safetensors)');
  const cfgPath = join(folder, 'config.json');
  const config = parseHfConfig(readJsonFile(cfgPath), cfgPath);
  const w = openFolderWeights(folder);
  try {
    checkAgainstConfig(w, config, cfgPath);
  } catch (e) {
    w.close();
    throw e;
  }
  return { config, weights: new CheckedWeights(w, expectedTensorNames(config)) };
}

function checkAgainstConfig(w: FolderWeights, c: ModelConfig, cfgPath: string): void {
  // counted before listed: a config claiming millions of layers is refused without building the list
  const wantCount = expectedTensorCount(c);
  const held = w.names().length;
  if (wantCount > held) {
    const gap = firstMissingTensor(c, (n) => w.has(n));
    throw new InputError(
      w.source,
      `missing tensor "${gap}": ${cfgPath} (${describe(c)}) requires ${wantCount} tensors but the weights hold only ${held}`,
    );
  }
  const expected = expectedTensorNames(c);
  const want = new Set(expected);
  const more = (k: number) => (k > 1 ? ` (and ${k - 1} more)` : '');
  const missing = expected.filter((n) => !w.has(n));
  if (missing.length) {
    throw new InputError(
      w.source,
      `missing tensor "${missing[0]}"${more(missing.length)}, which ${cfgPath} (${describe(c)}) requires`,
    );
  }
  const extra = w
    .names()
    .filter((n) => !want.has(n) && !HARMLESS.test(n) && !(n === 'lm_head.weight' && c.tieWordEmbeddings));
  if (extra.length) {
    throw new InputError(
      w.fileOf(extra[0]),
      `unexpected tensor "${extra[0]}"${more(extra.length)}: not part of a ${c.arch} model as ${cfgPath} describes it (${describe(c)})`,
    );
  }
  for (const n of expected) {
    const { dtype, shape } = w.info(n);
    const s = expectedShape(c, n);
    if (shape.length !== s.length || shape.some((d, i) => d !== s[i])) {
      throw new InputError(
        w.fileOf(n),
        `tensor "${n}" has shape [${shape.join(', ')}] but ${cfgPath} implies [${s.join(', ')}]`,
      );
    }
    if (!FLOAT_DTYPES.has(dtype))
      throw new InputError(
        w.fileOf(n),
        `tensor "${n}" has dtype ${dtype}; model weights must be F32, F16, BF16 or F64`,
      );
  }
}

function describe(c: ModelConfig): string {
  return `${c.numLayers} layers, hidden ${c.hiddenSize}, MLP ${c.intermediateSize}, ${c.numHeads}/${c.numKvHeads} heads of ${c.headDim}, vocab ${c.vocabSize}${c.tieWordEmbeddings ? ', tied embeddings' : ''}`;
}

/** config.json torch_dtype -> safetensors dtype. */
export const TORCH_TO_DTYPE: Record<string, WriteDtype> = {
  float32: 'F32',
  float16: 'F16',
  bfloat16: 'BF16',
};
const DTYPE_TO_TORCH: Record<WriteDtype, string> = { F32: 'float32', F16: 'float16', BF16: 'bfloat16' };

export interface WriteHfOptions {
  /** Storage dtype; default from config.torchDtype (float32 when it names something else). */
  dtype?: WriteDtype;
  /** Shard when the weights exceed this many bytes (transformers' default max_shard_size is 5GB); see parseShardSize. */
  maxShardBytes?: number;
}

/**
 * Writes config.json and the weights of an HF folder. Tensors are read from `weights` one at a time while
 * their file is written, so a model never needs to be in memory twice. Weight files of an earlier write
 * that this layout does not use (model.safetensors vs shards) are removed so the folder stays unambiguous.
 */
export function writeHfModel(
  folder: string,
  config: ModelConfig,
  weights: WeightSource,
  opts: WriteHfOptions = {},
): string[] {
  const dtype = opts.dtype ?? TORCH_TO_DTYPE[config.torchDtype] ?? 'F32';
  const hf = toHfConfig({ ...config, torchDtype: DTYPE_TO_TORCH[dtype] });
  const names = expectedTensorNames(config);
  const entries = names.map((name) => {
    if (!weights.has(name)) throw new Error(`writeHfModel: ${weights.source} has no tensor "${name}"`);
    const shape = weights.info(name).shape;
    const s = expectedShape(config, name);
    if (shape.join() !== s.join())
      throw new Error(`writeHfModel: "${name}" has shape [${shape}] but the config implies [${s}]`);
    return {
      name,
      shape,
      dtype,
      load: () => weights.get(name),
      bytes: shape.reduce((a, b) => a * b, 1) * DTYPE_BYTES[dtype],
    };
  });
  const max = opts.maxShardBytes ?? 5e9;
  const shards: Array<typeof entries> = [[]];
  let acc = 0;
  for (const e of entries) {
    const cur = shards[shards.length - 1];
    if (cur.length > 0 && acc + e.bytes > max) {
      shards.push([e]);
      acc = e.bytes;
    } else {
      cur.push(e);
      acc += e.bytes;
    }
  }
  const written = new Set<string>();
  if (shards.length === 1) {
    writeSafetensorsLazy(join(folder, SINGLE_FILE), shards[0], { format: 'pt' });
    written.add(SINGLE_FILE);
  } else {
    const n = shards.length;
    const weightMap: Record<string, string> = {};
    shards.forEach((s, k) => {
      const file = `model-${String(k + 1).padStart(5, '0')}-of-${String(n).padStart(5, '0')}.safetensors`;
      writeSafetensorsLazy(join(folder, file), s, { format: 'pt' });
      for (const e of s) weightMap[e.name] = file;
      written.add(file);
    });
    const total = entries.reduce((a, e) => a + e.bytes, 0);
    writeJsonAtomic(join(folder, INDEX_FILE), { metadata: { total_size: total }, weight_map: weightMap });
    written.add(INDEX_FILE);
  }
  for (const f of readdirSync(folder)) {
    const weightFile = f === SINGLE_FILE || f === INDEX_FILE || /^model-\d{5}-of-\d{5}\.safetensors$/.test(f);
    if (weightFile && !written.has(f)) rmSync(join(folder, f), { force: true });
  }
  writeJsonAtomic(join(folder, 'config.json'), hf);
  return [...written];
}

/**
 * A shard size as transformers' save_pretrained takes it: an integer number of bytes, or a number with
 * a unit, decimal (KB, MB, GB = 10^3, 10^6, 10^9) or binary (KiB, MiB, GiB). Returns bytes.
 */
export function parseShardSize(text: string, source = '--max-shard-size'): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([KMGT]i?B|B)?\s*$/i.exec(text);
  const units: Record<string, number> = { B: 1, KB: 1e3, MB: 1e6, GB: 1e9, TB: 1e12 };
  const bin: Record<string, number> = { KIB: 2 ** 10, MIB: 2 ** 20, GIB: 2 ** 30, TIB: 2 ** 40 };
  const unit = (m?.[2] ?? 'B').toUpperCase();
  const bytes = m ? Number(m[1]) * (units[unit] ?? bin[unit]) : NaN;
  if (!(bytes >= 1))
    throw new InputError(source, `"${text}" is not a size (e.g. 5GB, 500MB, 2GiB or a byte count)`);
  return Math.floor(bytes);
}
