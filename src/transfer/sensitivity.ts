/**
 * docs/method.md step 1, teacher sensitivity: for every seed example j, one forward + backward of the
 * answer-only mean token cross-entropy, then `S += |theta * dL_j/dtheta|` for every parameter
 * element (the absolute value per example, summed over examples; kernels().sensAccumulate).
 *
 * Two executors compute the same S:
 * - `in-memory`: the whole model (LlamaModel) with gradients for every parameter, one example at a
 *   time. Simple, and the reference the streaming path is tested against.
 * - `streaming` (src/transfer/stream.ts): layer by layer, so peak memory is about one layer plus the
 *   seeds' hidden states at layer boundaries, never the model.
 *
 * Each finished tensor's S goes to a SensSink as soon as it is final: memory (tests), or raw files
 * in a temporary folder next to the output (the CLI), assembled into one safetensors file at the end.
 * The output file appears atomically (src/io/atomic.ts) and an aborted run (Ctrl-C) removes the
 * temporary folder, so no partial output is ever left under any name.
 *
 * Tied embeddings: the teacher then has one tensor, model.embed_tokens.weight, used twice. Its
 * gradient per example is the sum of the lm_head and the embedding contributions (as PyTorch
 * accumulates it into the one tied parameter), and |theta * grad| is taken of that sum. The file
 * then holds no lm_head.weight (the teacher has none); src/transfer/modules.ts maps lm_head to the
 * embedding's name.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { kernels } from '../engine/backend.js';
import { InputError } from '../errors.js';
import { writeJsonAtomic } from '../io/atomic.js';
import { writeSafetensorsLazy } from '../io/safetensors.js';
import type { EncodedExample } from '../data/encode.js';
import { nextTokenTargets } from '../data/encode.js';
import { expectedShape, expectedTensorNames, type ModelConfig } from '../model/config.js';
import type { WeightSource } from '../model/weights.js';
import { LlamaModel } from '../model/model.js';
import { accumulateSensitivity } from '../model/params.js';

export const SENS_FORMAT = 'nuggets-sensitivity';
export const SENS_VERSION = 1;
/** safetensors __metadata__ key holding the JSON summary (so `sense merge` needs only the files). */
export const SUMMARY_METADATA_KEY = 'nuggets.summary';

/** One seed example, tokenised: ids and the next-token targets aligned to positions (-1 = ignored). */
export interface SenseExample {
  /** 0-based index among the seeds used (the first k of the file), kept through sharding. */
  index: number;
  /** "file:line" (or another label) for messages. */
  source: string;
  line: number | null;
  ids: Int32Array;
  targets: Int32Array;
  /** Targets >= 0: the loss denominator (answer tokens that are predicted). */
  nTargets: number;
  truncated: boolean;
}

/** Seed examples from the data pipeline (src/data/encode.ts), indexed from `first`. */
export function toSenseExamples(encoded: readonly EncodedExample[], first = 0): SenseExample[] {
  return encoded.map((e, i) => fromIds(first + i, e.ids, e.answerMask, e.source, e.line, e.truncated));
}

/** A seed example from ids and an answer mask (1 = answer token), as the data pipeline produces. */
export function fromIds(
  index: number,
  ids: ArrayLike<number>,
  answerMask: ArrayLike<number>,
  source: string,
  line: number | null = null,
  truncated = false,
): SenseExample {
  const idArr = Int32Array.from(ids);
  const targets = nextTokenTargets(idArr, answerMask);
  let n = 0;
  for (const t of targets) if (t >= 0) n++;
  if (n === 0)
    throw new InputError(source, 'no answer token to predict (the answer is empty or was cut off)');
  return { index, source, line, ids: idArr, targets, nTargets: n, truncated };
}

export interface SeedLoss {
  index: number;
  line: number | null;
  /** Answer-only mean token cross-entropy (nats). */
  loss: number;
  tokens: number;
  answerTokens: number;
  truncated: boolean;
}

export type ProgressFn = (done: number, total: number, fields: Record<string, string | number>) => void;

export interface SenseRunOptions {
  /** Layer by layer (default) or the whole model in memory. */
  streaming?: boolean;
  /** Aborting stops at the next step with SenseAborted (the CLI wires SIGINT/SIGTERM to it). */
  signal?: AbortSignal;
  onProgress?: ProgressFn;
}

