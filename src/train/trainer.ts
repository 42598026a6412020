/**
 * The LoRA fine-tuning loop (docs/method.md step 6) over a model whose adapters are gathered into one flat
 * group (lora-params.ts): shuffled epochs, gradient accumulation to an effective batch, answer-only
 * loss, gradient clipping, AdamW, warmup then decay, held-out loss each epoch, trainer_log.jsonl, a
 * progress display, and checkpoints from which `resume` continues bit for bit.
 *
 * LOSS NORMALISATION (stated, since implementations differ): each update minimises the mean cross-entropy over
 * ALL answer tokens of the effective batch, every micro-batch's gradient being scaled by
 * 1 / (answer tokens in the whole effective batch). This is what transformers >= 4.46 does with
 * gradient accumulation (`num_items_in_batch`), and it makes the update independent of how the batch
 * is split into micro-batches. (The older HF Trainer the reference ran with averaged per-micro-batch
 * token means, weighting tokens of short micro-batches more; with micro-batch = batch both agree.)
 * The logged training loss of a step is that same effective-batch token mean.
 *
 * Steps: update k (0-based) uses lr = schedule.lrAt(k) (so with warmup the first update has lr 0, as
 * in HF); the log line after it reports current_steps k+1 and learning_rate lrAt(k+1), HF's logged
 * value. An epoch has ceil(examples / batch) updates, the last one possibly smaller.
 *
 * Determinism: the example order of epoch e comes from (seed, e) only (data/encode.ts epochRng), the
 * dropout masks from the model's RunMode RNG, whose state is checkpointed; nothing else is random.
 * A checkpoint holds the LoRA group, both AdamW moments, the update count, the schedule, the dropout
 * RNG, the log accumulators and the held-out losses so far; resuming from it replays nothing and
 * continues with exactly the arrays an uninterrupted run would have had.
 */
import { join } from 'node:path';
import { Rng } from '../engine/rng.js';
import { InputError } from '../errors.js';
import type { LlamaModel } from '../model/model.js';
import { collate, epochRng, type EncodedExample } from '../data/encode.js';
import { LrSchedule, totalTrainingSteps, type ScheduleKind } from './schedule.js';
import { TrainerLog, type TrainerLogRecord } from './log.js';
import { Progress, type ProgressMode, type ProgressStream } from './progress.js';
import {
  assertResumable,
  checkpointTensor,
  restoreRng,
  saveCheckpoint,
  type LoadedCheckpoint,
} from './checkpoint.js';
import { LoraParams } from './lora-params.js';
import { AdamW, clipGradNorm } from './optimizer.js';
import type { KdSource } from '../distill/kl.js';

export const TRAINER_LOG = 'trainer_log.jsonl';

/** The hyperparameters of the loop (a subset of the `train` command's options). */
export interface TrainHyper {
  epochs: number;
  learningRate: number;
  /** Effective batch: examples per optimizer update. */
  batchSize: number;
  /** Examples per forward/backward. */
  microBatchSize: number;
  scheduler: ScheduleKind;
  warmupRatio: number;
  weightDecay: number;
  adamBeta1: number;
  adamBeta2: number;
  adamEpsilon: number;
  /** Global gradient-norm clip (0: none). */
  maxGradNorm: number;
  /** Seeds the data order (per epoch) and the dropout masks. */
  seed: number;
  loggingSteps: number;
  /** Checkpoint every N updates (0: only at each epoch end). */
  saveSteps: number;
  keepCheckpoints: number;
}

