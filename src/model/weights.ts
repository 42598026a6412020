/**
 * Where a model's tensors come from. Loading is by name and lazy, so a caller can hold one layer at
 * a time (sensitivity streams a big teacher this way). Names are HF names (docs/formats.md).
 */
import type { HalfArray } from '../engine/half.js';

export interface TensorInfo {
  dtype: string;
  shape: number[];
}

export interface WeightSource {
  /** Human-readable origin (a folder or file path), used in error messages. */
  readonly source: string;
  names(): string[];
  has(name: string): boolean;
  info(name: string): TensorInfo;
  /** The tensor converted to float32, freshly read (the caller owns the array). */
  get(name: string): Float32Array;
  /**
   * The tensor in its stored dtype when that is BF16 or F16 (read straight into its final buffer),
   * else as get() gives it. Optional: sources without it are read as float32.
   */
  getStored?(name: string): Float32Array | HalfArray;
  /** Releases file handles. */
  close(): void;
}

/** An in-memory WeightSource (random test models, llama2.c imports, merged results). */
export class MemoryWeights implements WeightSource {
  constructor(
    readonly source: string,
    private readonly tensors: Map<string, { shape: number[]; data: Float32Array }>,
  ) {}

  names(): string[] {
    return [...this.tensors.keys()];
  }

  has(name: string): boolean {
    return this.tensors.has(name);
  }

  info(name: string): TensorInfo {
    return { dtype: 'F32', shape: [...this.entry(name).shape] };
  }

  get(name: string): Float32Array {
    return this.entry(name).data.slice();
  }

  close(): void {}

  private entry(name: string) {
    const t = this.tensors.get(name);
    if (!t) throw new Error(`${this.source}: no tensor named ${name}`);
    return t;
  }
}

/** The same tensors with every one read as float32 (no getStored): a model loaded from it is all float32. */
export function float32View(ws: WeightSource): WeightSource {
  return {
    source: ws.source,
    names: () => ws.names(),
    has: (name) => ws.has(name),
    info: (name) => ws.info(name),
    get: (name) => ws.get(name),
    close: () => ws.close(),
  };
}