export interface SenseRun {
  losses: SeedLoss[];
  tokens: number;
  answerTokens: number;
  seconds: number;
  streaming: boolean;
}

/** Thrown when the run was aborted (Ctrl-C): nothing has been written under the output name. */
export class SenseAborted extends Error {
  constructor() {
    super('sensitivity run interrupted');
    this.name = 'SenseAborted';
  }
}

/** A NaN/Inf in a gradient: names the seed and the tensor (docs/method.md step 1 cannot continue). */
export class NonFiniteGradient extends InputError {
  constructor(ex: SenseExample, tensor: string, detail: string) {
    super(
      ex.source,
      `seed ${ex.index}${ex.line !== null ? ` (line ${ex.line})` : ''}: the gradient of ${tensor} ${detail}; sensitivity stopped`,
    );
    this.name = 'NonFiniteGradient';
  }
}

// ---------------------------------------------------------------------------------------------- sinks

/** Where finished sensitivities go. Names starting with "~" are scratch (never in the output). */
export interface SensSink {
  put(name: string, shape: number[], data: Float32Array): void;
  has(name: string): boolean;
  get(name: string): Float32Array;
  /** get() and forget (frees the memory or the file). */
  take(name: string): Float32Array;
  shape(name: string): number[];
  /** float64 sum of the tensor, recorded at put(). */
  sum(name: string): number;
  names(): string[];
  close(): void;
}

abstract class BaseSink implements SensSink {
  protected readonly meta = new Map<string, { shape: number[]; sum: number }>();

  put(name: string, shape: number[], data: Float32Array): void {
    const n = shape.reduce((a, b) => a * b, 1);
    if (data.length !== n)
      throw new Error(`sensitivity ${name}: ${data.length} values for shape [${shape.join(', ')}]`);
    const s = kernels().sum(data, n);
    // S is a sum of |theta * grad| over finite gradients (checked per seed): a NaN/Inf here comes
    // from the weights themselves.
    if (!name.startsWith('~') && !Number.isFinite(s)) {
      throw new InputError(
        name,
        `sensitivity holds NaN or Inf (${describeNonFinite(data)}); does the teacher's weight hold NaN/Inf?`,
      );
    }
    this.meta.set(name, { shape: [...shape], sum: s });
    this.store(name, data);
  }
  has(name: string): boolean {
    return this.meta.has(name);
  }
  shape(name: string): number[] {
    return [...this.entry(name).shape];
  }
  sum(name: string): number {
    return this.entry(name).sum;
  }
  names(): string[] {
    return [...this.meta.keys()].filter((n) => !n.startsWith('~'));
  }
  take(name: string): Float32Array {
    const d = this.get(name);
    this.meta.delete(name);
    this.drop(name);
    return d;
  }
  protected entry(name: string) {
    const e = this.meta.get(name);
    if (!e) throw new Error(`sensitivity sink: no tensor ${name}`);
    return e;
  }
  abstract get(name: string): Float32Array;
  abstract close(): void;
  protected abstract store(name: string, data: Float32Array): void;
  protected abstract drop(name: string): void;
}

/** Keeps every tensor in memory (tests, small models). Also a TensorSource for layerScores/extract. */
export class MemorySink extends BaseSink {
  private readonly data = new Map<string, Float32Array>();
  protected store(name: string, data: Float32Array): void {
    this.data.set(name, data);
  }
  protected drop(name: string): void {
    this.data.delete(name);
  }
  get(name: string): Float32Array {
    const d = this.data.get(name);
    if (!d) throw new Error(`sensitivity sink: no tensor ${name}`);
    return d;
  }
  info(name: string): { shape: number[] } {
    return { shape: this.shape(name) };
  }
  close(): void {
    this.data.clear();
  }
}

/**
 * Writes each tensor as a raw float32 file in a hidden temporary folder beside the output (same
 * file system, so the final assembly is a local copy), so memory holds only the tensors being
 * computed. close() removes the folder.
 */
export class DiskSink extends BaseSink {
  readonly dir: string;
  private readonly files = new Map<string, string>();
  private count = 0;

