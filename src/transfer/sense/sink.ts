/**
 * Where finished sensitivities go: memory (tests) or raw files in a temporary folder next to the
 * output (the CLI), read back one tensor at a time when the file is written.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { kernels } from '../../engine/backend.js';
import { bf16ToF32, f32ToBf16 } from '../../engine/dtype.js';
import { InputError } from '../../errors.js';
import { describeNonFinite } from './checks.js';

/** The precision DiskSink keeps its parts in: the output file's. */
export type PartDtype = 'f32' | 'bf16';

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
 * Writes each tensor as a raw file in a hidden temporary folder beside the output (same file system,
 * so the final assembly is a local copy), so memory holds only the tensors being computed. With a
 * bf16 output the parts are stored already rounded to it (half the scratch disk: a 13B S is
 * 26 GB of parts instead of 52), which is exactly what the output file would hold; the sums were taken
 * in float32 at put(), and scratch tensors ("~" names, still to be added to) stay float32. close()
 * removes the folder.
 */
export class DiskSink extends BaseSink {
  readonly dir: string;
  private readonly files = new Map<string, { file: string; dtype: PartDtype }>();
  private count = 0;

  constructor(
    outputPath: string,
    private readonly partDtype: PartDtype = 'f32',
  ) {
    super();
    this.dir = mkdtempSync(join(dirname(outputPath), `.${basename(outputPath)}.parts-`));
  }
  protected store(name: string, data: Float32Array): void {
    const dtype: PartDtype = name.startsWith('~') ? 'f32' : this.partDtype;
    const file = join(this.dir, `${this.count++}.${dtype}`);
    const raw = dtype === 'f32' ? data : f32ToBf16(data);
    writeFileSync(file, new Uint8Array(raw.buffer, raw.byteOffset, raw.byteLength));
    this.files.set(name, { file, dtype });
  }
  protected drop(name: string): void {
    const f = this.files.get(name);
    if (f) rmSync(f.file, { force: true });
    this.files.delete(name);
  }
  get(name: string): Float32Array {
    const f = this.files.get(name);
    if (!f) throw new Error(`sensitivity sink: no tensor ${name}`);
    const b = readFileSync(f.file);
    if (f.dtype === 'bf16')
      return bf16ToF32(new Uint16Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength)));
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
