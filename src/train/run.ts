/**
 * The whole of `nuggets train` below the command line: load the student, read and tokenise the
 * data (answer-only targets, length policy), split off or read the held-out set, put the LoRA
 * adapters on (init folder with the subtract trick, PEFT default, or PiSSA), run the training loop
 * (resuming when asked), then write the adapters (export.ts), training.json (what was done, for
 * model cards and audits) and a copy of the init folder's manifest.
 */
import { contextLength } from '../model/config.js';
import { copyFileSync, existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { InputError } from '../errors.js';
import type { OptionsOf } from '../config/cli.js';
import { toFlags } from '../config/cli.js';
import { loadModelSource, type ModelSource } from '../io/load.js';
import { writeJsonAtomic } from '../io/atomic.js';
import { readExamples, type Example } from '../data/examples.js';
import { TULU, type ChatFormat } from '../data/chat.js';
import { templateFormat } from '../data/template.js';
import { describeReport, encodeExamples, type EncodeReport, type EncodedExample } from '../data/encode.js';
import { splitHeldOut } from '../data/split.js';
import { deriveSeed } from '../transfer/extract.js';
import { hashInput, MANIFEST_FILE, type InputHash } from '../transfer/manifest.js';
import { parseModules } from '../transfer/modules.js';
import { formatDuration } from './log.js';
import { latestCheckpoint, listCheckpoints, loadCheckpoint, type LoadedCheckpoint } from './checkpoint.js';
import type { ProgressMode, ProgressStream } from './progress.js';
import { setupLora, type LoraInitSpec } from './lora-init.js';
import { train, TRAINER_LOG, type TrainResult } from './trainer.js';
import { studentAdapterModules, writeTrainedAdapters } from './export.js';
import { writeAdapter } from '../transfer/peft.js';
import type { LlamaModel } from '../model/model.js';
import { ensureTeacherLogits, type TeacherLogits } from '../distill/cache.js';

export type TrainOptions = OptionsOf<'train'>;

export const TRAINING_RECORD = 'training.json';
export const INIT_MANIFEST_COPY = 'init_manifest.json';
export const TRAINING_RECORD_FORMAT = 'nuggets-training';

export interface RunTrainContext {
  /** The command line as typed (recorded in training.json and the model card). */
  argv?: string[];
  progress?: ProgressMode;
  progressStream?: ProgressStream;
  /** Lines for the user (data report, notes); default: nothing. */
  say?: (line: string) => void;
  /** Polled after each update (tests stop runs with it). */
  shouldStop?: (step: number) => boolean;
}

export interface RunTrainResult {
  result: TrainResult;
  /** The trained model (student with the subtract trick applied when used, adapters attached). */
  model: LlamaModel;
  /** The adapter that loads on the untouched student (the output folder itself). */
  adapterDir: string;
  /** The trained factors folder when the subtract trick was used. */
  trainedAdapterDir: string | null;
  subtract: boolean;
  trainReport: EncodeReport;
  heldOutReport: EncodeReport | null;
  /** The one-line summary printed at the end. */
  summary: string;
}

export interface TrainingRecord {
  format: typeof TRAINING_RECORD_FORMAT;
  version: 1;
  created: string;
  /** As typed, and as flags that reproduce the options (defaults omitted). */
  commandLine: { argv: string[] | null; flags: string[] };
  options: TrainOptions;
  student: {
    path: string;
    format: 'hf' | 'llama2c';
    arch: string;
    layers: number;
    hidden: number;
    vocab: number;
  };
  init: { kind: LoraInitSpec['kind']; folder: string | null; subtract: boolean; untiedLmHead: boolean };
  lora: { r: number; alpha: number; dropout: number; modules: string[] };
  data: {
    train: InputHash;
    eval: InputHash | null;
    maxLength: number;
    trainReport: EncodeReport;
    heldOutReport: EncodeReport | null;
  };
  results: {
    steps: number;
    totalSteps: number;
    epochs: number;
    trainLoss: number | null;
    initialEvalLoss: number | null;
    evalLosses: number[];
    tokensPerSecond: number;
  };
  outputs: { adapter: string; trainedAdapter: string | null; plainRank: number | null };
}

function formatFor(opts: TrainOptions, src: ModelSource): ChatFormat {
  return opts.chatFormat === 'template'
    ? templateFormat(src.tokenizer, opts.tokenizer ?? opts.student)
    : TULU;
}

function encode(
  examples: Example[],
  src: ModelSource,
  fmt: ChatFormat,
  opts: TrainOptions,
  maxLength: number,
  file: string,
) {
  return encodeExamples(examples, src.tokenizer, { format: fmt, maxLength, overflow: opts.overflow }, file);
}

/** Which checkpoint to resume from, or null for a fresh run (refusing to clobber an earlier run). */
function resumePoint(opts: TrainOptions): LoadedCheckpoint | null {
  if (opts.resumeFrom) return loadCheckpoint(opts.resumeFrom);
  if (opts.resume) {
    const dir = latestCheckpoint(opts.out);
    if (!dir) throw new InputError(opts.out, 'has no checkpoint-<step> folder to resume from');
    return loadCheckpoint(dir);
  }
  const earlier = listCheckpoints(opts.out);
  if (earlier.length > 0) {
    throw new InputError(
      opts.out,
      `holds checkpoints of an earlier run (${earlier
        .map((c) => `checkpoint-${c.step}`)
        .slice(-3)
        .join(', ')}): ` + 'give --resume to continue it, or choose another --out',
    );
  }
  return null;
}

/** Runs `nuggets train` with resolved options. */
export function runTrain(opts: TrainOptions, ctx: RunTrainContext = {}): RunTrainResult {
  const say = ctx.say ?? (() => {});
  const resume = resumePoint(opts);
  const src = loadModelSource(opts.student, { tokenizer: opts.tokenizer });
  let kdCache: TeacherLogits | null = null;
  try {
    const c = src.config;
    const fmt = formatFor(opts, src);
    let maxLength = opts.maxLength;
    if (maxLength > contextLength(c)) {
      say(
        `note: --max-length ${maxLength} exceeds the student's context of ${contextLength(c)} tokens; using ${contextLength(c)}`,
      );
      maxLength = contextLength(c);
    }

    // Data: the training file, and the held-out set (its own file, or a seeded split of the training rows).
    const all = readExamples(opts.data);
    let trainRows = all;
    let heldRows: Example[] = [];
    if (opts.evalData) {
      heldRows = readExamples(opts.evalData);
      if (opts.valSize > 0) throw new InputError('--val-size', 'give --eval-data or --val-size, not both');
    } else if (opts.valSize > 0) {
      const split = splitHeldOut(all, opts.valSize, deriveSeed(opts.seed, 'heldout'));
      trainRows = split.train;
      heldRows = split.heldOut;
    }
    const tr = encode(trainRows, src, fmt, opts, maxLength, opts.data);
    say(`training data: ${describeReport(tr.report, maxLength)}`);
    let held: { examples: EncodedExample[]; report: EncodeReport } | null = null;
    if (heldRows.length > 0) {
      held = encode(heldRows, src, fmt, opts, maxLength, opts.evalData ?? opts.data);
      say(`held-out data: ${describeReport(held.report, maxLength)}`);
    }

    // Logit distillation: the teacher's logits at the answer tokens, from the cache (built when stale).
    if (opts.kdTeacher) {
      const dir = opts.kdCache ?? join(opts.out, 'kd-cache');
      const k = ensureTeacherLogits({
        dir,
        teacher: opts.kdTeacher,
        examples: tr.examples,
        studentTokenizer: src.tokenizer,
        studentName: opts.student,
        dtype: opts.kdCacheDtype,
        topK: opts.kdTopK,
        batchSize: opts.microBatchSize,
        padId: c.padTokenId ?? 0,
        say,
      });
      kdCache = k.cache;
      if (!k.built) say(`kd cache: reusing ${dir} (${k.cache.rowsStored} answer tokens)`);
    }

    // The student with its adapters.
    const kinds = parseModules(opts.modules);
    const init: LoraInitSpec = opts.init
      ? { kind: 'folder', dir: opts.init }
      : opts.loraInit === 'pissa'
        ? { kind: 'pissa' }
        : { kind: 'default' };
    const setup = setupLora(c, src.weights, {
      init,
      kinds,
      kindsAreDefault: opts.modules.length === 1 && opts.modules[0] === 'all',
      rank: opts.rank,
      alpha: opts.alpha,
      dropout: opts.dropout,
      seed: opts.seed,
      studentName: opts.student,
    });
    if (setup.untied)
      say('note: the student ties lm_head to the embedding; lm_head was untied for the subtract trick');
    setup.model.setGradientCheckpointing(opts.gradientCheckpointing);
    mkdirSync(opts.out, { recursive: true });
    const adapterOpts = {
      config: c,
      baseModel: opts.student,
      loraDropout: opts.dropout,
      dtype: opts.dtype.toUpperCase() as 'F32' | 'F16' | 'BF16',
    };

    const result = train({
      model: setup.model,
      train: tr.examples,
      heldOut: held?.examples ?? [],
      hyper: opts,
      outDir: opts.out,
      options: opts as unknown as Record<string, unknown>,
      resume,
      padId: c.padTokenId ?? 0,
      progress: opts.progress ? (ctx.progress ?? 'auto') : 'off',
      progressStream: ctx.progressStream,
      shouldStop: ctx.shouldStop,
      kd: kdCache
        ? {
            lambda: opts.kdLambda,
            temperature: opts.kdTemperature,
            teacherRows: (rows) => kdCache!.rowsFor(rows),
          }
        : undefined,
      // every checkpoint folder is itself an adapter folder that loads on the untouched student
      checkpointExtra: (dir, params) =>
        writeAdapter(dir, studentAdapterModules(params, setup.refs, setup.initFactors, c), c, {
          ...adapterOpts,
          inferenceMode: true,
        }),
    });

    const lora0 = result.params.loras.values().next().value!;
    const tps = result.seconds > 0 ? result.tokens / result.seconds : 0;
    if (result.stopped) {
      const summary = `stopped after update ${result.steps}/${result.totalSteps}; checkpoint ${result.lastCheckpoint}; continue with --resume`;
      return {
        result,
        model: setup.model,
        adapterDir: opts.out,
        trainedAdapterDir: null,
        subtract: setup.subtract,
        trainReport: tr.report,
        heldOutReport: held?.report ?? null,
        summary,
      };
    }
    const written = writeTrainedAdapters(opts.out, result.params, setup.refs, setup.initFactors, adapterOpts);
    if (opts.init && existsSync(join(opts.init, MANIFEST_FILE)))
      copyFileSync(join(opts.init, MANIFEST_FILE), join(opts.out, INIT_MANIFEST_COPY));
    const record: TrainingRecord = {
      format: TRAINING_RECORD_FORMAT,
      version: 1,
      created: new Date().toISOString(),
      commandLine: {
        argv: ctx.argv ?? null,
        flags: toFlags('train', opts as unknown as Record<string, unknown>),
      },
      options: opts,
      student: {
        path: opts.student,
        format: src.format,
        arch: c.arch,
        layers: c.numLayers,
        hidden: c.hiddenSize,
        vocab: c.vocabSize,
      },
      init: {
        kind: setup.init,
        folder: opts.init ?? null,
        subtract: setup.subtract,
        untiedLmHead: setup.untied,
      },
      lora: {
        r: lora0.r,
        alpha: lora0.alpha,
        dropout: opts.dropout,
        modules: [...new Set(setup.refs.map((x) => x.kind))],
      },
      data: {
        train: hashInput(opts.data),
        eval: opts.evalData ? hashInput(opts.evalData) : null,
        maxLength,
        trainReport: tr.report,
        heldOutReport: held?.report ?? null,
      },
      results: {
        steps: result.steps,
        totalSteps: result.totalSteps,
        epochs: result.epochsDone,
        trainLoss: result.trainLoss,
        initialEvalLoss: result.initialEvalLoss,
        evalLosses: result.evalLosses,
        tokensPerSecond: tps,
      },
      outputs: {
        adapter: written.student,
        trainedAdapter: written.trained,
        plainRank: setup.initFactors ? 2 * lora0.r : null,
      },
    };
    writeJsonAtomic(join(opts.out, TRAINING_RECORD), record);

    const parts = [
      `trained ${result.steps} updates (${result.epochsDone} epochs) in ${formatDuration(result.seconds)}, ${tps.toFixed(0)} tokens/s`,
    ];
    if (result.trainLoss !== null) parts.push(`train loss ${result.trainLoss.toFixed(4)}`);
    if (result.evalLosses.length > 0) {
      const first = result.initialEvalLoss !== null ? `${result.initialEvalLoss.toFixed(4)} -> ` : '';
      parts.push(`held-out loss ${first}${result.evalLosses.map((v) => v.toFixed(4)).join(' -> ')}`);
    }
    parts.push(
      setup.initFactors
        ? `adapter (plain rank ${2 * lora0.r}, loads on the untouched student): ${written.student}; trained factors: ${written.trained}`
        : `adapter: ${written.student}`,
    );
    parts.push(`log: ${join(opts.out, TRAINER_LOG)}`);
    return {
      result,
      model: setup.model,
      adapterDir: written.student,
      trainedAdapterDir: written.trained,
      subtract: setup.subtract,
      trainReport: tr.report,
      heldOutReport: held?.report ?? null,
      summary: parts.join('; '),
    };
  } finally {
    kdCache?.close();
    src.weights.close();
  }
}
