/**
 * One job of a run, executed inside its own child process (`nuggets __job <run-dir> <job-id>`, spawned
 * by runner.ts): the job's steps run in this process, one after the other, as calls of the library
 * functions the commands call (src/api/steps.ts) with the planned options; commands.sh holds the same
 * options as `nuggets` command lines, to redo a cell by hand. Then a cell writes result.json atomically.
 *
 * Restartable: each finished step leaves steps/<name>.json; a rerun skips finished steps, and a
 * training step that was cut off continues from its newest checkpoint (`--resume`, which the trainer
 * makes bitwise identical to an uninterrupted run).
 */
import { existsSync, mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { distillData, evaluate, extract, sense, train } from '../api/steps.js';
import type { DistillDataInput, EvalInput, ExtractInput, SenseInput, TrainInput } from '../config/schemas.js';
import { InputError } from '../errors.js';
import { writeFileAtomic, writeJsonAtomic } from '../io/atomic.js';
import { exitIfOrphaned } from './orphan-guard.js';
import { shellQuote } from '../config/shell.js';
import { SenseAborted } from '../transfer/sense/abort.js';
import { readTrainerLog } from '../train/log.js';
import {
  ADAPTER_PLACEHOLDER,
  PLAN_FILE,
  RESULT_FILE,
  ANSWER_LOSS_FILE,
  type CellJob,
  type Job,
  type ReferenceJob,
  type Plan,
  type StepPlan,
} from './plan.js';
import { findTrainedAdapter } from './outputs.js';
import { answerLoss, type AnswerLossOptions } from './reference.js';

/** Runs one step (its library function with `step.options`) in this process. */
export type StepRunner = (step: StepPlan) => Promise<void>;

/** The library function of each step, called with the step's options; output as the command's. */
export async function runStep(step: StepPlan): Promise<void> {
  const say = (line: string) => process.stderr.write(line + '\n');
  switch (step.name) {
    case 'sense': {
      // sense stops at its next step on SIGINT/SIGTERM and removes its temporary files (the other
      // steps end with the process, the default for those signals)
      const ac = new AbortController();
      const stop = () => ac.abort();
      process.on('SIGINT', stop);
      process.on('SIGTERM', stop);
      try {
        await sense(step.options as SenseInput, { signal: ac.signal });
      } finally {
        process.off('SIGINT', stop);
        process.off('SIGTERM', stop);
      }
      return;
    }
    case 'distill-data': {
      const r = distillData(step.options as DistillDataInput, say);
      process.stdout.write(r.summary + '\n');
      return;
    }
    case 'extract':
      extract(step.options as ExtractInput);
      return;
    case 'train': {
      // training.json and the model card record the command line of the step as commands.sh has it
      const r = train(step.options as TrainInput, { argv: step.argv, say });
      process.stdout.write(r.summary + '\n');
      return;
    }
    case 'eval':
      await evaluate(step.options as EvalInput, { out: process.stdout, err: process.stderr });
      return;
    case 'answer-loss': {
      const r = answerLoss(step.options as unknown as AnswerLossOptions);
      process.stdout.write(
        `answer loss ${r.answer_loss.toFixed(4)} over ${r.answerTokens} answer tokens (${r.examples} examples)\n`,
      );
      return;
    }
  }
}

/** The exit status of a failed step, with its message logged: 2 for bad input, 130 when stopped, else 1. */
function failure(e: unknown, log: (line: string) => void, where: string): number {
  if (e instanceof InputError) {
    log(`${where}: ${e.message}`);
    return 2;
  }
  if (e instanceof SenseAborted) {
    log(`${where}: interrupted; no output written`);
    return 130;
  }
  log(`${where}: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`);
  return 1;
}

export interface CellResult {
  id: string;
  /** The student size (scale studies only). */
  size?: string;
  task: string;
  method: string;
  seed: number;
  metric: string;
  higherIsBetter: boolean;
  /** The task's metric (the table's number). */
  value: number;
  /** Every number the cell produced: answer_loss (held-out, after training), exact_match, rouge_l. */
  metrics: Record<string, number>;
  /** Seconds per step in the session that ran it. */
  seconds: Record<string, number>;
  spec: Record<string, unknown>;
  finished: string;
}

/** A reference row's job result: the task's teacher or the untouched student, without training. */
export interface ReferenceResult {
  id: string;
  size?: string;
  task: string;
  role: ReferenceJob['role'];
  model: string;
  metric: string;
  higherIsBetter: boolean;
  value: number;
  metrics: Record<string, number>;
  seconds: Record<string, number>;
  spec: Record<string, unknown>;
  finished: string;
}

export function referenceResult(job: ReferenceJob, seconds: Record<string, number>): ReferenceResult {
  const metrics: Record<string, number> = { ...evalMetrics(job.evalDir) };
  const lossFile = join(job.dir, ANSWER_LOSS_FILE);
  if (existsSync(lossFile)) {
    const v = (JSON.parse(readFileSync(lossFile, 'utf8')) as { answer_loss?: unknown }).answer_loss;
    if (typeof v === 'number') metrics.answer_loss = v;
  }
  return { ...resultFields(job, metrics, seconds), role: job.role, model: job.model };
}

/** What a cell's and a reference job's result.json share, once its metrics are read. */
function resultFields(
  job: CellJob | ReferenceJob,
  metrics: Record<string, number>,
  seconds: Record<string, number>,
) {
  const value = metrics[job.metric];
  if (typeof value !== 'number' || !Number.isFinite(value)) {
    throw new Error(
      `${job.id}: the steps finished but produced no ${job.metric} (metrics found: ${JSON.stringify(metrics)})`,
    );
  }
  return {
    id: job.id,
    ...(job.size ? { size: job.size } : {}),
    task: job.task,
    metric: job.metric,
    higherIsBetter: job.higherIsBetter,
    value,
    metrics,
    seconds,
    spec: job.spec,
    finished: new Date().toISOString(),
  };
}

export function readPlan(runDir: string): Plan {
  return JSON.parse(readFileSync(join(runDir, PLAN_FILE), 'utf8')) as Plan;
}

const marker = (job: Job, step: string) => join(job.dir, 'steps', `${step}.json`);

export function stepDone(job: Job, step: string): boolean {
  return existsSync(marker(job, step));
}

function hasCheckpoint(dir: string): boolean {
  return existsSync(dir) && readdirSync(dir).some((n) => /^checkpoint-\d+$/.test(n));
}

/** The held-out answer loss after the last epoch, from trainer_log.jsonl. */
export function finalEvalLoss(trainDir: string): number | null {
  const path = join(trainDir, 'trainer_log.jsonl');
  if (!existsSync(path)) return null;
  let v: number | null = null;
  for (const r of readTrainerLog(path)) if (typeof r.eval_loss === 'number') v = r.eval_loss;
  return v;
}

/** exact_match and ROUGE-L of the eval step's results.json (task "super_ni"). */
export function evalMetrics(evalDir: string): Record<string, number> {
  const path = join(evalDir, 'results.json');
  if (!existsSync(path)) return {};
  const res = JSON.parse(readFileSync(path, 'utf8')) as { results?: Record<string, Record<string, unknown>> };
  const r = res.results?.super_ni ?? {};
  const out: Record<string, number> = {};
  if (typeof r['exact_match,none'] === 'number') out.exact_match = r['exact_match,none'];
  if (typeof r['rougeL,none'] === 'number') out.rouge_l = r['rougeL,none'];
  return out;
}

export function cellResult(job: CellJob, seconds: Record<string, number>): CellResult {
  const metrics: Record<string, number> = { ...evalMetrics(job.evalDir) };
  const loss = finalEvalLoss(job.trainDir);
  if (loss !== null) metrics.answer_loss = loss;
  return { ...resultFields(job, metrics, seconds), method: job.method, seed: job.seed };
}

/** Runs the missing steps of one job (and a cell's result.json). Returns the process exit code. */
export async function runJob(
  runDir: string,
  jobId: string,
  run: StepRunner = runStep,
  log: (line: string) => void = (l) => process.stderr.write(l + '\n'),
): Promise<number> {
  const plan = readPlan(runDir);
  const job = plan.jobs.find((j) => j.id === jobId);
  if (!job) {
    log(`nuggets: ${join(runDir, PLAN_FILE)}: no job "${jobId}"`);
    return 2;
  }
  mkdirSync(join(job.dir, 'steps'), { recursive: true });
  writeFileAtomic(join(job.dir, 'commands.sh'), [
    '#!/bin/sh\n# The nuggets commands of this job (written by nuggets run).\nset -e\n',
    ...job.steps.map((s) =>
      s.name === 'answer-loss'
        ? `# no command: the runner calls answerLoss() (src/study/reference.ts) with\n# ${shellQuote(s.argv)}\n`
        : `nuggets ${shellQuote(s.argv)}\n`,
    ),
  ]);
  const seconds: Record<string, number> = {};
  for (const step of job.steps) {
    if (stepDone(job, step.name)) {
      log(`${job.id}: ${step.name} already done`);
      continue;
    }
    let options = { ...step.options };
    let argv = [...step.argv];
    if (step.name === 'train' && job.kind === 'cell' && hasCheckpoint(job.trainDir)) {
      options = { ...options, resume: true };
      argv.push('--resume');
    }
    if (step.name === 'eval' && job.kind === 'cell') {
      const adapter = findTrainedAdapter(job.trainDir);
      if (options.adapter === ADAPTER_PLACEHOLDER) options = { ...options, adapter };
      argv = argv.map((a) => (a === ADAPTER_PLACEHOLDER ? adapter : a));
    }
    log(`${job.id}: nuggets ${shellQuote(argv)}`);
    const t0 = performance.now();
    try {
      await run({ ...step, options, argv });
    } catch (e) {
      const code = failure(e, log, `${job.id}: ${step.name}`);
      log(`${job.id}: ${step.name} failed (exit ${code})`);
      return code;
    }
    const s = (performance.now() - t0) / 1000;
    seconds[step.name] = Math.round(s * 100) / 100;
    exitIfOrphaned();
    writeJsonAtomic(marker(job, step.name), {
      planned: step.argv,
      inputs: job.spec.inputs,
      argv,
      seconds: seconds[step.name],
      finished: new Date().toISOString(),
    });
  }
  if (job.kind !== 'sense') {
    const result = job.kind === 'cell' ? cellResult(job, seconds) : referenceResult(job, seconds);
    exitIfOrphaned();
    writeJsonAtomic(join(job.dir, RESULT_FILE), result);
    log(`${job.id}: ${job.metric} = ${result.value}`);
  }
  return 0;
}
