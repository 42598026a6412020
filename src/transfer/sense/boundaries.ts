/**
 * Where the streaming executor (streaming.ts) keeps each seed's hidden state at each layer
 * boundary, h_0..h_L: the forward pass writes them layer by layer, the head reads h_L, and the
 * backward pass reads h_l once more to recompute layer l. Held in memory they are
 * (L + 1) x tokens x d floats, which grows with the teacher's depth (about 14 GB for a 13B teacher
 * on 32 seeds x 512 tokens), so a deep teacher spills them to scratch files instead:
 *
 * - MemoryBoundaries: every state in RAM (small teachers, tests).
 * - DiskBoundaries: one raw float32 file per boundary in a private scratch folder, each seed at a
 *   fixed offset, written with positional writeSync and read back with readSync into one reused
 *   buffer, so RAM holds a single seed's state at a time. The folder is removed by close(), which
 *   the executor calls after success, error and abort alike, and at process exit if a run never
 *   got there.
 *
 * `spill: 'auto'` spills when the states would exceed SPILL_AUTO_BYTES. The scratch folder goes in
 * `scratchDir` (the CLI: beside the output file, i.e. on the disk the user chose for big files;
 * the library default is os.tmpdir(), which on some systems is a RAM-backed tmpfs).
 */
import { closeSync, mkdtempSync, openSync, readSync, rmSync, statfsSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { InputError } from '../../errors.js';

type F32 = Float32Array;

export type SpillMode = 'auto' | 'always' | 'never';
export const SPILL_MODES = ['auto', 'always', 'never'] as const;

/** 'auto' spills when the boundary states of all layers would take more than this (1 GiB). */
export const SPILL_AUTO_BYTES = 2 ** 30;

/** Name prefix of the scratch folder (hidden: it is beside the user's output by default). */
export const SCRATCH_PREFIX = '.nuggets-bounds-';

/** Per-seed hidden states at layer boundaries l = 0..L. */
export interface BoundaryStore {
  readonly spilled: boolean;
  /** Stores seed j's state entering layer l (copied or written out: the caller may reuse h). */
  put(l: number, j: number, h: F32): void;
  /** Seed j's state at boundary l; valid until the next get() (the disk store reuses one buffer). */
  get(l: number, j: number): F32;
  /** Forgets boundary l (frees its memory or deletes its file). */
  drop(l: number): void;
  /** Forgets everything (removes the scratch folder); safe to call twice. */
  close(): void;
}

/** Bytes of all boundary states: (L + 1) x tokens x d float32. */
export function boundaryBytes(numLayers: number, tokens: number, hiddenSize: number): number {
  return (numLayers + 1) * tokens * hiddenSize * 4;
}

/** Whether a run whose boundary states take `bytes` spills them. */
export function spills(mode: SpillMode = 'auto', bytes: number): boolean {
  return mode === 'always' || (mode === 'auto' && bytes > SPILL_AUTO_BYTES);
}

export interface BoundaryOptions {
  spill?: SpillMode;
  /** Folder in which the scratch folder is made (default os.tmpdir()). */
  scratchDir?: string;
}

/**
 * The store for a run: seedFloats[j] = tokens of seed j x d. Spills per `spill` (default 'auto');
 * a spilled store first checks that the scratch file system has room for all the states.
 */
export function openBoundaries(
  numLayers: number,
  seedFloats: readonly number[],
  opts: BoundaryOptions = {},
): BoundaryStore {
  const bytes = (numLayers + 1) * seedFloats.reduce((a, b) => a + b, 0) * 4;
  if (!spills(opts.spill, bytes)) return new MemoryBoundaries(numLayers);
  return new DiskBoundaries(opts.scratchDir ?? tmpdir(), numLayers, seedFloats, bytes);
}

export class MemoryBoundaries implements BoundaryStore {
  readonly spilled = false;
  private readonly states: Array<Array<F32 | undefined>>;
  constructor(numLayers: number) {
    this.states = Array.from({ length: numLayers + 1 }, () => []);
  }
  put(l: number, j: number, h: F32): void {
    this.states[l][j] = h.slice();
  }
  get(l: number, j: number): F32 {
    const h = this.states[l]?.[j];
    if (!h) throw new Error(`boundary store: no state for seed ${j} at layer boundary ${l}`);
    return h;
  }
  drop(l: number): void {
    this.states[l] = [];
  }
  close(): void {
    for (let l = 0; l < this.states.length; l++) this.states[l] = [];
  }
}

/** Largest single read or write call (fs calls take at most 2 GiB - 1 bytes). */
const IO_CHUNK = 1 << 30;

export class DiskBoundaries implements BoundaryStore {
  readonly spilled = true;
  readonly dir: string;
  private readonly fds: Array<number | null>;
  /** written[l][j]: seed j's state at boundary l is on disk. */
  private readonly written: boolean[][];
  private readonly offsets: number[];
  private readonly buffer: F32;
  private readonly onExit = () => this.close();
  private closed = false;

  constructor(
    scratchDir: string,
    numLayers: number,
    private readonly seedFloats: readonly number[],
    totalBytes: number,
  ) {
    let free: number;
    try {
      const fs = statfsSync(scratchDir);
      free = fs.bavail * fs.bsize;
    } catch (e) {
      throw new InputError(
        scratchDir,
        `cannot use as the scratch folder for the layer-boundary states: ${(e as Error).message}`,
      );
    }
    if (free < totalBytes)
      throw new InputError(
        scratchDir,
        `the layer-boundary states need ${gb(totalBytes)} GB of scratch space, but only ${gb(free)} GB are free ` +
          `there; pass --scratch-dir on a bigger disk, or use fewer seeds or shorter ones`,
      );
    this.dir = mkdtempSync(join(scratchDir, SCRATCH_PREFIX));
    process.on('exit', this.onExit);
    this.fds = new Array<number | null>(numLayers + 1).fill(null);
    this.written = Array.from({ length: numLayers + 1 }, () => []);
    this.offsets = [];
    let at = 0;
    for (const n of seedFloats) {
      this.offsets.push(at);
      at += n * 4;
    }
    this.buffer = new Float32Array(Math.max(0, ...seedFloats));
  }

  put(l: number, j: number, h: F32): void {
    if (h.length !== this.seedFloats[j])
      throw new Error(`boundary store: seed ${j} has ${this.seedFloats[j]} floats, got ${h.length}`);
    let fd = this.fds[l];
    if (fd === null) fd = this.fds[l] = openSync(this.file(l), 'w+');
    const bytes = new Uint8Array(h.buffer, h.byteOffset, h.byteLength);
    for (let done = 0; done < bytes.length;) {
      done += writeSync(fd, bytes, done, Math.min(IO_CHUNK, bytes.length - done), this.offsets[j] + done);
    }
    this.written[l][j] = true;
  }

  get(l: number, j: number): F32 {
    const fd = this.fds[l];
    if (fd === null || !this.written[l][j])
      throw new Error(`boundary store: no state for seed ${j} at layer boundary ${l}`);
    const h = this.buffer.subarray(0, this.seedFloats[j]);
    const bytes = new Uint8Array(h.buffer, h.byteOffset, h.byteLength);
    for (let done = 0; done < bytes.length;) {
      const got = readSync(fd, bytes, done, Math.min(IO_CHUNK, bytes.length - done), this.offsets[j] + done);
      if (got === 0) throw new Error(`boundary store: ${this.file(l)} ends early`);
      done += got;
    }
    return h;
  }

  drop(l: number): void {
    const fd = this.fds[l];
    if (fd !== null) closeSync(fd);
    this.fds[l] = null;
    this.written[l] = [];
    rmSync(this.file(l), { force: true });
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    process.off('exit', this.onExit);
    for (const fd of this.fds) if (fd !== null) closeSync(fd);
    this.fds.fill(null);
    rmSync(this.dir, { recursive: true, force: true });
  }

  private file(l: number): string {
    return join(this.dir, `${l}.f32`);
  }
}

function gb(bytes: number): string {
  return (bytes / 1e9).toFixed(1);
}
