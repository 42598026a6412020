/**
 * The typed library API: one function per step of docs/method.md (and the tools around them). Each
 * takes its options as an object shaped by the command's schema (src/config/schemas.ts: z.input, so
 * options with a default may be left out), validates it with that schema (defaults applied, bad
 * values refused with an InputError naming the option), and runs the same code as the command.
 * The CLI (src/cli/) and the study runner (src/study/job.ts) call these functions; nothing re-enters
 * the command line.
 *
 * The functions below are thin on purpose: the work lives in the concept folders (transfer/, train/,
 * eval/, serve/, study/, report/), and the option checks in the schemas.
 */
import { join, resolve } from 'node:path';
import { parseOptions } from '../config/parse.js';
import type {
  EvalInput,
  ExtractInput,
  GenerateInput,
  MergeInput,
  PretrainInput,
  SenseInput,
  SenseMergeInput,
  ServeInput,
  TrainInput,
  DistillDataInput,
} from '../config/schemas.js';
import { InputError } from '../errors.js';
import { evaluateToFiles, type EvalIO } from '../eval/evaluate.js';
import { loadModelLM, type LoadModelLMOptions } from '../eval/model-lm.js';
import { runGenerate, type GenerateTextResult } from '../eval/generate-text.js';
import type { ResultsJson } from '../eval/results.js';
import type { Tokenizer } from '../model/tokenizer.js';
import type { LlamaModel } from '../model/model.js';
import { loadReportData } from '../report/data.js';
import { writeReport } from '../report/html.js';
import { startServe, type ServeHandle } from '../serve/start.js';
import { loadExperiment } from '../study/config.js';
import { runExperiment as runStudy, type RunSummary } from '../study/runner.js';
import type { ExtractResult } from '../transfer/extract.js';
import { extractToFolder } from '../transfer/extract-folder.js';
import { senseCommand, type SenseIo } from '../transfer/sense/command.js';
import type { SensSummary } from '../transfer/sense/summary.js';
import { mergeSensitivity } from '../transfer/shard.js';
import { runMerge, type MergeContext } from '../train/merge.js';
import { pretrain as runPretrain } from '../train/pretrain.js';
import type { PretrainIo, PretrainResult } from '../train/pretrain/options.js';
import type { ProgressMode } from '../train/progress.js';
import { runTrain, type RunTrainContext, type RunTrainResult } from '../train/run.js';
import { runDistillData, type DistillDataResult } from '../distill/sequence.js';
import { toFlags } from '../config/cli.js';

/** `sense` takes the shard from the scheduler's environment as well (docs/sharding.md). */
export interface SenseShardOptions {
  /** Take the shard index from JOB_COMPLETION_INDEX or SLURM_ARRAY_TASK_ID; `out` must hold {i}. */
  shardFromEnv?: boolean;
  /** Number of shards with shardFromEnv. */
  shardCount?: number;
}

/** Step 1: teacher sensitivity |θ·∂L/∂θ| over the seed examples -> a safetensors file and a JSON summary. */
export async function sense(
  options: SenseInput & SenseShardOptions,
  io: SenseIo = {},
): Promise<{ out: string; summary: SensSummary }> {
  const { shardFromEnv, shardCount, ...rest } = options;
  return senseCommand({ ...parseOptions('sense', rest), shardFromEnv, shardCount }, io);
}

/** Sums shard sensitivity files (written by `sense` with `shard: "i/n"`) into one file. */
export function senseMerge(
  options: SenseMergeInput,
  log: (line: string) => void = (line) => process.stderr.write(line + '\n'),
): SensSummary {
  const o = parseOptions('sense-merge', options);
  return mergeSensitivity(o.inputs, o.out, o.dtype, log);
}

export interface ExtractExtraOptions {
  /** Overwrite an initialisation already in the output folder. */
  force?: boolean;
  /** Show a progress bar (default true). */
  progress?: boolean;
}

/** Steps 2-4: teacher + student + sensitivity -> an initialisation folder (PEFT adapter + manifest.json). */
export function extract(
  options: ExtractInput & ExtractExtraOptions,
  io: { log?: (line: string) => void; progressMode?: ProgressMode } = {},
): ExtractResult {
  const { force, progress, ...rest } = options;
  return extractToFolder({ ...parseOptions('extract', rest), force, progress }, io);
}

/** Steps 5-6: LoRA fine-tuning of the student, from an `extract` folder or a plain/PiSSA init. */
export function train(options: TrainInput, context: RunTrainContext = {}): RunTrainResult {
  return runTrain(parseOptions('train', options), context);
}

/**
 * Sequence-level distillation data: the teacher answers every training prompt (greedy or sampled) and
 * the rows are written with its answers, for a plain `train` (the kd-sequence method).
 */
