/**
 * A model's parameters by HF name, as compute arrays (Float32Array; Float64Array in the float64
 * gradient-check mode; bf16/f16 bits for matrices a file stores so) with optional gradient arrays. Loaded from a WeightSource one name at a time,
 * so a single decoder layer can be loaded on its own (sensitivity streams a big teacher that way).
 *
 * Tied embeddings: `lm_head.weight` is the same Param object as `model.embed_tokens.weight`, so the
 * lm_head and the embedding read one array and accumulate into one gradient.
 */
import { alloc, allocFrom, getPrecision } from '../engine/alloc.js';
import { kernels } from '../engine/backend.js';
import { HalfArray } from '../engine/half.js';
import { bf16ToF32, halfToFloat } from '../engine/dtype.js';
import { InputError } from '../errors.js';
import {
  expectedShape,
  expectedTensorNames,
  expectedTensorCount,
  firstMissingTensor,
  layerNames,
  type ModelConfig,
} from './config.js';
import type { WeightSource } from './weights.js';

type F32 = Float32Array;

/**
 * One named parameter. A frozen weight read from a bf16/f16 file keeps its bits (`half`) and the
 * matrix products read them directly (Kernels.gemmHalf). Reading `data` of such a param widens it to
 * float32 once, for code that needs float32 values (an optimiser step, the LoRA subtract trick W' =
 * W - B·A): from then on the param is float32 and `half` is null.
 */
export class Param {
  readonly shape: readonly number[];
  /** The gradient, accumulated by backward; null = frozen (no gradient computed). */
  grad: F32 | null = null;
  private values: F32 | null;
  private halfValues: HalfArray | null;

  constructor(
    readonly name: string,
    shape: readonly number[],
    data: F32 | HalfArray,
  ) {
    this.shape = [...shape];
    this.values = data instanceof HalfArray ? null : data;
    this.halfValues = data instanceof HalfArray ? data : null;
  }

  /** The values as float32 (widened on first use when stored half); callers may edit them in place. */
  get data(): F32 {
    if (!this.values) {
      this.values = toCompute(this.halfValues!.toF32());
      this.halfValues = null;
    }
    return this.values;
  }

  set data(v: F32) {
    this.values = v;
    this.halfValues = null;
  }

  /** The bf16/f16 bits while the param is stored half, else null. */
  get half(): HalfArray | null {
    return this.halfValues;
  }

  /** Number of values (without widening a half param). */
  get size(): number {
    return this.values ? this.values.length : this.halfValues!.length;
  }

  /** Bytes its values take in memory. */
  get bytes(): number {
    return this.values ? this.values.byteLength : this.halfValues!.bits.byteLength;
  }
}

/** Tensors that old checkpoints carry but that are recomputed, not learned. */
const IGNORABLE = /(^|\.)rotary_emb\.inv_freq$/;

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

/** The float32 array from the source converted to the compute precision (no copy in f32 mode). */
function toCompute(a: Float32Array): F32 {
  return getPrecision() === 'f64' ? allocFrom(a) : a;
}

export class ParamStore {
  private readonly map = new Map<string, Param>();

  /** Adds a param (the data array is used as is). */
  add(name: string, shape: readonly number[], data: F32 | HalfArray): Param {
    let n = 1;
    for (const s of shape) n *= s;
    if (data.length !== n)
      throw new Error(`param ${name}: ${data.length} values for shape [${shape.join(', ')}]`);
    const p = new Param(name, shape, data);
    this.map.set(name, p);
    return p;
  }

  /** Makes `alias` name the very same Param as `target` (tied embeddings). */
  alias(alias: string, target: string): Param {
    const p = this.get(target);
    this.map.set(alias, p);
    return p;
  }

  has(name: string): boolean {
    return this.map.has(name);
  }

  get(name: string): Param {
    const p = this.map.get(name);
    if (!p) throw new Error(`no parameter named ${name}`);
    return p;
  }

  /** All names, aliases included (HF order of insertion). */
  names(): string[] {
    return [...this.map.keys()];
  }

