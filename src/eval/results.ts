/**
 * Results in the shape lm-evaluation-harness users already read:
 *   results[task]["<metric>,<filter>"] and results[task]["<metric>_stderr,<filter>"],
 *   plus per-task "n-shot", "n-samples" ({original, effective}), "configs", "versions",
 *   "higher_is_better", "group_subtasks", and the run's "config" and "date" (Unix seconds).
 * Per-sample records go to one JSONL file per task. Every file is written atomically.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomic, writeJsonAtomic } from '../io/atomic.js';

export interface Metric {
  name: string;
  /** lm-eval filter name: "none", or e.g. "strict-match" / "flexible-extract". */
  filter: string;
  value: number | null;
  stderr: number | null;
  higherIsBetter: boolean;
}

/** One per-sample record (lm-eval's log_samples fields; metric values are added by name). */
export interface SampleRecord {
  doc_id: number;
  [key: string]: unknown;
}

export interface TaskResult {
  task: string;
  version: number;
  nShot: number;
  nSamples: { original: number; effective: number };
  metrics: Metric[];
  /** Task configuration: data file, prompt format, generation settings, notes. */
  config: Record<string, unknown>;
  samples: SampleRecord[];
  /** For a group task (e.g. mmlu), the names of its subtasks (also present as their own TaskResult). */
  subtasks?: string[];
}

export interface ResultsJson {
  results: Record<string, Record<string, unknown>>;
  group_subtasks: Record<string, string[]>;
  configs: Record<string, Record<string, unknown>>;
  versions: Record<string, number>;
  'n-shot': Record<string, number>;
  higher_is_better: Record<string, Record<string, boolean>>;
  'n-samples': Record<string, { original: number; effective: number }>;
  config: Record<string, unknown>;
  date: number;
  nuggets_version: string;
}

let cachedVersion: string | null = null;
function nuggetsVersion(): string {
  if (cachedVersion !== null) return cachedVersion;
  for (const rel of ['../../package.json', '../../../package.json']) {
    try {
      const pkg = JSON.parse(readFileSync(new URL(rel, import.meta.url), 'utf8')) as {
        name?: string;
        version?: string;
      };
      if (pkg.name === 'nuggets' && typeof pkg.version === 'string') return (cachedVersion = pkg.version);
    } catch {
      /* try the next location (source tree vs dist/) */
    }
  }
  return (cachedVersion = 'unknown');
}

/** lm-eval prints a missing stderr as "N/A". */
function stderrValue(s: number | null): number | string {
  return s === null || !Number.isFinite(s) ? 'N/A' : s;
}

export function buildResults(
  tasks: readonly TaskResult[],
  runConfig: Record<string, unknown>,
  date = new Date(),
): ResultsJson {
  const out: ResultsJson = {
    results: {},
    group_subtasks: {},
    configs: {},
    versions: {},
    'n-shot': {},
    higher_is_better: {},
    'n-samples': {},
    config: runConfig,
    date: date.getTime() / 1000,
    nuggets_version: nuggetsVersion(),
  };
  for (const t of tasks) {
    if (t.task in out.results) throw new Error(`buildResults: task "${t.task}" appears twice`);
    const r: Record<string, unknown> = { alias: t.task };
    const hib: Record<string, boolean> = {};
    for (const m of t.metrics) {
      r[`${m.name},${m.filter}`] = m.value;
      r[`${m.name}_stderr,${m.filter}`] = stderrValue(m.stderr);
      hib[m.name] = m.higherIsBetter;
    }
    out.results[t.task] = r;
    out.configs[t.task] = t.config;
    out.versions[t.task] = t.version;
    out['n-shot'][t.task] = t.nShot;
    out.higher_is_better[t.task] = hib;
    out['n-samples'][t.task] = t.nSamples;
    if (t.subtasks) out.group_subtasks[t.task] = [...t.subtasks];
  }
  return out;
}

/** Writes results JSON atomically. */
export function writeResults(path: string, results: ResultsJson): void {
  writeJsonAtomic(path, results);
}

/** Writes one task's per-sample records as JSON Lines, atomically. */
export function writeSamplesJsonl(path: string, samples: readonly SampleRecord[]): void {
  writeFileAtomic(
    path,
    samples.map((s) => JSON.stringify(s) + '\n'),
  );
}

/** File name of a task's samples next to the results: samples_<task>.jsonl (task names are [A-Za-z0-9_.-]). */
export function samplesFileName(task: string): string {
  return `samples_${task.replace(/[^A-Za-z0-9_.-]/g, '_')}.jsonl`;
}

/** Writes results.json and samples_<task>.jsonl (tasks with samples only) under `dir`; returns the paths. */
export function writeEvalOutputs(
  dir: string,
  results: ResultsJson,
  tasks: readonly TaskResult[],
  logSamples = true,
): string[] {
  const paths: string[] = [];
  if (logSamples) {
    for (const t of tasks) {
      if (t.samples.length === 0) continue;
      const p = join(dir, samplesFileName(t.task));
      writeSamplesJsonl(p, t.samples);
      paths.push(p);
    }
  }
  const rp = join(dir, 'results.json');
  writeResults(rp, results);
  paths.push(rp);
  return paths;
}
