/**
 * Results in the shape lm-evaluation-harness writes (lm_eval/evaluator.py and
 * loggers/evaluation_tracker.py), so its readers work on nuggets' files:
 *   results[task]["<metric>,<filter>"] and results[task]["<metric>_stderr,<filter>"], groups (the
 *   group tasks' rows again, e.g. mmlu, mmlu_stem), group_subtasks, configs, versions, n-shot,
 *   higher_is_better, n-samples ({original, effective}), the run's config, git_hash, date (start,
 *   Unix seconds), task_hashes, the general-config fields (model_name, start_time, end_time,
 *   total_evaluation_time_seconds as a string...) and nuggets_version.
 * Per-sample records go to one JSONL file per task in lm-eval's saved form: doc_id, doc, target
 * (a string), arguments as {gen_args_i: {arg_j}}, resps / filtered_resps with every leaf as Python's
 * str() writes it, filter, metrics, the metric values, and doc_hash / prompt_hash / target_hash
 * (sha256 hex of json.dumps(doc, indent=2), the first request's context, str(target)).
 * Every file is written atomically.
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
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
  groups: Record<string, Record<string, unknown>>;
  group_subtasks: Record<string, string[]>;
  configs: Record<string, Record<string, unknown>>;
  versions: Record<string, number>;
  'n-shot': Record<string, number>;
  higher_is_better: Record<string, Record<string, boolean>>;
  'n-samples': Record<string, { original: number; effective: number }>;
  config: Record<string, unknown>;
  git_hash: string | null;
  date: number;
  task_hashes: Record<string, string>;
  model_source: string;
  model_name: string | null;
  model_name_sanitized: string | null;
  system_instruction: string | null;
  system_instruction_sha: string | null;
  fewshot_as_multiturn: boolean;
  chat_template: string | null;
  chat_template_sha: string | null;
  start_time: number;
  end_time: number;
  total_evaluation_time_seconds: string;
  nuggets_version: string;
}

/** When the run started and ended (Unix seconds); both default to the build time. */
export interface RunTiming {
  start: number;
  end: number;
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
  timing?: RunTiming,
): ResultsJson {
  const start = timing?.start ?? date.getTime() / 1000;
  const end = timing?.end ?? start;
  const model = typeof runConfig.model === 'string' ? runConfig.model : null;
  const out: ResultsJson = {
    results: {},
    groups: {},
    group_subtasks: {},
    configs: {},
    versions: {},
    'n-shot': {},
    higher_is_better: {},
    'n-samples': {},
    config: runConfig,
    git_hash: gitHash(),
    date: start,
    task_hashes: {},
    model_source: 'nuggets',
    model_name: model,
    model_name_sanitized: model === null ? null : model.replace(/["<>:/|\\?*[\]]+/g, '__'),
    system_instruction: null,
    system_instruction_sha: null,
    fewshot_as_multiturn: false,
    chat_template: null,
    chat_template_sha: null,
    start_time: start,
    end_time: end,
    total_evaluation_time_seconds: String(end - start),
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
    if (t.subtasks) {
      out.group_subtasks[t.task] = [...t.subtasks];
      out.groups[t.task] = r;
    }
    if (t.samples.length > 0) out.task_hashes[t.task] = taskHash(t.samples);
  }
  return out;
}

const sha256 = (s: string) => createHash('sha256').update(s, 'utf8').digest('hex');

/** Python's str() of a JSON leaf (floats as repr: "-1.5", "1e-05", "2.0"; True/False/None). */
export function pyStr(v: unknown): string {
  if (v === null || v === undefined) return 'None';
  if (typeof v === 'boolean') return v ? 'True' : 'False';
  if (typeof v === 'number') {
    if (Number.isNaN(v)) return 'nan';
    if (!Number.isFinite(v)) return v > 0 ? 'inf' : '-inf';
    if (Number.isInteger(v) && Math.abs(v) < 1e16) return `${v}.0`;
    const a = Math.abs(v);
    if (a < 1e-4 || a >= 1e16) {
      const [m, e] = v.toExponential().split('e');
      const exp = Number(e);
      return `${m}e${exp < 0 ? '-' : '+'}${String(Math.abs(exp)).padStart(2, '0')}`;
    }
    return String(v);
  }
  return typeof v === 'string' ? v : JSON.stringify(v);
}

/** lm_eval.utils.sanitize_list: every leaf of a nested list as str(). */
function sanitizeList(v: unknown): unknown {
  return Array.isArray(v) ? v.map(sanitizeList) : pyStr(v);
}

/** The three hashes lm-eval logs per sample (null where the record has no such part). */
export function sampleHashes(
  s: SampleRecord,
): { doc_hash: string; prompt_hash: string; target_hash: string } | null {
  const args = s.arguments;
  if (!('doc' in s) || !Array.isArray(args) || !Array.isArray(args[0]) || typeof args[0][0] !== 'string')
    return null;
  const target = typeof s.target === 'number' ? String(s.target) : pyStr(s.target);
  return {
    doc_hash: sha256(JSON.stringify(s.doc, null, 2)),
    prompt_hash: sha256(args[0][0]),
    target_hash: sha256(target),
  };
}

/** evaluation_tracker's task hash: sha256 of every record's doc + prompt + target hashes, in order. */
function taskHash(samples: readonly SampleRecord[]): string {
  return sha256(
    samples
      .map((s) => {
        const h = sampleHashes(s);
        return h ? h.doc_hash + h.prompt_hash + h.target_hash : '';
      })
      .join(''),
  );
}

/**
 * A record as evaluation_tracker.save_results_samples writes it: arguments {gen_args_i: {arg_j}},
 * resps / filtered_resps stringified, target a string, the hashes added. Records that are not in
 * lm-eval's request form (nuggets-only tasks) are written as they are.
 */
export function lmEvalSampleLine(s: SampleRecord): Record<string, unknown> {
  const h = sampleHashes(s);
  if (h === null) return s;
  const args = s.arguments as unknown[][];
  const argumentsObj: Record<string, Record<string, unknown>> = {};
  args.forEach((a, i) => {
    argumentsObj[`gen_args_${i}`] = Object.fromEntries(a.map((x, j) => [`arg_${j}`, x]));
  });
  return {
    ...s,
    target: typeof s.target === 'number' ? String(s.target) : pyStr(s.target),
    arguments: argumentsObj,
    resps: sanitizeList(s.resps),
    filtered_resps: sanitizeList(s.filtered_resps),
    ...h,
  };
}

let cachedGitHash: string | null | undefined;
/** `git rev-parse --short HEAD` of the nuggets checkout (lm-eval records its own); null outside a git checkout. */
function gitHash(): string | null {
  if (cachedGitHash !== undefined) return cachedGitHash;
  try {
    const cwd = fileURLToPath(new URL('.', import.meta.url));
    cachedGitHash = execFileSync('git', ['rev-parse', '--short', 'HEAD'], {
      cwd,
      stdio: ['ignore', 'pipe', 'ignore'],
      timeout: 5000,
    })
      .toString()
      .trim();
  } catch {
    cachedGitHash = null;
  }
  return cachedGitHash || null;
}

/** Writes results JSON atomically. */
export function writeResults(path: string, results: ResultsJson): void {
  writeJsonAtomic(path, results);
}

/** Writes one task's per-sample records as JSON Lines, atomically. */
export function writeSamplesJsonl(path: string, samples: readonly SampleRecord[]): void {
  writeFileAtomic(
    path,
    samples.map((s) => JSON.stringify(lmEvalSampleLine(s)) + '\n'),
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
