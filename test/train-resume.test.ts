/**
 * Checkpoint and resume (src/train/checkpoint.ts): training 4 updates equals training 2, stopping, and resuming for
 * 2 more, bit for bit (LoRA factors, both AdamW moments, the update count and the log lines), both
 * when the stop falls mid-epoch and at an epoch boundary; a checkpoint made with other options is
 * refused with every difference listed.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { randomWeights, tinyConfig } from '../src/model/random.js';
import { setupLora } from '../src/train/lora-init.js';
import { train, type TrainHyper } from '../src/train/trainer.js';
import { latestCheckpoint, listCheckpoints, loadCheckpoint } from '../src/train/checkpoint.js';
import { readTrainerLog } from '../src/train/log.js';
import { InputError } from '../src/errors.js';
import { ALL_KINDS } from '../src/transfer/modules.js';
import { hyper, randomExamples, tempDir } from './train-helpers.js';

const config = tinyConfig({ tieWordEmbeddings: true, numLayers: 2 });
const weights = randomWeights(config, 21);
const examples = randomExamples(16, config.vocabSize, 3);
const heldOut = randomExamples(4, config.vocabSize, 4);

/** A fresh student with PiSSA LoRA on every module kind (non-zero A and B everywhere, tied head untied). */
function student() {
  return setupLora(config, weights, {
    init: { kind: 'pissa' },
    kinds: ALL_KINDS,
    kindsAreDefault: false,
    rank: 2,
    alpha: 4,
    dropout: 0.1,
    seed: 9,
  }).model;
}

function bitsEqual(a: Float32Array, b: Float32Array, what: string): void {
  assert.equal(a.length, b.length, `${what}: length`);
  const ua = new Uint32Array(a.buffer, a.byteOffset, a.length);
  const ub = new Uint32Array(b.buffer, b.byteOffset, b.length);
  for (let i = 0; i < ua.length; i++) if (ua[i] !== ub[i]) assert.fail(`${what}[${i}]: ${a[i]} != ${b[i]}`);
}

/** Log lines without the wall-clock fields. */
function logValues(dir: string) {
  return readTrainerLog(join(dir, 'trainer_log.jsonl')).map(
    ({ elapsed_time: _e, remaining_time: _r, ...rest }) => rest,
  );
}

function resumeCase(h: TrainHyper, stopAt: number): void {
  const options = { ...h } as Record<string, unknown>;
  const full = tempDir('full');
  const split = tempDir('split');
  try {
    const a = train({
      model: student(),
      train: examples,
      heldOut,
      hyper: h,
      outDir: full,
      options,
      progress: 'off',
    });
    assert.equal(a.steps, 4);
    assert.equal(a.totalSteps, 4);
    assert.equal(a.stopped, false);

    const b1 = train({
      model: student(),
      train: examples,
      heldOut,
      hyper: h,
      outDir: split,
      options,
      progress: 'off',
      shouldStop: (s) => s === stopAt,
    });
    assert.equal(b1.stopped, true);
    assert.equal(b1.steps, stopAt);
    const ckDir = latestCheckpoint(split)!;
    assert.match(ckDir, new RegExp(`checkpoint-${stopAt}$`));
    const b2 = train({
      model: student(),
      train: examples,
      heldOut,
      hyper: h,
      outDir: split,
      options,
      progress: 'off',
      resume: loadCheckpoint(ckDir),
    });
    assert.equal(b2.steps, 4);
    assert.equal(b2.stopped, false);

    bitsEqual(b2.params.data, a.params.data, 'LoRA factors');
    bitsEqual(b2.optimizer.m, a.optimizer.m, 'AdamW exp_avg');
    bitsEqual(b2.optimizer.v, a.optimizer.v, 'AdamW exp_avg_sq');
    assert.equal(b2.optimizer.step, a.optimizer.step);
    assert.deepEqual(b2.evalLosses, a.evalLosses);
    assert.equal(b2.initialEvalLoss, a.initialEvalLoss);
    // the log of the interrupted run reads as one uninterrupted run
    assert.deepEqual(logValues(split), logValues(full));
    // the final checkpoints agree too
    const ca = loadCheckpoint(latestCheckpoint(full)!),
      cb = loadCheckpoint(latestCheckpoint(split)!);
    for (const name of ['lora', 'exp_avg', 'exp_avg_sq'])
      bitsEqual(cb.tensors.get(name)!.data, ca.tensors.get(name)!.data, `checkpoint ${name}`);
    // training moved the factors (the comparison is not between two untouched copies)
    const init = student();
    const before = [...init.loras().values()][0].A;
    assert.notDeepEqual(Array.from(a.params.data.subarray(0, before.length)), Array.from(before));
  } finally {
    rmSync(full, { recursive: true, force: true });
    rmSync(split, { recursive: true, force: true });
  }
}

test('4 updates in one epoch == 2 updates, stop (mid-epoch), resume 2: bitwise', () => {
  resumeCase(hyper({ epochs: 1, batchSize: 4, microBatchSize: 2 }), 2);
});

test('4 updates over 2 epochs == 2 updates (epoch boundary), stop, resume 2: bitwise; also stop at 3', () => {
  resumeCase(hyper({ epochs: 2, batchSize: 8, microBatchSize: 3, saveSteps: 1 }), 2);
  resumeCase(hyper({ epochs: 2, batchSize: 8, microBatchSize: 8 }), 3);
});

test('checkpoints every N updates and at each epoch end; keep prunes the oldest', () => {
  const dir = tempDir('saves');
  try {
    const h = hyper({ epochs: 2, batchSize: 4, microBatchSize: 4, saveSteps: 3, keepCheckpoints: 3 });
    train({ model: student(), train: examples, hyper: h, outDir: dir, options: { ...h }, progress: 'off' });
    // 4 updates per epoch: saves at 3, 4 (epoch end), 6, 8 (epoch end); keep the newest 3
    assert.deepEqual(
      listCheckpoints(dir).map((c) => c.step),
      [4, 6, 8],
    );
    const ck = loadCheckpoint(join(dir, 'checkpoint-4'));
    assert.equal(ck.state.epoch, 1);
    assert.equal(ck.state.scheduler!.totalSteps, 8);
    assert.equal(ck.state.rng.dropout.length, 5);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('resuming from a checkpoint made with different options is refused, listing every difference', () => {
  const dir = tempDir('differ');
  try {
    const h = hyper({ epochs: 1, batchSize: 4, microBatchSize: 2 });
    train({
      model: student(),
      train: examples,
      hyper: h,
      outDir: dir,
      options: { ...h, data: 'a.jsonl' },
      progress: 'off',
      shouldStop: (s) => s === 1,
    });
    const ck = loadCheckpoint(latestCheckpoint(dir)!);
    const h2 = { ...h, learningRate: 5e-3 };
    assert.throws(
      () =>
        train({
          model: student(),
          train: examples,
          hyper: h2,
          outDir: dir,
          options: { ...h2, data: 'b.jsonl', progress: false },
          progress: 'off',
          resume: ck,
        }),
      (e: unknown) => {
        assert.ok(e instanceof InputError);
        assert.match(e.message, /checkpoint-1/);
        assert.match(e.message, /learningRate: 0\.01 in the checkpoint, 0\.005 now/);
        assert.match(e.message, /data: "a\.jsonl" in the checkpoint, "b\.jsonl" now/);
        assert.doesNotMatch(e.message, /progress/); // display options may change
        return true;
      },
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
