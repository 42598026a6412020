/**
 * Random-weight HF model folders at any config's real shapes (`nuggets random-model`): what the
 * benchmarks and anyone without the real weights use to run the pipeline at 0.5B-13B. The weights follow
 * transformers' own init for these architectures (linear and embedding N(0, initializer_range), norms 1,
 * biases 0), drawn tensor by tensor from a seed and the tensor's name, so the folder is the same bytes
 * whatever the shard size or the order of writing, and memory holds one tensor at a time.
 */
import { existsSync, mkdirSync, readdirSync, renameSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { createCipheriv, createHash } from 'node:crypto';
import { InputError } from '../errors.js';
import { expectedShape, expectedTensorNames, type ModelConfig } from '../model/config.js';
import type { TensorInfo, WeightSource } from '../model/weights.js';
import { writeJsonAtomic } from './atomic.js';
import { writeHfModel } from './checkpoint.js';
import { parseHfConfig } from './hfconfig.js';
import { readJsonFile } from './json.js';
import type { WriteDtype } from './safetensors.js';
import { syntheticByteLevelBpe } from './synthetic-tokenizer.js';

/** A WeightSource that draws each tensor when it is read (never holds the model). */
export class RandomInitWeights implements WeightSource {
  readonly source: string;
  private readonly shapes = new Map<string, number[]>();

  constructor(
    config: ModelConfig,
    private readonly seed: number,
    private readonly std = 0.02,
  ) {
    this.source = `random-init(seed=${seed}, std=${std})`;
    for (const n of expectedTensorNames(config)) this.shapes.set(n, expectedShape(config, n));
  }

  names(): string[] {
    return [...this.shapes.keys()];
  }

  has(name: string): boolean {
    return this.shapes.has(name);
  }

  info(name: string): TensorInfo {
    return { dtype: 'F32', shape: [...this.shape(name)] };
  }

  get(name: string): Float32Array {
    const n = this.shape(name).reduce((a, b) => a * b, 1);
    const out = new Float32Array(n);
    if (name.endsWith('norm.weight')) return out.fill(1);
    if (name.endsWith('.bias')) return out;
    // Uniform with the normal's standard deviation, from an AES-128-CTR keystream keyed by the seed and
    // the tensor name: the same scale as transformers' init, deterministic, and fast enough for billions
    // of values (a JS generator would take most of an hour for a 7B model).
    const key = createHash('sha256').update(`${this.seed}\0${name}`).digest().subarray(0, 16);
    const cipher = createCipheriv('aes-128-ctr', key, Buffer.alloc(16));
    const a = this.std * Math.sqrt(3);
    const k = (2 * a) / 4294967296;
    const CHUNK = 1 << 20;
    const zeros = Buffer.alloc(CHUNK * 4);
    for (let at = 0; at < n; at += CHUNK) {
      const m = Math.min(CHUNK, n - at);
      let bytes = cipher.update(zeros.subarray(0, m * 4));
      if (bytes.byteOffset % 4 !== 0) bytes = Buffer.from(bytes); // small outputs come from Node's pool
      const u = new Uint32Array(bytes.buffer, bytes.byteOffset, m);
      for (let i = 0; i < m; i++) out[at + i] = u[i] * k - a;
    }
    return out;
  }

  close(): void {}

  private shape(name: string): number[] {
    const s = this.shapes.get(name);
    if (!s) throw new Error(`${this.source}: no tensor named ${name}`);
    return s;
  }
}

export interface RandomModelOptions {
  seed?: number;
  /** Storage dtype (default bf16, as the published checkpoints). */
  dtype?: WriteDtype;
  /** Shard size in bytes (transformers' save_pretrained default is 5 GB). */
  maxShardBytes?: number;
  /** Copy this tokenizer folder instead of writing a synthetic one of the config's vocabulary size. */
  tokenizerFrom?: string;
  force?: boolean;
}

/** Special tokens of the synthetic tokenizer: the config's bos/eos ids with the family's names. */
function specialsOf(c: ModelConfig): { map: Map<number, string>; bos: string | null; eos: string | null } {
  const map = new Map<number, string>();
  const eos = c.eosTokenId[0] ?? null;
  const bos = c.bosTokenId;
  if (bos !== null && eos !== null && bos === eos) {
    map.set(bos, '<|endoftext|>');
    return { map, bos: '<|endoftext|>', eos: '<|endoftext|>' };
  }
  if (bos !== null) map.set(bos, '<s>');
  if (eos !== null) map.set(eos, '</s>');
  // Llama's id 0 is <unk>; keep it a special token too so the layout matches.
  if (c.arch !== 'qwen2' && !map.has(0)) map.set(0, '<unk>');
  return { map, bos: bos !== null ? '<s>' : null, eos: eos !== null ? '</s>' : null };
}

/** Reads a config.json (or the one in a folder). */
export function readConfigFile(path: string): { config: ModelConfig; raw: Record<string, unknown> } {
  const file = existsSync(path) && statSync(path).isDirectory() ? join(path, 'config.json') : path;
  if (!existsSync(file)) throw new InputError(file, 'no such config file');
  const raw = readJsonFile(file) as Record<string, unknown>;
  return { config: parseHfConfig(raw, file), raw };
}

/** Writes a random-weight HF folder; returns the files written. */
export function writeRandomModel(configPath: string, out: string, opts: RandomModelOptions = {}): string[] {
  const { config, raw } = readConfigFile(configPath);
  if (existsSync(out)) {
    if (!statSync(out).isDirectory()) throw new InputError(out, 'exists and is not a folder');
    if (readdirSync(out).length > 0 && !opts.force)
      throw new InputError(out, 'is not empty; choose another folder or pass --force to overwrite');
  }
  const std = typeof raw.initializer_range === 'number' ? raw.initializer_range : 0.02;
  // Everything goes to a temporary folder beside `out`, renamed at the end: a killed run leaves no
  // half-written model under the real name.
  const tmp = `${out.replace(/\/+$/, '')}.tmp-${process.pid}`;
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp, { recursive: true });
  try {
    if (opts.tokenizerFrom) {
      const tokFile = join(opts.tokenizerFrom, 'tokenizer.json');
      if (!existsSync(tokFile)) throw new InputError(opts.tokenizerFrom, 'has no tokenizer.json to copy');
      writeJsonAtomic(join(tmp, 'tokenizer.json'), readJsonFile(tokFile));
      const tc = join(opts.tokenizerFrom, 'tokenizer_config.json');
      if (existsSync(tc)) writeJsonAtomic(join(tmp, 'tokenizer_config.json'), readJsonFile(tc));
    } else {
      const s = specialsOf(config);
      const tok = syntheticByteLevelBpe(config.vocabSize, s.map, { bos: s.bos, eos: s.eos });
      writeJsonAtomic(join(tmp, 'tokenizer.json'), tok.tokenizer);
      writeJsonAtomic(join(tmp, 'tokenizer_config.json'), tok.config);
    }
    const weights = new RandomInitWeights(config, opts.seed ?? 0, std);
    writeHfModel(tmp, config, weights, { dtype: opts.dtype ?? 'BF16', maxShardBytes: opts.maxShardBytes });
    rmSync(out, { recursive: true, force: true });
    renameSync(tmp, out);
  } catch (e) {
    rmSync(tmp, { recursive: true, force: true });
    throw e;
  }
  return readdirSync(out).sort();
}
