/**
 * Pretrain step 3, the training loop: equal micro-batches with their gradients summed then divided
 * by their number (the loss of an update is the mean over all its tokens), one global gradient-norm
 * clip, AdamW per parameter tensor with decay on matrices only (embeddings included, norms excluded),
 * and the HF schedule with warmup: the trainer's own pieces (src/train/optimizer.ts,
 * src/train/schedule.ts). Each epoch visits the sequences in an order drawn from (seed, epoch), so a
 * resumed run recomputes the exact order; a checkpoint holds the parameters and both AdamW moments in
 * F32, and resuming continues bitwise.
 */
import { join } from 'node:path';
import { Rng } from '../../engine/rng.js';
import { expectedShape, expectedTensorNames } from '../../model/config.js';
import { LlamaModel } from '../../model/model.js';
import { MemoryWeights } from '../../model/weights.js';
import {
  assertResumable,
  checkpointTensor,
  latestCheckpoint,
  loadCheckpoint,
  RESUME_MAY_CHANGE,
  saveCheckpoint,
  type CheckpointTensor,
} from '../checkpoint.js';
import { TrainerLog } from '../log.js';
import { AdamW, clipGradNorm } from '../optimizer.js';
import type { PackedSequences } from '../pretrain-data.js';
import { Progress } from '../progress.js';
import { LrSchedule } from '../schedule.js';
import type { PretrainData } from './data.js';
import type { PretrainIo, PretrainOptions } from './options.js';
import { initialWeights, type Start } from './resolve.js';

/** Options that may differ between a checkpoint and the run resuming from it. */
const CHECKPOINT_MAY_CHANGE = [...RESUME_MAY_CHANGE, 'checkpointDir', 'evalSteps', 'out'];

export interface Trained {
  model: LlamaModel;
  /** Updates done in all (resumed runs included). */
  steps: number;
  /** The update this session started from (0: a fresh run). */
  startStep: number;
  /** Mean training loss of the last logging window. */
  trainLoss: number;
  valLoss: number | null;
  initialValLoss: number | null;
  /** True when stopped early by `stopAfter`. */
  interrupted: boolean;
  /** Training seconds over all sessions so far (resume included). */
  elapsed(): number;
}

/** Mean next-token loss over all sequences of `seqs` (forward only), in micro-batches. */
export function heldOutLoss(model: LlamaModel, seqs: PackedSequences, microBatch: number): number {
  const T = seqs.seqLen;
  let sum = 0;
  let n = 0;
  for (let i = 0; i < seqs.count; i += microBatch) {
    const B = Math.min(microBatch, seqs.count - i);
    const ids = new Int32Array(B * T),
      targets = new Int32Array(B * T);
    for (let b = 0; b < B; b++) seqs.fill(i + b, ids, targets, b * T);
    sum += model.loss({ ids, B, T }, targets) * B;
    n += B;
  }
  return sum / n;
}

