/**
 * `nuggets merge` below the command line (docs/method.md step 7): the untouched student plus the adapter
 * that loads on it (what `nuggets train` leaves in its output folder: the plain rank-2r adapter
 * [B1 | B0], [A1 ; -A0] after the subtract trick, so W + scale·B·A = W - scale·B0·A0 + scale·B1·A1)
 * becomes an ordinary Hugging Face model folder: config.json, safetensors, tokenizer files,
 * generation_config.json and a README.md model card.
 *
 * Memory: the merged weights are a lazy WeightSource; the folder writer pulls one tensor at a time,
 * adds its delta (kernels().gemm) and writes it, so the model is never held twice.
 *
 * Two layout details:
 * - A student with tied embeddings whose adapter touches embed_tokens or lm_head gets two different
 *   matrices after merging: the merged folder is untied (lm_head.weight written, tie_word_embeddings
 *   false). Otherwise the tie is kept.
 * - A llama2.c student is imported in the HF layout (q/k rows permuted, src/io/load.ts), so its
 *   adapter's deltas add as they are; its tokenizer.bin becomes a tokenizer.json as in `nuggets convert`.
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { InputError } from '../errors.js';
import { readJsonFile } from '../io/json.js';
import { writeFileAtomic, writeJsonAtomic } from '../io/atomic.js';
import { parseShardSize, writeHfModel } from '../io/checkpoint.js';
import { buildTokenizerConfig, buildTokenizerJson } from '../io/convert.js';
import { loadModelSource, type ModelSource } from '../io/load.js';
import { Llama2cTokenizer } from '../io/tokenizer-llama2c.js';
import { expectedShape, expectedTensorNames, type ModelConfig } from '../model/config.js';
import type { TensorInfo, WeightSource } from '../model/weights.js';
import { addDelta } from '../transfer/inject.js';
import { readAdapter, type AdapterModule } from '../transfer/peft.js';
import { readManifest, MANIFEST_FILE, type Manifest } from '../transfer/manifest.js';
import { factorShape, isTransposed, modulePath } from '../transfer/modules.js';
import { summaryPathFor } from '../transfer/sense/summary.js';
import { ADAPTER_MARKER, TRAINED_ADAPTER_DIR } from './export.js';
import { INIT_MANIFEST_COPY, TRAINING_RECORD, TRAINING_RECORD_FORMAT, type TrainingRecord } from './run.js';
import { modelCard } from './model-card.js';

/** The HF tensor a module's delta lands on in the merged model. */
function targetTensor(m: AdapterModule): string {
  return `${modulePath(m.ref)}.weight`;
}

/** The merged model's weights: student tensors plus scale·B·A, computed when a tensor is read. */
export class MergedWeights implements WeightSource {
  readonly source: string;
  private readonly byTensor = new Map<string, AdapterModule[]>();
  private readonly names_: string[];

  constructor(
    private readonly base: WeightSource,
    private readonly baseConfig: ModelConfig,
    /** The merged model's config (untied when needed, 'half' RoPE). */
    readonly config: ModelConfig,
    modules: readonly AdapterModule[],
  ) {
    this.source = `${base.source} + adapter`;
    for (const m of modules) {
      const t = targetTensor(m);
      this.byTensor.set(t, [...(this.byTensor.get(t) ?? []), m]);
    }
    this.names_ = expectedTensorNames(config);
  }

  names(): string[] {
    return [...this.names_];
  }

  has(name: string): boolean {
    return this.names_.includes(name);
  }

  info(name: string): TensorInfo {
    if (!this.has(name)) throw new InputError(this.source, `no tensor named ${name}`);
    return { dtype: 'F32', shape: expectedShape(this.config, name) };
  }

  get(name: string): Float32Array {
    if (!this.has(name)) throw new InputError(this.source, `no tensor named ${name}`);
    // A tied student's lm_head starts as its embedding.
    const baseName =
      name === 'lm_head.weight' && this.baseConfig.tieWordEmbeddings ? 'model.embed_tokens.weight' : name;
    const w = this.base.get(baseName);
    for (const m of this.byTensor.get(name) ?? []) {
      const [n, mm] = factorShape(m.ref.kind, this.baseConfig);
      addDelta(w, { B: m.B, A: m.A, n, m: mm, r: m.r }, m.alpha / m.r, isTransposed(m.ref.kind));
    }
    return w;
  }