export interface TrainerInput {
  model: LlamaModel;
  train: EncodedExample[];
  /** Held-out examples; their mean answer-token loss is measured before training and after each epoch. */
  heldOut?: EncodedExample[];
  hyper: TrainHyper;
  /** Output folder: trainer_log.jsonl and checkpoint-<step> folders go here. */
  outDir: string;
  /** The run's options as recorded in checkpoints and compared on resume. */
  options: Record<string, unknown>;
  /** Continue from this checkpoint (already loaded). */
  resume?: LoadedCheckpoint | null;
  /** Pad id for right padding (any valid id: padded places are masked). */
  padId?: number;
  progress?: ProgressMode;
  progressStream?: ProgressStream;
  /** Polled after every update: true stops the run after saving a checkpoint (Ctrl-C, tests). */
  shouldStop?: (step: number) => boolean;
  /** Writes extra files (e.g. the PEFT adapter) into each checkpoint folder before it is published. */
  checkpointExtra?: (dir: string, params: LoraParams) => void;
  /** Seconds clock for the log (tests). */
  now?: () => number;
  /** Logit distillation (kd-logits): the training loss becomes (1 − λ)·CE + λ·T²·KL per answer token. */
  kd?: KdSource;
}

export interface TrainResult {
  params: LoraParams;
  optimizer: AdamW;
  /** Updates done (all sessions). */
  steps: number;
  totalSteps: number;
  /** Epochs completed (with their held-out loss, when there is a held-out set). */
  epochsDone: number;
  /** True when shouldStop ended the run early (a checkpoint was saved). */
  stopped: boolean;
  /** Mean training loss of the last epoch's updates (this session; null if none ran). */
  trainLoss: number | null;
  /** Held-out loss before training (null without held-out data). */
  initialEvalLoss: number | null;
  /** Held-out loss after each completed epoch. */
  evalLosses: number[];
  /** Non-padding tokens processed in this session, and its training seconds. */
  tokens: number;
  seconds: number;
  lastCheckpoint: string | null;
  log: TrainerLogRecord[];
}

/**
 * Training that went astray (a non-finite loss or gradient, or a loss far beyond its start): an
 * expected failure of the chosen hyperparameters, reported in one line naming --learning-rate.
 */
export class TrainingDiverged extends InputError {
  constructor(learningRate: number, what: string) {
    super(`--learning-rate ${learningRate}`, `${what}; lower the learning rate`);
    this.name = 'TrainingDiverged';
  }
}

/**
 * The loss above which training counts as diverged: 4 x the first update's loss, and at least that
 * loss plus ln(vocab) (one uniform guess worse than the start), so noisy batches of a low-loss
 * fine-tune do not trip it while a run whose logits blow up stops long before NaN.
 */
export function divergenceLimit(startLoss: number, vocabSize: number): number {
  return Math.max(4 * startLoss, startLoss + Math.log(vocabSize));
}

function checkHyper(h: TrainHyper): void {
  const positiveInt = (v: number, name: string) => {
    if (!(Number.isInteger(v) && v >= 1)) throw new InputError(name, `must be a positive integer, got ${v}`);
  };
  positiveInt(h.epochs, '--epochs');
  positiveInt(h.batchSize, '--batch-size');
  positiveInt(h.microBatchSize, '--micro-batch-size');
  positiveInt(h.loggingSteps, '--logging-steps');
  positiveInt(h.keepCheckpoints, '--keep-checkpoints');
  if (h.microBatchSize > h.batchSize)
    throw new InputError('--micro-batch-size', `${h.microBatchSize} exceeds --batch-size ${h.batchSize}`);
  if (!(Number.isInteger(h.saveSteps) && h.saveSteps >= 0))
    throw new InputError('--save-steps', `must be an integer >= 0, got ${h.saveSteps}`);
  if (!(h.learningRate >= 0 && Number.isFinite(h.learningRate)))
    throw new InputError('--learning-rate', `must be a finite number >= 0, got ${h.learningRate}`);
}

/**
 * Mean answer-token loss of `examples` under the model in evaluation mode (no dropout), in batches of
 * `batchSize`: sum of token losses / number of answer tokens (float64 accumulation).
 */
