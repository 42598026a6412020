/**
 * The trainer stops a run that goes astray with one line naming --learning-rate and the update: a
 * loss that grows far beyond its start (long before NaN), and a non-finite loss.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomWeights, tinyConfig } from '../src/model/random.js';
import { setupLora } from '../src/train/lora-init.js';
import { divergenceLimit, train, TrainingDiverged } from '../src/train/trainer.js';
import { InputError } from '../src/errors.js';
import { ALL_KINDS } from '../src/transfer/modules.js';
import { hyper, randomExamples, tempDir } from './train-helpers.js';

const config = tinyConfig({ tieWordEmbeddings: true, numLayers: 2 });
const weights = randomWeights(config, 21);
const examples = randomExamples(32, config.vocabSize, 3);

function run(learningRate: number, epochs = 4) {
  const model = setupLora(config, weights, {
    init: { kind: 'pissa' },
    kinds: ALL_KINDS,
    kindsAreDefault: false,
    rank: 2,
    alpha: 4,
    dropout: 0,
    seed: 9,
  }).model;
  const h = hyper({ learningRate, epochs, warmupRatio: 0, maxGradNorm: 1e9 });
  return () =>
    train({
      model,
      train: examples,
      hyper: h,
      outDir: tempDir('diverge'),
      options: { ...h },
      progress: 'off',
    });
}

test('divergence limit: 4x the start, at least start + ln(vocab)', () => {
  assert.equal(divergenceLimit(10, 100), 40);
  assert.equal(divergenceLimit(0.5, 1000), 0.5 + Math.log(1000));
});

test('a sane learning rate trains to the end', () => {
  const r = run(1e-2, 1)();
  assert.equal(r.steps, 8);
});

test('a loss that grows far beyond its start stops training with the update number, as one-line user error', () => {
  let err: unknown = null;
  try {
    run(3)();
    assert.fail('no stop');
  } catch (e) {
    err = e;
  }
  assert.ok(err instanceof TrainingDiverged && err instanceof InputError, String(err));
  assert.match(
    (err as Error).message,
    /^--learning-rate 3: training diverged: loss \d+\.\d+ at update \d+, far beyond its start/,
  );
  assert.doesNotMatch((err as Error).message, /\n/);
});

test('a non-finite loss stops training with the update number', () => {
  assert.throws(
    run(1e30),
    (e: unknown) =>
      e instanceof TrainingDiverged &&
      /update \d+/.test((e as Error).message) &&
      /learning rate/.test((e as Error).message),
  );
});
