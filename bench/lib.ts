/**
 * A tiny benchmark harness. Each bench module exports `async function run(rec: Recorder)` and
 * records figures; bench/run.ts runs the modules, prints a table and merges the figures into
 * bench/results.json by name (so running one module with --only updates its entries without losing
 * the others). Timings are best-of-N: the machine may be shared, and the minimum is the figure
 * least disturbed by other load.
 */
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { cpus } from 'node:os';
import { join } from 'node:path';
import { writeJsonAtomic } from '../src/io/atomic.js';
import { loadNative, packageRoot } from '../src/engine/native.js';
import type { Kernels } from '../src/engine/kernels.js';

export interface BenchEntry {
  name: string;
  value: number;
  unit: string;
  /** The figure this one is compared to (e.g. CPU peak, OpenBLAS from C, the exact method). */
  baseline: { name: string; value: number } | null;
  /** value / baseline.value, or null without a baseline. */
  ratio: number | null;
}

export interface ResultsFile {
  /** ISO time of the last write. */
  updated: string;
  /** What the latest figures were measured on. */
  machine: string;
  entries: BenchEntry[];
}

export class Recorder {
  readonly entries: BenchEntry[] = [];

  /** Records a figure; with a baseline, ratio = value / baseline.value. Returns the entry. */
  record(
    name: string,
    value: number,
    unit: string,
    baseline: { name: string; value: number } | null = null,
  ): BenchEntry {
    const e: BenchEntry = {
      name,
      value,
      unit,
      baseline: baseline ? { name: baseline.name, value: baseline.value } : null,
      ratio: baseline && baseline.value !== 0 ? value / baseline.value : null,
    };
    const at = this.entries.findIndex((x) => x.name === name);
    if (at >= 0) this.entries[at] = e;
    else this.entries.push(e);
    console.log(`  ${formatRow(e)}`);
    return e;
  }

  /** A progress note (not a figure). */
  note(text: string): void {
    console.log(`  - ${text}`);
  }
}

export type BenchModule = { run(rec: Recorder): Promise<void> };

/** Best seconds per call of fn over `reps` timed calls, after `warmup` untimed ones. */
export function bestTime(fn: () => void, reps: number, warmup = 1): number {
  for (let i = 0; i < warmup; i++) fn();
  let best = Infinity;
  for (let i = 0; i < reps; i++) {
    const t0 = process.hrtime.bigint();
    fn();
    const dt = Number(process.hrtime.bigint() - t0) / 1e9;
    if (dt < best) best = dt;
  }
  return best;
}

/** What the bench-only addon (build/Release/nuggets_bench.node, native/src/bench.cc) exports. */
export interface NativeBenchHelpers {
  /** fp32 FMA throughput: one OpenMP thread per core, each keeping its fastest of `chunks` short runs, summed. */
  benchPeakFlops(chunks?: number): { gflops: number; threads: number; isa: string };
  /** Seconds per cblas_sgemm(M, N, K) call timed in C, averaged over reps after one warm-up. */
  benchSgemmDirect(M: number, N: number, K: number, reps: number): number;
}

/** The bench-only addon, or null (with the reason) when it was not built or does not load. */
export function benchHelpers(): { helpers: NativeBenchHelpers | null; error: string } {
  const path = join(packageRoot(), 'build', 'Release', 'nuggets_bench.node');
  if (!existsSync(path)) return { helpers: null, error: `${path} was not built (run "npm rebuild")` };
  try {
    const addon = createRequire(import.meta.url)(path) as Record<string, unknown>;
    for (const fn of ['benchPeakFlops', 'benchSgemmDirect'])
      if (typeof addon[fn] !== 'function') throw new Error(`no function ${fn}`);
    return { helpers: addon as unknown as NativeBenchHelpers, error: '' };
  } catch (e) {
    return { helpers: null, error: `${path} failed to load: ${(e as Error).message}` };
  }
}

/** The native backend, or null (with the reason) when the addon is absent. */
export function nativeForBench(): { k: Kernels | null; error: string } {
  const n = loadNative();
  return { k: n.kernels, error: n.error };
}

/** Deterministic fast fill with uniforms in [lo, hi) (xorshift32; Rng is too slow for 70M entries). */
export function fillFast(a: Float32Array, seed = 1, lo = -1, hi = 1): Float32Array {
  let s = seed >>> 0 || 1;
  const w = (hi - lo) / 4294967296;
  for (let i = 0; i < a.length; i++) {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    a[i] = lo + s * w;
  }
  return a;
}

export function machineDescription(): string {
  const c = cpus();
  return `${c[0]?.model ?? 'unknown CPU'}, ${c.length} logical cores, node ${process.version}`;
}

/** Merges entries into the results file by name (new figures replace old ones) and writes it atomically. */
export function mergeResults(path: string, entries: BenchEntry[]): ResultsFile {
  let old: BenchEntry[] = [];
  if (existsSync(path)) {
    try {
      const parsed = JSON.parse(readFileSync(path, 'utf8')) as Partial<ResultsFile>;
      if (Array.isArray(parsed.entries)) old = parsed.entries;
    } catch (e) {
      // A damaged file must not block new figures, but say so rather than drop it silently.
      console.warn(`bench: ${path} is not valid JSON (${(e as Error).message}); starting it afresh`);
    }
  }
  const byName = new Map(old.map((e) => [e.name, e]));
  for (const e of entries) byName.set(e.name, e);
  const out: ResultsFile = {
    updated: new Date().toISOString(),
    machine: machineDescription(),
    entries: [...byName.values()],
  };
  writeJsonAtomic(path, out);
  return out;
}

function fmt(x: number): string {
  if (!Number.isFinite(x)) return String(x);
  const a = Math.abs(x);
  if (a !== 0 && (a >= 1e5 || a < 1e-3)) return x.toExponential(3);
  return x.toFixed(a >= 100 ? 1 : a >= 1 ? 3 : 4);
}

/** Ratios near 1 are the interesting ones (binding overhead, accuracy): four decimals. */
function fmtRatio(x: number): string {
  return Math.abs(x) >= 1e-3 && Math.abs(x) < 1e4 ? x.toFixed(4) : fmt(x);
}

function formatRow(e: BenchEntry): string {
  const base = e.baseline ? `vs ${e.baseline.name} (${fmt(e.baseline.value)})` : '';
  const ratio = e.ratio === null ? '' : `ratio ${fmtRatio(e.ratio)}`;
  return [e.name, `${fmt(e.value)} ${e.unit}`, ratio, base].filter(Boolean).join('  |  ');
}

/** A readable table of entries. */
export function formatTable(entries: BenchEntry[]): string {
  const rows = entries.map((e) => [
    e.name,
    fmt(e.value),
    e.unit,
    e.ratio === null ? '' : fmtRatio(e.ratio),
    e.baseline ? e.baseline.name : '',
  ]);
  const head = ['figure', 'value', 'unit', 'ratio', 'baseline'];
  const w = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (r: string[]) =>
    r
      .map((c, i) => (i === 1 || i === 3 ? c.padStart(w[i]) : c.padEnd(w[i])))
      .join('  ')
      .trimEnd();
  return [line(head), w.map((n) => '-'.repeat(n)).join('  '), ...rows.map(line)].join('\n');
}