export function heldOutLoss(
  model: LlamaModel,
  examples: EncodedExample[],
  batchSize: number,
  padId = 0,
): number {
  if (examples.length === 0) throw new Error('heldOutLoss: no examples');
  const wasTraining = model.mode.training;
  model.setTraining(false);
  let sum = 0,
    count = 0;
  try {
    for (let i = 0; i < examples.length; i += batchSize) {
      const b = collate(examples.slice(i, i + batchSize), { padId });
      const loss = model.loss({ ids: b.ids, B: b.B, T: b.T, attentionMask: b.attentionMask }, b.targets);
      sum += loss * b.nTargets;
      count += b.nTargets;
    }
  } finally {
    model.setTraining(wasTraining);
  }
  return sum / count;
}

/**
 * The gradient of one update into `params.grad` (zeroed first): the effective batch `rows` runs in
 * micro-batches of `microBatchSize`, every answer token's gradient weighted 1 / (answer tokens of the
 * whole batch), so the sum over micro-batches is the gradient of the batch's token-mean loss.
 * Returns that loss, the answer-token count and the non-padding tokens processed. With `kd` the loss
 * includes the distillation term (src/distill/kl.ts) against the cached teacher rows.
 */
export function batchGradient(
  model: LlamaModel,
  params: LoraParams,
  rows: EncodedExample[],
  microBatchSize: number,
  padId = 0,
  kd?: KdSource,
): { loss: number; nTargets: number; tokens: number } {
  let nTargets = 0;
  for (const r of rows) nTargets += r.nTargets;
  if (nTargets === 0) throw new Error('batchGradient: no answer tokens in the batch');
  params.zeroGrad();
  let lossSum = 0,
    tokens = 0;
  for (let i = 0; i < rows.length; i += microBatchSize) {
    const mbRows = rows.slice(i, i + microBatchSize);
    const mb = collate(mbRows, { padId });
    const mean = model.loss({ ids: mb.ids, B: mb.B, T: mb.T, attentionMask: mb.attentionMask }, mb.targets, {
      gradScale: 1 / nTargets,
      kd: kd && { teacher: kd.teacherRows(mbRows), lambda: kd.lambda, temperature: kd.temperature },
    });
    model.backward();
    lossSum += mean * mb.nTargets;
    for (let j = 0; j < mb.attentionMask.length; j++) tokens += mb.attentionMask[j];
  }
  return { loss: lossSum / nTargets, nTargets, tokens };
}

/** The examples of update `b` of an epoch with the given order. */
function batchRows(
  examples: EncodedExample[],
  order: number[],
  b: number,
  batchSize: number,
): EncodedExample[] {
  return order.slice(b * batchSize, Math.min((b + 1) * batchSize, order.length)).map((k) => examples[k]);
}

interface Accumulators {
  /** Sum of step losses and steps since the last log line. */
  logLossSum: number;
  logSteps: number;
  /** Sum of step losses and steps of the current epoch. */
  epochLossSum: number;
  epochSteps: number;
  /** One entry per completed epoch: its held-out loss, or null without held-out data. */
  evalLosses: Array<number | null>;
  initialEvalLoss: number | null;
}