  close(): void {
    this.base.close();
  }
}

/** The merged model (config + lazy weights) of a student and adapter modules that load on it. */
export function mergeModel(
  src: Pick<ModelSource, 'config' | 'weights' | 'format'>,
  modules: readonly AdapterModule[],
): MergedWeights {
  const c = src.config;
  const touchesTied = modules.some((m) => m.ref.kind === 'embed_tokens' || m.ref.kind === 'lm_head');
  const config: ModelConfig = {
    ...c,
    tieWordEmbeddings: c.tieWordEmbeddings && !touchesTied,
    ropeStyle: 'half',
  };
  if (c.ropeStyle !== 'half')
    throw new Error('mergeModel: the student must be in the HF layout (rotate_half RoPE)');
  return new MergedWeights(src.weights, c, config, modules);
}

export interface MergeOptions {
  student: string;
  adapter: string;
  out: string;
  tokenizer?: string;
  dtype: 'f32' | 'f16' | 'bf16';
  /** Largest weight file, as transformers' max_shard_size ("5GB" when absent). */
  maxShardSize?: string;
}

export interface MergeContext {
  argv?: string[];
  /** The flags reproducing the merge (toFlags), for the model card. */
  flags?: string[];
  say?: (line: string) => void;
}

/** HF tokenizer files copied as they are when present. */
const TOKENIZER_FILES = [
  'tokenizer.json',
  'tokenizer_config.json',
  'special_tokens_map.json',
  'tokenizer.model',
  'added_tokens.json',
  'vocab.json',
  'merges.txt',
  'chat_template.jinja',
  'generation_config.json',
];

function copyFile(from: string, to: string): void {
  writeFileAtomic(to, [readFileSync(from)]);
}

/** Writes the tokenizer files (and generation_config.json) of the merged folder. */
function writeTokenizerFiles(out: string, src: ModelSource, o: MergeOptions): string[] {
  const written: string[] = [];
  let folder: string | null = null;
  if (o.tokenizer) {
    if (existsSync(o.tokenizer) && statSync(o.tokenizer).isDirectory()) folder = o.tokenizer;
    else if (basename(o.tokenizer) === 'tokenizer.json') folder = dirname(o.tokenizer);
  } else if (src.format === 'hf') {
    folder = statSync(o.student).isDirectory() ? o.student : dirname(o.student);
  }
  if (folder && existsSync(join(folder, 'tokenizer.json'))) {
    for (const f of TOKENIZER_FILES) {
      if (existsSync(join(folder, f))) {
        copyFile(join(folder, f), join(out, f));
        written.push(f);
      }
    }
  } else if (src.tokenizer instanceof Llama2cTokenizer) {
    // as `nuggets convert` does for a llama2.c tokenizer.bin
    writeJsonAtomic(join(out, 'tokenizer.json'), buildTokenizerJson(src.tokenizer));
    writeJsonAtomic(
      join(out, 'tokenizer_config.json'),
      buildTokenizerConfig(src.config.maxPositionEmbeddings),
    );
    written.push('tokenizer.json', 'tokenizer_config.json');
  } else {
    throw new InputError(
      o.tokenizer ?? o.student,
      'no tokenizer files to copy into the merged folder (give --tokenizer with a tokenizer.json folder)',
    );
  }
  if (!written.includes('generation_config.json')) {
    const c = src.config;
    const eos = c.eosTokenId.length === 1 ? c.eosTokenId[0] : c.eosTokenId.length === 0 ? null : c.eosTokenId;
    writeJsonAtomic(join(out, 'generation_config.json'), {
      _from_model_config: true,
      bos_token_id: c.bosTokenId,
      eos_token_id: eos,
    });
    written.push('generation_config.json');
  }
  return written;
}

function readJsonIf<T>(path: string): T | null {
  return existsSync(path) ? (readJsonFile(path) as T) : null;
}

/** What a sensitivity file's summary says about its seeds (written beside it by `nuggets sense`). */
export interface SeedsRecord {
  path: string;
  sha256: string;
  used: number | null;
  teacher: string | null;
}