export function distillData(
  options: DistillDataInput,
  say: (line: string) => void = () => {},
): DistillDataResult {
  return runDistillData(parseOptions('distill-data', options), say);
}

export interface MergeResult {
  out: string;
  files: string[];
  untied: boolean;
  modules: number;
}

/** Step 7: the untouched student + a trained adapter -> a Hugging Face model folder with a model card. */
export function merge(options: MergeInput, context: MergeContext = {}): MergeResult {
  const o = parseOptions('merge', options);
  return runMerge(o, { flags: toFlags('merge', o as unknown as Record<string, unknown>), ...context });
}

/**
 * Benchmarks (GSM8K, MMLU, Super-NI, AlpacaEval proxy, HumanEval, perplexity) on a model (+ adapter):
 * writes the results JSON (`out`) and returns it. The summary table goes to `io.out` (default:
 * nowhere), progress to `io.err` (default: stderr; `progress: false` turns the bars off).
 */
export async function evaluate(options: EvalInput, io: Partial<EvalIO> = {}): Promise<ResultsJson> {
  return evaluateToFiles(parseOptions('eval', options), {
    out: io.out ?? { write: () => true },
    err: io.err ?? process.stderr,
  });
}

/** An OpenAI-compatible HTTP server for a model (+ adapter); resolves once it serves. `close()` stops it. */
export async function serve(options: ServeInput, log?: (line: string) => void): Promise<ServeHandle> {
  return startServe(parseOptions('serve', options), log);
}

export interface LoadedModel {
  model: LlamaModel;
  tokenizer: Tokenizer;
  info: {
    model: string;
    format: 'hf' | 'llama2c';
    adapter: string | null;
    adapterModules: number;
    parameters: number;
  };
}

/** Loads a model (HF folder or llama2.c checkpoint) in fp32, with a PEFT adapter attached unmerged. */
export function loadModel(
  path: string,
  options: Pick<LoadModelLMOptions, 'adapter' | 'tokenizer'> = {},
): LoadedModel {
  const { lm, info } = loadModelLM(path, { adapter: options.adapter, tokenizer: options.tokenizer });
  return { model: lm.model, tokenizer: lm.tokenizer, info };
}

export interface GenerateExtraOptions {
  /** Stop before any of these strings. */
  stop?: string[];
  /** Wrap the prompt as a user turn: the tokenizer's chat template, or tulu when it has none. */
  chat?: boolean;
  /** Called with text as it becomes final (streaming). */
  onText?: (text: string) => void;
}

/** Text from a model (+ adapter): greedy or sampled from a seed, with a KV cache. */
export function generate(options: GenerateInput & GenerateExtraOptions): GenerateTextResult {
  const { stop, chat, onText, ...rest } = options;
  const o = parseOptions('generate', rest);
  return runGenerate({ ...o, stop: stop ?? [], chat: chat ?? false }, (t) => onText?.(t));
}

/** Full-parameter language-model training from scratch (or continued): writes an HF model folder. */
export function pretrain(options: PretrainInput, io: PretrainIo = {}): PretrainResult {
  return runPretrain(parseOptions('pretrain', options), io);
}

export interface RunExperimentOptions {
  /** Experiment file (YAML), e.g. experiments/demo.yaml. */
  experiment: string;
  /** Run folder (default: `out:` in the experiment file). */
  out?: string;
  /** Cells run at the same time, each in its own process (default 1). */
  jobs?: number;
  /** Aborting stops the running cells; a later call finishes the missing ones. */
  signal?: AbortSignal;
  /** Progress lines (default: stderr). */
  log?: (line: string) => void;
}

/** A study: methods x seeds x tasks, each cell sense -> extract -> train -> eval, and its results table. */
export async function runExperiment(options: RunExperimentOptions): Promise<RunSummary> {
  const exp = loadExperiment(options.experiment);
  const out = options.out ? resolve(options.out) : exp.out;
  if (!out)
    throw new InputError(exp.file, 'no output folder: give "out:" in the file, or the out option (-o/--out)');
  const jobs = options.jobs ?? 1;
  if (!Number.isInteger(jobs) || jobs < 1)
    throw new InputError('jobs', `must be a positive integer, got ${String(jobs)}`);
  return runStudy(exp, { out, jobs, signal: options.signal, log: options.log });
}

export interface ReportOptions {
  /** Run folder written by runExperiment / `nuggets run`. */
  run: string;
  /** HTML file to write (default: <run>/report.html). */
  out?: string;
}

/** One self-contained HTML report (plots and tables) of a run folder. */
export function report(options: ReportOptions): { path: string; plots: number } {
  const dir = resolve(options.run);
  const path = resolve(options.out ?? join(dir, 'report.html'));
  const { plots } = writeReport(path, loadReportData(dir));
  return { path, plots };
}
