/**
 * runEval: runs the requested tasks against an EvalLM and assembles one lm-eval-shaped results
 * object (see results.ts). Task names:
 *   gsm8k              lm-eval's gsm8k: "Question:/Answer:", 0..8 shots from the train split (default 5)
 *   gsm8k_cot          the paper's GSM8K chain of thought, 0..8 shots (default 8)
 *   mmlu               all 57 subjects, 0..5 shots from dev (default 0, lm-eval's default), with
 *                      lm-eval's groups mmlu_stem / _humanities / _social_sciences / _other
 *   mmlu_<subject>     one subject (same prompt and scoring)
 *   super_ni           exact match + ROUGE-L on a JSONL of {input, references} or {messages} rows;
 *                      needs a file: "super_ni:<path>" or options.files.super_ni
 *   alpaca_eval_proxy  (alias alpaca_eval) reference NLL, ROUGE-L, judge win rate; NOT the paper's metric
 *   humaneval          generation, and pass@k only with allowCodeExecution
 *   perplexity         "perplexity:<path>" or options.files.perplexity; needs lm.loglikelihoodRolling
 * Any task accepts "<name>:<path>" to override its data file (a folder for MMLU).
 * With several shot counts for one task (shots: {gsm8k: [0, 8]}), results are keyed "<task>_<n>shot".
 */
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { InputError } from '../errors.js';
import { DEFAULT_SEED } from '../config/schemas.js';
import type { ExecOptions } from './execute.js';
import type { Judge } from './judge.js';
import type { EvalLM } from './lm.js';
import { chatFormatName, type ChatFormat } from './prompt.js';
import { buildResults, type ResultsJson, type TaskResult } from './results.js';
import type { TaskContext } from './task.js';
import { runAlpacaEval } from './tasks/alpaca.js';
import { GSM8K_MAX_SHOTS, runGsm8k } from './tasks/gsm8k.js';
import { runGsm8kLmEval } from './tasks/gsm8k-lmeval.js';
import { MMLU_CATEGORIES, MMLU_SUBJECT_CATEGORY, type MmluCategory } from './tasks/mmlu-groups.js';
import { runHumanEval } from './tasks/humaneval.js';
import { mmluSubjects, runMmlu } from './tasks/mmlu.js';
import { runPerplexity } from './tasks/perplexity.js';
import { runSuperNi } from './tasks/superni.js';

export const KNOWN_TASKS = [
  'gsm8k',
  'gsm8k_cot',
  'mmlu',
  'mmlu_<subject>',
  'super_ni',
  'alpaca_eval_proxy',
  'humaneval',
  'perplexity',
] as const;
type BaseTask =
  'gsm8k' | 'gsm8k_cot' | 'mmlu' | 'super_ni' | 'alpaca_eval_proxy' | 'humaneval' | 'perplexity';

const ALIASES: Record<string, BaseTask> = {
  alpaca_eval: 'alpaca_eval_proxy',
  alpacaeval: 'alpaca_eval_proxy',
  superni: 'super_ni',
};
const DEFAULT_SHOTS: Record<BaseTask, number> = {
  gsm8k: 5,
  gsm8k_cot: 8,
  mmlu: 0,
  super_ni: 0,
  alpaca_eval_proxy: 0,
  humaneval: 0,
  perplexity: 0,
};
const MAX_SHOTS: Record<BaseTask, number> = {
  gsm8k: 8,
  gsm8k_cot: GSM8K_MAX_SHOTS,
  mmlu: 5,
  super_ni: 0,
  alpaca_eval_proxy: 0,
  humaneval: 0,
  perplexity: 0,
};