export function trainModel(
  o: PretrainOptions,
  io: PretrainIo,
  start: Start,
  data: PretrainData,
  say: (line: string) => void,
): Trained {
  const { config } = start;
  const { train, val, perEpoch, totalSteps } = data;
  const T = o.seqLen,
    mb = o.microBatchSize,
    nMicro = o.batchSize / mb;

  // The options as recorded in checkpoints (compared on resume).
  const options: Record<string, unknown> = { ...o, dataSha256: data.dataSha256 };
  if (data.valSha256) options.valDataSha256 = data.valSha256;
  const ckRoot = o.checkpointDir ?? join(o.out, 'checkpoints');
  const resumeDir = o.resumeFrom ?? (o.resume ? latestCheckpoint(ckRoot) : null);
  if (o.resume && !o.resumeFrom && !resumeDir)
    say(`pretrain: no checkpoint under ${ckRoot}; starting from step 0`);
  let startStep = 0;
  let elapsedBefore = 0;
  let ck: ReturnType<typeof loadCheckpoint> | null = null;
  let weights: MemoryWeights;
  if (resumeDir) {
    ck = loadCheckpoint(resumeDir);
    assertResumable(ck, options, CHECKPOINT_MAY_CHANGE);
    const tensors = new Map<string, { shape: number[]; data: Float32Array }>();
    for (const name of expectedTensorNames(config)) {
      const shape = expectedShape(config, name);
      tensors.set(name, { shape, data: checkpointTensor(ck, `param/${name}`, shape) });
    }
    weights = new MemoryWeights(resumeDir, tensors);
    startStep = ck.state.step;
    elapsedBefore = ck.state.elapsedS;
    say(`pretrain: resuming from ${resumeDir} at update ${startStep}`);
  } else {
    weights = start.initWeights ?? initialWeights(config, o.seed, o.initStd);
  }
  const model = LlamaModel.load({ config, weights });
  model.enableGrads();
  model.setGradientCheckpointing(o.gradientCheckpointing);
  const params = model.params.unique();
  // Weight decay on matrices (embedding and lm_head included), none on norm weights (llama2.c).
  const optimizers = params.map(
    (p) =>
      new AdamW(p.data.length, {
        beta1: o.adamBeta1,
        beta2: o.adamBeta2,
        eps: o.adamEpsilon,
        weightDecay: p.shape.length >= 2 ? o.weightDecay : 0,
      }),
  );
  if (ck) {
    params.forEach((p, i) =>
      optimizers[i].restore(
        checkpointTensor(ck, `adam_m/${p.name}`, [...p.shape]),
        checkpointTensor(ck, `adam_v/${p.name}`, [...p.shape]),
        startStep,
      ),
    );
  }
  const schedule = new LrSchedule({
    kind: o.scheduler,
    baseLr: o.learningRate,
    totalSteps,
    warmupSteps: Math.min(o.warmupSteps, totalSteps),
  });

  const log = new TrainerLog(join(o.out, 'trainer_log.jsonl'), { totalSteps, startStep, elapsedBefore });
  const progress = new Progress({
    label: 'pretrain',
    total: totalSteps,
    initial: startStep,
    mode: o.progress ? 'auto' : 'off',
  });
  const save = (step: number) =>
    saveCheckpoint(
      ckRoot,
      {
        step,
        epoch: step / perEpoch,
        scheduler: schedule.state,
        options,
        elapsedS: log.elapsed(),
        tensors: Object.fromEntries(
          params.flatMap((p, i): Array<[string, CheckpointTensor]> => [
            [`param/${p.name}`, { shape: [...p.shape], data: p.data }],
            [`adam_m/${p.name}`, { shape: [...p.shape], data: optimizers[i].m }],
            [`adam_v/${p.name}`, { shape: [...p.shape], data: optimizers[i].v }],
          ]),
        ),
      },
      { keep: o.keepCheckpoints },
    );

  const initialValLoss = val && val.count && startStep === 0 ? heldOutLoss(model, val, mb) : null;
  if (initialValLoss !== null)
    progress.log(`pretrain: held-out loss before training ${initialValLoss.toFixed(4)}`);

  const ids = new Int32Array(mb * T),
    targets = new Int32Array(mb * T);
  let order: number[] = [];
  let orderEpoch = -1;
  let windowLoss = 0,
    windowCount = 0,
    lastTrainLoss = NaN;
  let valLoss: number | null = null;
  let step = startStep;
  let interrupted = false;
  try {
    while (step < totalSteps) {
      const epoch = Math.floor(step / perEpoch);
      if (epoch !== orderEpoch) {
        order = new Rng((o.seed ^ Math.imul(epoch + 1, 0x9e3779b9)) >>> 0).shuffle(
          Array.from({ length: train.count }, (_, i) => i),
        );
        orderEpoch = epoch;
      }
      const first = (step % perEpoch) * o.batchSize;
      model.zeroGrads();
      let stepLoss = 0;
      for (let k = 0; k < nMicro; k++) {
        for (let b = 0; b < mb; b++) train.fill(order[first + k * mb + b], ids, targets, b * T);
        stepLoss += model.loss({ ids, B: mb, T }, targets);
        model.backward();
      }
      stepLoss /= nMicro;
      if (!Number.isFinite(stepLoss))
        throw new Error(`pretrain: the loss became ${stepLoss} at update ${step + 1}; lower --learning-rate`);
      const grads = params.map((p) => p.grad!);
      if (nMicro > 1) for (const g of grads) for (let i = 0; i < g.length; i++) g[i] /= nMicro;
      // The factor in float64: the zoo models were built so (a bitwise rebuild depends on it).
      const gradNorm = clipGradNorm(grads, o.maxGradNorm, 'float64');
      if (!Number.isFinite(gradNorm))
        throw new Error(
          `pretrain: the gradient norm became ${gradNorm} at update ${step + 1}; lower --learning-rate`,
        );
      const lr = schedule.lrAt(step);
      params.forEach((p, i) => optimizers[i].update(p.data, grads[i], lr));
      step++;
      windowLoss += stepLoss;
      windowCount++;
      const evalNow =
        val !== null &&
        val.count > 0 &&
        ((o.evalSteps > 0 && step % o.evalSteps === 0) || step === totalSteps);
      if (evalNow) valLoss = heldOutLoss(model, val, mb);
      if (step % o.loggingSteps === 0 || step === totalSteps || evalNow) {
        lastTrainLoss = windowLoss / windowCount;
        log.log({
          step,
          loss: Math.round(lastTrainLoss * 1e4) / 1e4,
          learningRate: schedule.lrAt(step),
          epoch: step / perEpoch,
          gradNorm: Math.round(gradNorm * 1e4) / 1e4,
          ...(evalNow ? { evalLoss: Math.round(valLoss! * 1e4) / 1e4 } : {}),
        });
        windowLoss = 0;
        windowCount = 0;
      }
      progress.update(step, { loss: stepLoss, lr, ...(valLoss !== null ? { val: valLoss } : {}) });
      if (o.saveSteps > 0 && step % o.saveSteps === 0 && step < totalSteps) save(step);
      if (io.stopAfter !== undefined && step - startStep >= io.stopAfter && step < totalSteps) {
        interrupted = true;
        break;
      }
    }
  } finally {
    progress.stop();
  }
  if (windowCount > 0) lastTrainLoss = windowLoss / windowCount;
  if (!interrupted && o.saveSteps > 0) save(step);
  return {
    model,
    steps: step,
    startStep,
    trainLoss: lastTrainLoss,
    valLoss,
    initialValLoss,
    interrupted,
    elapsed: () => log.elapsed(),
  };
}