  /** Each distinct Param once (a tied lm_head is not listed separately). */
  unique(): Param[] {
    return [...new Set(this.map.values())];
  }

  /** Number of distinct parameter values. */
  count(): number {
    let n = 0;
    for (const p of this.unique()) n += p.size;
    return n;
  }

  /** Allocates (zeroed) gradients for every param, or only for names accepted by `filter`. */
  enableGrads(filter: (name: string) => boolean = () => true): void {
    for (const [name, p] of this.map) if (!p.grad && filter(name)) p.grad = alloc(p.size);
  }

  /** Drops every gradient (parameters become frozen). */
  disableGrads(): void {
    for (const p of this.map.values()) p.grad = null;
  }

  zeroGrads(): void {
    for (const p of this.unique()) p.grad?.fill(0);
  }

  /** Moves the params of another store into this one (used to assemble a model from parts). */
  merge(other: ParamStore): void {
    for (const [name, p] of other.map) this.map.set(name, p);
  }

  /** Frees the arrays (the streaming sensitivity code drops a layer after use). */
  clear(): void {
    this.map.clear();
  }
}

/** Names of the tensors of decoder layer i under config c. */
export function layerTensorNames(c: ModelConfig, i: number): string[] {
  return layerNames(c, i);
}

/**
 * Refuses NaN or infinite weights, naming the tensor: a damaged file would otherwise generate empty
 * text or NaN losses with no hint of where they come from. One pass, cheap next to reading the bytes.
 */
export function checkFinite(source: string, name: string, data: ArrayLike<number>): void {
  for (let i = 0; i < data.length; i++) {
    const v = data[i];
    if (v - v !== 0) {
      throw new InputError(
        source,
        `tensor ${name} holds ${v} at index ${i}: the weights are damaged (NaN or infinite values)`,
      );
    }
  }
}

/**
 * Refuses a store holding NaN or infinite weights, naming the first such tensor (for models loaded
 * to generate text: with them the model writes empty text with no hint why).
 */
export function checkFiniteParams(store: ParamStore, source: string): void {
  for (const name of store.names()) {
    const p = store.get(name);
    // A half param is checked on its bits: reading .data would widen it to float32 for good.
    if (p.half) checkFiniteHalf(source, name, p.half);
    else checkFinite(source, name, p.data);
  }
}

/** NaN/Inf in bf16 or f16 bits: the exponent field all ones. */
function checkFiniteHalf(source: string, name: string, h: HalfArray): void {
  const mask = h.dtype === 'bf16' ? 0x7f80 : 0x7c00;
  const bits = h.bits;
  for (let i = 0; i < bits.length; i++) {
    if ((bits[i] & mask) === mask) {
      const v = h.dtype === 'bf16' ? bf16ToF32(bits.subarray(i, i + 1))[0] : halfToFloat(bits[i]);
      throw new InputError(
        source,
        `tensor ${name} holds ${v} at index ${i}: the weights are damaged (NaN or infinite values)`,
      );
    }
  }
}

function checkShape(ws: WeightSource, c: ModelConfig, name: string): void {
  if (!ws.has(name)) throw new InputError(ws.source, `missing tensor ${name} (required by the model config)`);
  const want = expectedShape(c, name);
  const got = ws.info(name).shape;
  if (!sameShape(want, got)) {
    throw new InputError(
      ws.source,
      `tensor ${name} has shape [${got.join(', ')}] but the config implies [${want.join(', ')}]`,
    );
  }
}

/** Reads one tensor as float32 (float64 in gradient-check mode), checking presence and shape against the config. */
export function loadTensor(ws: WeightSource, c: ModelConfig, name: string): F32 {
  checkShape(ws, c, name);
  const want = expectedShape(c, name);
  const data = ws.get(name);
  let n = 1;
  for (const s of want) n *= s;
  if (data.length !== n)
    throw new InputError(ws.source, `tensor ${name} holds ${data.length} values, expected ${n}`);
  return toCompute(data);
}

/**
 * Reads one tensor for a Param: matrices stored bf16/f16 in the file stay half (half the memory, read
 * directly by the products); everything else, and everything in the float64 gradient-check mode, is
 * float32 (float64) as loadTensor gives it.
 */