export interface EvalOptions {
  tasks: string[];
  /** One count for every task that takes shots, or per task (a list runs each count). */
  shots?: number | Record<string, number | number[]>;
  limit?: number;
  seed?: number;
  batchSize?: number;
  chatFormat?: ChatFormat;
  /** Folder with gsm8k/, mmlu/, humaneval/ (default: the repository's data/). */
  dataDir?: string;
  /** Data file (or MMLU folder) per task name. */
  files?: Record<string, string>;
  /** Generation budget per task (or one for all). */
  maxNewTokens?: number | Record<string, number>;
  judge?: Judge;
  /** Run model-written HumanEval code (see execute.ts: not a security sandbox). */
  allowCodeExecution?: boolean;
  humaneval?: {
    samples?: number;
    temperature?: number;
    ks?: number[];
    exec?: ExecOptions & { concurrency?: number };
  };
  /** Porter-stem ROUGE-L tokens in super_ni and alpaca_eval_proxy (the Super-NI script does; default off). */
  rougeStemmer?: boolean;
  /** Document separator for the perplexity task (default: the whole file is one document). */
  perplexitySeparator?: string;
  /** Extra facts about the model recorded in results.config (path, adapter, dtype...). */
  modelInfo?: Record<string, unknown>;
}

export interface ProgressEvent {
  task: string;
  phase: string;
  done: number;
  total: number;
}

export interface EvalRun {
  results: ResultsJson;
  tasks: TaskResult[];
}

/** The repository's data/ folder (works from src/ under tsx and from dist/src/ after a build). */
export function defaultDataDir(): string {
  for (const rel of ['../../data', '../../../data']) {
    const p = fileURLToPath(new URL(rel, import.meta.url));
    if (existsSync(join(p, 'gsm8k'))) return p;
  }
  return resolve('data');
}

interface TaskSpec {
  base: BaseTask;
  /** For mmlu_<subject>. */
  subject?: string;
  /** For mmlu_stem, mmlu_humanities, mmlu_social_sciences, mmlu_other (lm-eval's groups). */
  category?: MmluCategory;
  file?: string;
  /** The name the user wrote (without the file part), used for result keys. */
  name: string;
}

function knownList(): string {
  return `${KNOWN_TASKS.join(', ')} (aliases: ${Object.keys(ALIASES).join(', ')})`;
}

export function parseTaskSpec(spec: string, dataDir: string, files: Record<string, string>): TaskSpec {
  const colon = spec.indexOf(':');
  const rawName = (colon >= 0 ? spec.slice(0, colon) : spec).trim();
  const file = colon >= 0 ? spec.slice(colon + 1).trim() : undefined;
  if (colon >= 0 && !file) throw new InputError('tasks', `"${spec}": empty file after ":"`);
  const name = ALIASES[rawName] ?? rawName;
  const base = (
    ['gsm8k', 'gsm8k_cot', 'mmlu', 'super_ni', 'alpaca_eval_proxy', 'humaneval', 'perplexity'] as const
  ).find((t) => t === name);
  if (base) return { base, name: base, file: file ?? files[base] ?? files[rawName] };
  if (name.startsWith('mmlu_')) {
    const subject = name.slice(5);
    const dir = file ?? files.mmlu ?? join(dataDir, 'mmlu');
    const category = MMLU_CATEGORIES.find((c) => c === subject);
    if (category) return { base: 'mmlu', category, name, file: dir };
    const subjects = mmluSubjects(dir);
    if (!subjects.includes(subject)) {
      throw new InputError(
        'tasks',
        `unknown MMLU subject "${subject}" in "${spec}"; subjects in ${dir}: ${subjects.join(', ')}`,
      );
    }
    return { base: 'mmlu', subject, name, file: dir };
  }
  throw new InputError('tasks', `unknown task "${rawName}"; known tasks: ${knownList()}`);
}