export interface Provenance {
  training: TrainingRecord | null;
  manifest: Manifest | null;
  seeds: SeedsRecord | null;
}

/** The seeds' path and hash from the sensitivity summary the manifest points at, when it is still there. */
function seedsOf(manifest: Manifest | null): SeedsRecord | null {
  const sens = manifest?.inputs.sensitivity?.path;
  if (!sens) return null;
  const summary = readJsonIf<{
    seeds?: { path?: unknown; sha256?: unknown; used?: unknown };
    teacher?: { path?: unknown };
  }>(summaryPathFor(sens));
  const s = summary?.seeds;
  if (!s || typeof s.path !== 'string' || typeof s.sha256 !== 'string') return null;
  return {
    path: s.path,
    sha256: s.sha256,
    used: typeof s.used === 'number' ? s.used : null,
    teacher: typeof summary?.teacher?.path === 'string' ? summary.teacher.path : null,
  };
}

/** training.json, the init manifest and the seeds record that belong to an adapter folder written by `nuggets train`, when present. */
export function provenance(adapterDir: string): Provenance {
  const rec = readJsonIf<TrainingRecord>(join(adapterDir, TRAINING_RECORD));
  const training = rec && rec.format === TRAINING_RECORD_FORMAT ? rec : null;
  let manifest: Manifest | null = null;
  if (existsSync(join(adapterDir, INIT_MANIFEST_COPY)))
    manifest = readJsonIf<Manifest>(join(adapterDir, INIT_MANIFEST_COPY));
  else if (training?.init.folder && existsSync(join(training.init.folder, MANIFEST_FILE)))
    manifest = readManifest(training.init.folder);
  return { training, manifest, seeds: seedsOf(manifest) };
}

/** Runs `nuggets merge`: returns the files written. */
export function runMerge(
  o: MergeOptions,
  ctx: MergeContext = {},
): { out: string; files: string[]; untied: boolean; modules: number } {
  const marker = readJsonIf<{ base?: string }>(join(o.adapter, ADAPTER_MARKER));
  if (marker?.base === 'student-minus-init') {
    throw new InputError(
      o.adapter,
      `holds the trained factors of a subtract-trick run, which apply to W - scale*B0*A0, not to the untouched student; ` +
        `merge the adapter in the parent folder instead${basename(o.adapter) === TRAINED_ADAPTER_DIR ? ` (${dirname(o.adapter)})` : ''}`,
    );
  }
  if (existsSync(o.out) && statSync(o.out).isDirectory() && existsSync(join(o.out, 'adapter_config.json'))) {
    throw new InputError(o.out, 'holds an adapter; write the merged model to another folder');
  }
  const maxShardBytes = parseShardSize(o.maxShardSize ?? '5GB'); // a bad size fails before any work
  const src = loadModelSource(o.student, { tokenizer: o.tokenizer });
  try {
    const adapter = readAdapter(o.adapter, src.config);
    const merged = mergeModel(src, adapter.modules);
    const dtype = o.dtype.toUpperCase() as 'F32' | 'F16' | 'BF16';
    const outConfig: ModelConfig = {
      ...merged.config,
      torchDtype: { F32: 'float32', F16: 'float16', BF16: 'bfloat16' }[dtype],
    };
    writeHfModel(o.out, outConfig, merged, { dtype, maxShardBytes });
    writeTokenizerFiles(o.out, src, o);
    const { training, manifest, seeds } = provenance(o.adapter);
    writeFileAtomic(join(o.out, 'README.md'), [
      modelCard({
        out: o.out,
        student: o.student,
        adapter: o.adapter,
        config: outConfig,
        studentFormat: src.format,
        modules: adapter.modules,
        training,
        manifest,
        seeds,
        mergeArgv: ctx.argv ?? null,
        mergeFlags: ctx.flags ?? [],
        dtype: o.dtype,
      }),
    ]);
    return {
      out: o.out,
      files: readdirSync(o.out)
        .filter((f) => !f.startsWith('.'))
        .sort(),
      untied: src.config.tieWordEmbeddings && !outConfig.tieWordEmbeddings,
      modules: adapter.modules.length,
    };
  } finally {
    src.weights.close();
  }
}