export function loadStored(ws: WeightSource, c: ModelConfig, name: string): F32 | HalfArray {
  const want = expectedShape(c, name);
  if (want.length !== 2 || getPrecision() !== 'f32' || !ws.getStored || !ws.has(name))
    return loadTensor(ws, c, name);
  const { dtype } = ws.info(name);
  if (dtype !== 'BF16' && dtype !== 'F16') return loadTensor(ws, c, name);
  checkShape(ws, c, name);
  const data = ws.getStored(name);
  if (data.length !== want[0] * want[1])
    throw new InputError(
      ws.source,
      `tensor ${name} holds ${data.length} values, expected ${want[0] * want[1]}`,
    );
  return data;
}

/** Loads the named tensors into a store (half matrices kept half, see loadStored). */
export function loadParams(ws: WeightSource, c: ModelConfig, names: readonly string[]): ParamStore {
  const store = new ParamStore();
  for (const name of names) store.add(name, expectedShape(c, name), loadStored(ws, c, name));
  return store;
}

/** S += |θ · grad| for a param with a gradient, reading θ in its stored dtype (docs/method.md step 1). */
export function accumulateSensitivity(S: F32, p: Param): void {
  const grad = p.grad;
  if (!grad) throw new Error(`param ${p.name} has no gradient to accumulate sensitivity from`);
  const half = p.half;
  if (half) kernels().sensAccumulateHalf(S, half.bits, half.dtype, grad, p.size);
  else kernels().sensAccumulate(S, p.data, grad, p.size);
}

/** The params of decoder layer i only. */
export function loadLayerParams(ws: WeightSource, c: ModelConfig, i: number): ParamStore {
  return loadParams(ws, c, layerTensorNames(c, i));
}

/**
 * The non-layer params (embedding, final norm, lm_head or its tie). A separate lm_head in the source
 * of a tied model is ignored (HF itself ignores it when tie_word_embeddings is true).
 */
export function loadOuterParams(ws: WeightSource, c: ModelConfig): ParamStore {
  const names = [
    'model.embed_tokens.weight',
    'model.norm.weight',
    ...(c.tieWordEmbeddings ? [] : ['lm_head.weight']),
  ];
  const store = loadParams(ws, c, names);
  if (c.tieWordEmbeddings) store.alias('lm_head.weight', 'model.embed_tokens.weight');
  return store;
}

/** Refuses tensors the config does not explain (a wrong config would otherwise load silently). */
export function checkNoExtraTensors(ws: WeightSource, c: ModelConfig): void {
  checkTensorCount(ws, c);
  const expected = new Set(expectedTensorNames(c));
  if (c.tieWordEmbeddings) expected.add('lm_head.weight');
  const extra = ws.names().filter((n) => !expected.has(n) && !IGNORABLE.test(n));
  if (extra.length > 0) {
    const shown = extra.slice(0, 5).join(', ') + (extra.length > 5 ? `, ... (${extra.length} in all)` : '');
    throw new InputError(ws.source, `tensors not explained by the model config: ${shown}`);
  }
}

/**
 * Refuses a config that implies more tensors than the weights hold, before any list of names is
 * built (a config.json claiming 10 million layers would otherwise exhaust memory first).
 */
export function checkTensorCount(ws: WeightSource, c: ModelConfig): void {
  const want = expectedTensorCount(c);
  const held = ws.names().length;
  if (want > held) {
    const gap = firstMissingTensor(c, (n) => ws.has(n));
    throw new InputError(
      ws.source,
      `missing tensor ${gap} (required by the model config: ${want} tensors for ${c.numLayers} layers, the weights hold ${held})`,
    );
  }
}

/** Loads every param of the model. */
export function loadAllParams(ws: WeightSource, c: ModelConfig): ParamStore {
  checkNoExtraTensors(ws, c);
  const store = loadOuterParams(ws, c);
  for (let i = 0; i < c.numLayers; i++) store.merge(loadLayerParams(ws, c, i));
  return store;
}