function shotsFor(spec: TaskSpec, shots: EvalOptions['shots']): number[] {
  let v: number | number[] | undefined;
  if (typeof shots === 'number') v = MAX_SHOTS[spec.base] > 0 ? shots : 0;
  else if (shots) v = shots[spec.name] ?? shots[spec.base];
  const list = v === undefined ? [DEFAULT_SHOTS[spec.base]] : Array.isArray(v) ? v : [v];
  if (list.length === 0) throw new InputError('shots', `empty list of shot counts for ${spec.name}`);
  for (const n of list) {
    if (!Number.isInteger(n) || n < 0 || n > MAX_SHOTS[spec.base]) {
      throw new InputError('shots', `${spec.name} takes 0 to ${MAX_SHOTS[spec.base]} shots, got ${n}`);
    }
  }
  return [...new Set(list)];
}

function tokensFor(spec: TaskSpec, m: EvalOptions['maxNewTokens']): number | undefined {
  if (m === undefined) return undefined;
  const v = typeof m === 'number' ? m : (m[spec.name] ?? m[spec.base]);
  if (v !== undefined && (!Number.isInteger(v) || v < 1))
    throw new InputError('max new tokens', `must be a positive integer, got ${v}`);
  return v;
}

function requireFile(path: string | undefined, spec: TaskSpec, hint: string): string {
  if (path === undefined)
    throw new InputError(
      'tasks',
      `task ${spec.name} needs a data file: write "${spec.name}:<path>" (${hint})`,
    );
  if (!existsSync(path)) throw new InputError(path, `data file for task ${spec.name} not found (${hint})`);
  return path;
}