/** Runs (or continues) the training loop. */
export function train(input: TrainerInput): TrainResult {
  const { model, train: examples, hyper: h } = input;
  checkHyper(h);
  if (examples.length === 0) throw new InputError('training data', 'no examples to train on');
  const heldOut = input.heldOut ?? [];
  const padId = input.padId ?? 0;
  const params = LoraParams.gather(model);
  const opt = new AdamW(params.size, {
    beta1: h.adamBeta1,
    beta2: h.adamBeta2,
    eps: h.adamEpsilon,
    weightDecay: h.weightDecay,
  });
  const perEpoch = Math.ceil(examples.length / h.batchSize);
  const total = totalTrainingSteps(examples.length, h.batchSize, h.epochs);
  const schedule = LrSchedule.fromRatio(h.scheduler, h.learningRate, total, h.warmupRatio);
  // The dropout masks' stream, seeded apart from the data order.
  model.mode.rng = new Rng((h.seed ^ 0x5bd1e995) >>> 0);

  let step = 0;
  let elapsedBefore = 0;
  const acc: Accumulators = {
    logLossSum: 0,
    logSteps: 0,
    epochLossSum: 0,
    epochSteps: 0,
    evalLosses: [],
    initialEvalLoss: null,
  };
  const ck = input.resume ?? null;
  if (ck) {
    assertResumable(ck, input.options);
    const diff = params.layoutDiff(ck.state.extra.layout);
    if (diff.length > 0)
      throw new InputError(
        ck.dir,
        `holds LoRA factors for a different set of modules:\n  ${diff.slice(0, 10).join('\n  ')}`,
      );
    if (ck.state.step > total)
      throw new InputError(ck.dir, `is at step ${ck.state.step}, past this run's ${total} updates`);
    params.data.set(checkpointTensor(ck, 'lora', [params.size]));
    opt.restore(
      checkpointTensor(ck, 'exp_avg', [params.size]),
      checkpointTensor(ck, 'exp_avg_sq', [params.size]),
      ck.state.step,
    );
    restoreRng(model.mode.rng, ck, 'dropout');
    step = ck.state.step;
    elapsedBefore = ck.state.elapsedS;
    const x = ck.state.extra as Partial<Accumulators>;
    acc.logLossSum = typeof x.logLossSum === 'number' ? x.logLossSum : 0;
    acc.logSteps = typeof x.logSteps === 'number' ? x.logSteps : 0;
    acc.epochLossSum = typeof x.epochLossSum === 'number' ? x.epochLossSum : 0;
    acc.epochSteps = typeof x.epochSteps === 'number' ? x.epochSteps : 0;
    acc.evalLosses = Array.isArray(x.evalLosses)
      ? x.evalLosses.map((v) => (typeof v === 'number' ? v : null))
      : [];
    acc.initialEvalLoss = typeof x.initialEvalLoss === 'number' ? x.initialEvalLoss : null;
  }

  const log = new TrainerLog(join(input.outDir, TRAINER_LOG), {
    totalSteps: total,
    startStep: step,
    elapsedBefore,
    now: input.now,
  });
  const written: TrainerLogRecord[] = [];
  const progress = new Progress({
    label: 'train',
    total,
    initial: step,
    mode: input.progress ?? 'auto',
    stream: input.progressStream,
  });
  const evalBatch = h.microBatchSize;
  if (heldOut.length > 0 && !ck) {
    acc.initialEvalLoss = heldOutLoss(model, heldOut, evalBatch, padId);
    progress.log(
      `held-out loss before training: ${acc.initialEvalLoss.toFixed(4)} (${heldOut.length} examples)`,
    );
  }

  let lastCheckpoint: string | null = null;
  let lastSavedStep = -1;
  /** The first update's loss in this session: the reference for the divergence stop. */
  let startLoss: number | null = null;
  let lastEpochLoss: number | null = null;
  const save = (): string => {
    lastCheckpoint = saveCheckpoint(
      input.outDir,
      {
        step,
        epoch: step / perEpoch,
        scheduler: schedule.state,
        rng: { dropout: model.mode.rng },
        options: input.options,
        elapsedS: log.elapsed(),
        extra: { ...acc, layout: params.layout(), perEpoch, totalSteps: total },
        tensors: {
          lora: { shape: [params.size], data: params.data },
          exp_avg: { shape: [opt.size], data: opt.m },
          exp_avg_sq: { shape: [opt.size], data: opt.v },
        },
      },
      {
        keep: h.keepCheckpoints,
        writeExtra: input.checkpointExtra ? (dir) => input.checkpointExtra!(dir, params) : undefined,
      },
    );
    lastSavedStep = step;
    return lastCheckpoint;
  };

  const endEpoch = (epoch: number): void => {
    if (heldOut.length > 0) {
      const ev = heldOutLoss(model, heldOut, evalBatch, padId);
      acc.evalLosses.push(ev);
      written.push(
        log.log({ step, loss: null, learningRate: schedule.lrAt(step), epoch: epoch + 1, evalLoss: ev }),
      );
      progress.log(
        `epoch ${epoch + 1}/${h.epochs}: train loss ${fmt(acc.epochSteps ? acc.epochLossSum / acc.epochSteps : NaN)}, held-out loss ${ev.toFixed(4)}`,
      );
    } else {
      acc.evalLosses.push(null);
      progress.log(
        `epoch ${epoch + 1}/${h.epochs}: train loss ${fmt(acc.epochSteps ? acc.epochLossSum / acc.epochSteps : NaN)}`,
      );
    }
    lastEpochLoss = acc.epochSteps ? acc.epochLossSum / acc.epochSteps : null;
    acc.epochLossSum = 0;
    acc.epochSteps = 0;
    save();
  };

  let tokens = 0;
  const t0 = performance.now();
  let stopped = false;
  model.setTraining(true);
  try {
    // A run stopped between an epoch's last update and its held-out evaluation finishes that epoch first.
    const epochsDone = (): number => acc.evalLosses.length;
    if (step > 0 && step % perEpoch === 0 && epochsDone() < step / perEpoch) endEpoch(step / perEpoch - 1);
    for (let epoch = Math.floor(step / perEpoch); epoch < h.epochs && !stopped; epoch++) {
      const order = Array.from({ length: examples.length }, (_, i) => i);
      epochRng(h.seed, epoch).shuffle(order);
      for (let b = step - epoch * perEpoch; b < perEpoch; b++) {
        const rows = batchRows(examples, order, b, h.batchSize);
        const g = batchGradient(model, params, rows, h.microBatchSize, padId, input.kd);
        tokens += g.tokens;
        const loss = g.loss;
        if (!Number.isFinite(loss)) {
          throw new TrainingDiverged(
            h.learningRate,
            `training loss is ${loss} at update ${step + 1} (lines ${rows.map((r) => r.line).join(', ')})`,
          );
        }
        startLoss ??= loss;
        const limit = divergenceLimit(startLoss, model.config.vocabSize);
        if (loss > limit) {
          throw new TrainingDiverged(
            h.learningRate,
            `training diverged: loss ${loss.toFixed(4)} at update ${step + 1}, far beyond its start ${startLoss.toFixed(4)} (limit ${limit.toFixed(4)})`,
          );
        }
        const norm = clipGradNorm(params.grad, h.maxGradNorm);
        if (!Number.isFinite(norm))
          throw new TrainingDiverged(h.learningRate, `gradient norm is ${norm} at update ${step + 1}`);
        opt.update(params.data, params.grad, schedule.lrAt(step));
        step++;
        acc.logLossSum += loss;
        acc.logSteps++;
        acc.epochLossSum += loss;
        acc.epochSteps++;
        const lrNext = schedule.lrAt(step);
        if (step % h.loggingSteps === 0 || step === total) {
          written.push(
            log.log({
              step,
              loss: acc.logLossSum / acc.logSteps,
              learningRate: lrNext,
              epoch: step / perEpoch,
              gradNorm: norm,
            }),
          );
          acc.logLossSum = 0;
          acc.logSteps = 0;
        }
        progress.update(step, { loss, lr: lrNext, epoch: Math.round((step / perEpoch) * 100) / 100 });
        const last = b === perEpoch - 1;
        if (h.saveSteps > 0 && step % h.saveSteps === 0 && !last) save();
        if (input.shouldStop?.(step) && !last) {
          if (lastSavedStep !== step) save();
          stopped = true;
          break;
        }
      }
      if (stopped) break;
      endEpoch(epoch);
      if (input.shouldStop?.(step) && epoch + 1 < h.epochs) stopped = true;
    }
  } finally {
    model.setTraining(false);
    progress.stop();
  }
  return {
    params,
    optimizer: opt,
    steps: step,
    totalSteps: total,
    epochsDone: acc.evalLosses.length,
    stopped,
    trainLoss: lastEpochLoss,
    initialEvalLoss: acc.initialEvalLoss,
    evalLosses: acc.evalLosses.filter((v): v is number => v !== null),
    tokens,
    seconds: (performance.now() - t0) / 1000,
    lastCheckpoint,
    log: written,
  };
}

function fmt(v: number): string {
  return Number.isFinite(v) ? v.toFixed(4) : '-';
}