  constructor(outputPath: string) {
    super();
    this.dir = mkdtempSync(join(dirname(outputPath), `.${basename(outputPath)}.parts-`));
  }
  protected store(name: string, data: Float32Array): void {
    const file = join(this.dir, `${this.count++}.f32`);
    writeFileSync(file, new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
    this.files.set(name, file);
  }
  protected drop(name: string): void {
    const f = this.files.get(name);
    if (f) rmSync(f, { force: true });
    this.files.delete(name);
  }
  get(name: string): Float32Array {
    const f = this.files.get(name);
    if (!f) throw new Error(`sensitivity sink: no tensor ${name}`);
    const b = readFileSync(f);
    // a large read owns its buffer: view it in place rather than copy it
    if (b.byteOffset % 4 === 0 && b.byteLength === b.buffer.byteLength)
      return new Float32Array(b.buffer, b.byteOffset, b.byteLength / 4);
    return new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
  }
  close(): void {
    rmSync(this.dir, { recursive: true, force: true });
    this.files.clear();
  }
}

// ---------------------------------------------------------------------------------------------- checks

/** "NaN at element i" / "+Inf at element i" for the first non-finite value. */
export function describeNonFinite(x: ArrayLike<number>): string {
  for (let i = 0; i < x.length; i++) {
    const v = x[i];
    if (!Number.isFinite(v)) return `${Number.isNaN(v) ? 'NaN' : v > 0 ? '+Inf' : '-Inf'} at element ${i}`;
  }
  return 'no non-finite value found';
}

/** Throws NonFiniteGradient when g holds NaN/Inf (a float64 sum of finite float32 values is finite). */
export function checkGradient(g: Float32Array, n: number, tensor: string, ex: SenseExample): void {
  if (Number.isFinite(kernels().sum(g, n))) return;
  throw new NonFiniteGradient(ex, tensor, `holds ${describeNonFinite(g.subarray(0, n))}`);
}

export function checkLoss(loss: number, ex: SenseExample): void {
  if (!Number.isFinite(loss))
    throw new NonFiniteGradient(ex, 'the loss', `is ${loss} (the forward pass overflowed)`);
}

/** Refuses ids and targets outside the vocabulary, naming the seed. */
export function checkExample(ex: SenseExample, c: ModelConfig): void {
  const V = c.vocabSize;
  if (ex.ids.length === 0) throw new InputError(ex.source, `seed ${ex.index} has no tokens`);
  if (ex.ids.length > c.maxPositionEmbeddings) {
    throw new InputError(
      ex.source,
      `seed ${ex.index} has ${ex.ids.length} tokens, more than the model's context of ${c.maxPositionEmbeddings}`,
    );
  }
  for (let t = 0; t < ex.ids.length; t++) {
    const id = ex.ids[t];
    if (!(id >= 0 && id < V))
      throw new InputError(
        ex.source,
        `seed ${ex.index}: token id ${id} at position ${t} is outside the vocabulary [0, ${V})`,
      );
  }
  for (let t = 0; t < ex.targets.length; t++) {
    const tg = ex.targets[t];
    if (tg >= V)
      throw new InputError(
        ex.source,
        `seed ${ex.index}: target id ${tg} at position ${t} is outside the vocabulary [0, ${V})`,
      );
  }
}

/** Every tensor the config names is present with its shape (headers only: cheap, before any work). */
export function checkTeacherTensors(ws: WeightSource, c: ModelConfig): void {
  const problems: string[] = [];
  for (const name of expectedTensorNames(c)) {
    if (!ws.has(name)) {
      problems.push(`missing tensor ${name}`);
      continue;
    }
    const got = ws.info(name).shape,
      want = expectedShape(c, name);
    if (got.join() !== want.join())
      problems.push(
        `tensor ${name} has shape [${got.join(', ')}] but the config implies [${want.join(', ')}]`,
      );
  }
  if (problems.length)
    throw new InputError(
      ws.source,
      problems.slice(0, 8).join('; ') + (problems.length > 8 ? `; ... (${problems.length} problems)` : ''),
    );
}

let gcFn: (() => void) | null | undefined;

/**
 * A full garbage collection, so that a dropped layer's arrays are freed now. V8 frees large
 * ArrayBuffers only when it collects, and left alone it lets hundreds of MB of dropped layers pile
 * up before it does; streaming promises "about one layer in memory", so it collects at each layer
 * boundary (a few ms: the JS heap itself is small). No-op when the runtime refuses --expose-gc.
 */
export function releaseMemory(): void {
  if (gcFn === undefined) {
    try {
      setFlagsFromString('--expose-gc');
      gcFn = runInNewContext('gc') as () => void;
    } catch {
      gcFn = null;
    }
  }
  gcFn?.();
}

/** Lets the event loop run (SIGINT handlers fire there) and stops when aborted. */
export async function tick(signal?: AbortSignal): Promise<void> {
  await new Promise<void>((r) => setImmediate(r));
  if (signal?.aborted) throw new SenseAborted();
}

// ---------------------------------------------------------------------------------------------- executors

export interface TeacherSource {
  config: ModelConfig;
  weights: WeightSource;
}

/** Runs step 1 on the examples, sending every tensor's S to the sink. */
export async function runSense(
  src: TeacherSource,
  examples: readonly SenseExample[],
  sink: SensSink,
  opts: SenseRunOptions = {},
): Promise<SenseRun> {
  if (examples.length === 0) throw new InputError('seeds', 'no seed examples to run');
  checkTeacherTensors(src.weights, src.config);
  for (const ex of examples) checkExample(ex, src.config);
  const t0 = performance.now();
  const streaming = opts.streaming ?? true;
  let losses: SeedLoss[];
  if (streaming) {
    const { senseStreaming } = await import('./stream.js');
    losses = await senseStreaming(src, examples, sink, opts);
  } else {
    losses = await senseInMemory(src, examples, sink, opts);
  }
  let tokens = 0,
    answerTokens = 0;
  for (const ex of examples) {
    tokens += ex.ids.length;
    answerTokens += ex.nTargets;
  }
  return { losses, tokens, answerTokens, seconds: (performance.now() - t0) / 1000, streaming };
}

export function seedLoss(ex: SenseExample, loss: number): SeedLoss {
  return {
    index: ex.index,
    line: ex.line,
    loss,
    tokens: ex.ids.length,
    answerTokens: ex.nTargets,
    truncated: ex.truncated,
  };
}

/** The whole model in memory with a gradient for every parameter (the reference executor). */
export async function senseInMemory(
  src: TeacherSource,
  examples: readonly SenseExample[],
  sink: SensSink,
  opts: SenseRunOptions = {},
): Promise<SeedLoss[]> {
  const c = src.config;
  const model = LlamaModel.load(src);
  model.enableGrads();
  const params = model.params.unique();
  const S = new Map(params.map((p) => [p.name, new Float32Array(p.size)]));
  const losses: SeedLoss[] = [];
  let lossSum = 0;
  for (const [j, ex] of examples.entries()) {
    model.zeroGrads();
    const loss = model.loss({ ids: ex.ids, B: 1, T: ex.ids.length }, ex.targets);
    checkLoss(loss, ex);
    model.backward();
    for (const p of params) {
      checkGradient(p.grad!, p.size, p.name, ex);
      accumulateSensitivity(S.get(p.name)!, p);
    }
    losses.push(seedLoss(ex, loss));
    lossSum += loss;
    opts.onProgress?.(j + 1, examples.length, {
      seed: `${j + 1}/${examples.length}`,
      loss: lossSum / (j + 1),
    });
    await tick(opts.signal);
  }
  for (const name of expectedTensorNames(c)) sink.put(name, expectedShape(c, name), S.get(name)!);
  return losses;
}

// ---------------------------------------------------------------------------------------------- summary and file

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

/** `sens.safetensors` -> `sens.summary.json` (beside the sensitivity file). */
export function summaryPathFor(out: string): string {
  return out.replace(/\.safetensors$/, '') + '.summary.json';
}

/**
 * Writes the sensitivity safetensors (tensors in the teacher's HF order, f32 or bf16, one read at a
 * time from the sink) and the JSON summary beside it, both atomically.
 */
export function writeSensitivityFile(
  path: string,
  sink: SensSink,
  c: ModelConfig,
  dtype: 'f32' | 'bf16',
  summary: SensSummary,
): void {
  const names = expectedTensorNames(c);
  writeSafetensorsLazy(
    path,
    names.map((name) => ({
      name,
      shape: sink.shape(name),
      dtype: dtype === 'bf16' ? ('BF16' as const) : ('F32' as const),
      load: () => {
        // the previous tensor is written: free it before reading a big one
        if (sink.shape(name).reduce((a, b) => a * b, 4) >= 16 << 20) releaseMemory();
        return sink.get(name);
      },
    })),
    { format: SENS_FORMAT, [SUMMARY_METADATA_KEY]: JSON.stringify(summary) },
  );
  writeJsonAtomic(summaryPathFor(path), summary);
}