export async function runEval(
  lm: EvalLM,
  opts: EvalOptions,
  onProgress?: (e: ProgressEvent) => void,
): Promise<EvalRun> {
  const startTime = Date.now() / 1000;
  if (!opts.tasks || opts.tasks.length === 0)
    throw new InputError('tasks', `no tasks given; known tasks: ${knownList()}`);
  const batchSize = opts.batchSize ?? 8;
  if (!Number.isInteger(batchSize) || batchSize < 1)
    throw new InputError('batch size', `must be a positive integer, got ${batchSize}`);
  if (opts.limit !== undefined && (!Number.isInteger(opts.limit) || opts.limit < 1)) {
    throw new InputError('limit', `must be a positive integer, got ${opts.limit}`);
  }
  const seed = opts.seed ?? DEFAULT_SEED;
  const chatFormat = opts.chatFormat ?? 'plain';
  const dataDir = opts.dataDir ?? defaultDataDir();
  const files = opts.files ?? {};

  // Resolve every spec before running anything, so a typo fails fast instead of after hours.
  const plan: { spec: TaskSpec; shots: number; key: string }[] = [];
  for (const s of opts.tasks) {
    const spec = parseTaskSpec(s, dataDir, files);
    const shotList = shotsFor(spec, opts.shots);
    for (const n of shotList)
      plan.push({ spec, shots: n, key: shotList.length > 1 ? `${spec.name}_${n}shot` : spec.name });
  }
  // every result key, MMLU subjects included, must be unique (e.g. "mmlu" already holds "mmlu_anatomy")
  const keys = plan.flatMap((p) => {
    if (p.spec.base !== 'mmlu' || p.spec.subject) return [p.key];
    const subjects = mmluSubjects(p.spec.file ?? join(dataDir, 'mmlu'));
    const cat = p.spec.category;
    if (cat) {
      const group = p.key.replace(`_${cat}`, '');
      const mine = subjects.filter((s) => MMLU_SUBJECT_CATEGORY[s] === cat);
      return [`${group}_${cat}`, ...mine.map((s) => `${group}_${s}`)];
    }
    return [p.key, ...MMLU_CATEGORIES.map((c) => `${p.key}_${c}`), ...subjects.map((s) => `${p.key}_${s}`)];
  });
  const dup = keys.find((k, i) => keys.indexOf(k) !== i);
  if (dup) throw new InputError('tasks', `task ${dup} is listed twice`);
  for (const { spec } of plan) {
    if (spec.base === 'super_ni')
      requireFile(spec.file, spec, 'a JSONL of {input, references} or {messages} rows');
    if (spec.base === 'perplexity') requireFile(spec.file, spec, 'a text file');
    if (spec.base === 'alpaca_eval_proxy') {
      spec.file = requireFile(
        spec.file ?? join(dataDir, 'alpaca_eval', 'alpaca_eval.jsonl'),
        spec,
        'AlpacaEval is research-only and not bundled; pass alpaca_eval:<path to alpaca_eval.jsonl>',
      );
    }
  }

  const out: TaskResult[] = [];
  for (const { spec, shots, key } of plan) {
    const ctx: TaskContext = {
      lm,
      batchSize,
      limit: opts.limit,
      seed,
      chatFormat,
      progress: (phase, done, total) => onProgress?.({ task: key, phase, done, total }),
    };
    const maxTokens = tokensFor(spec, opts.maxNewTokens);
    switch (spec.base) {
      case 'gsm8k':
        out.push(
          await runGsm8kLmEval(ctx, {
            path: spec.file ?? join(dataDir, 'gsm8k', 'test.jsonl'),
            shots,
            maxTokens,
            task: key,
          }),
        );
        break;
      case 'gsm8k_cot':
        out.push(
          await runGsm8k(ctx, {
            path: spec.file ?? join(dataDir, 'gsm8k', 'test.jsonl'),
            shots,
            maxTokens,
            task: key,
          }),
        );
        break;
      case 'mmlu':
        out.push(
          ...(
            await runMmlu(ctx, {
              dir: spec.file ?? join(dataDir, 'mmlu'),
              shots,
              subjects: spec.subject
                ? [spec.subject]
                : spec.category
                  ? mmluSubjects(spec.file ?? join(dataDir, 'mmlu')).filter(
                      (s) => MMLU_SUBJECT_CATEGORY[s] === spec.category,
                    )
                  : undefined,
              task: spec.subject
                ? key.replace(`_${spec.subject}`, '')
                : spec.category
                  ? key.replace(`_${spec.category}`, '')
                  : key,
            })
          ).filter((r) =>
            spec.subject
              ? r.subtasks === undefined
              : spec.category
                ? r.task !== key.replace(`_${spec.category}`, '')
                : true,
          ),
        );
        break;
      case 'super_ni':
        out.push(
          await runSuperNi(ctx, { path: spec.file!, maxTokens, task: key, rougeStemmer: opts.rougeStemmer }),
        );
        break;
      case 'alpaca_eval_proxy':
        out.push(
          await runAlpacaEval(ctx, {
            path: spec.file!,
            judge: opts.judge,
            maxTokens,
            task: key,
            rougeStemmer: opts.rougeStemmer,
          }),
        );
        break;
      case 'humaneval':
        out.push(
          await runHumanEval(ctx, {
            path: spec.file ?? join(dataDir, 'humaneval', 'HumanEval.jsonl.gz'),
            samples: opts.humaneval?.samples,
            temperature: opts.humaneval?.temperature,
            ks: opts.humaneval?.ks,
            maxTokens,
            allowCodeExecution: opts.allowCodeExecution === true,
            exec: opts.humaneval?.exec,
            task: key,
          }),
        );
        break;
      case 'perplexity':
        out.push(
          await runPerplexity(ctx, { path: spec.file!, separator: opts.perplexitySeparator, task: key }),
        );
        break;
    }
  }

  const runConfig: Record<string, unknown> = {
    model: lm.name,
    ...(opts.modelInfo ? { model_info: opts.modelInfo } : {}),
    tasks: opts.tasks,
    shots: opts.shots ?? 'task defaults',
    limit: opts.limit ?? null,
    seed,
    batch_size: batchSize,
    chat_format: chatFormatName(chatFormat),
    data_dir: dataDir,
    allow_code_execution: opts.allowCodeExecution === true,
    judge: opts.judge?.name ?? null,
    rouge_stemmer: opts.rougeStemmer === true,
  };
  const endTime = Date.now() / 1000;
  return {
    results: buildResults(out, runConfig, new Date(startTime * 1000), { start: startTime, end: endTime }),
    tasks: out,
  };
}
