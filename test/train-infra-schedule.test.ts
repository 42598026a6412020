import { test } from 'node:test';
import assert from 'node:assert/strict';
import { LrSchedule, totalTrainingSteps, warmupStepsFor } from '../src/train/schedule.js';
import { InputError } from '../src/errors.js';

const close = (a: number, b: number) => assert.ok(Math.abs(a - b) < 1e-12, `${a} != ${b}`);

test('warmup steps = ceil(ratio * total), an explicit count wins', () => {
  assert.equal(warmupStepsFor(1000, 0.03), 30);
  assert.equal(warmupStepsFor(47, 0.03), 2); // 1.41 -> 2
  assert.equal(warmupStepsFor(48, 0.03), 2); // the paper's 1000 examples / 64 x 3 epochs
  assert.equal(warmupStepsFor(3, 0.03), 1);
  assert.equal(warmupStepsFor(10, 0), 0);
  assert.equal(warmupStepsFor(10, 0.5, 3), 3);
  assert.equal(totalTrainingSteps(1000, 64, 3), 48);
  assert.equal(totalTrainingSteps(64, 64, 3), 3);
});

test('linear: warmup from 0, then linear decay to 0 at total (hand values, total 10, warmup 2)', () => {
  const s = LrSchedule.fromRatio('linear', 1e-3, 10, 0.2);
  assert.equal(s.state.warmupSteps, 2);
  const want = [0, 0.5, 1, 7 / 8, 6 / 8, 5 / 8, 4 / 8, 3 / 8, 2 / 8, 1 / 8, 0, 0];
  want.forEach((f, k) => close(s.lrAt(k), 1e-3 * f));
});

test('cosine: half a cosine after warmup (hand values, total 10, warmup 2)', () => {
  const s = new LrSchedule({ kind: 'cosine', baseLr: 2, totalSteps: 10, warmupSteps: 2 });
  close(s.lrAt(0), 0);
  close(s.lrAt(1), 1);
  close(s.lrAt(2), 2);
  close(s.lrAt(4), 2 * 0.5 * (1 + Math.SQRT1_2)); // progress 1/4
  close(s.lrAt(6), 1); // progress 1/2
  close(s.lrAt(8), 2 * 0.5 * (1 - Math.SQRT1_2));
  close(s.lrAt(10), 0);
});

test('constant with warmup, and no warmup at all', () => {
  const c = new LrSchedule({ kind: 'constant', baseLr: 3e-4, totalSteps: 5, warmupSteps: 4 });
  assert.deepEqual(
    [0, 1, 2, 3, 4, 5].map((k) => c.lrAt(k) / 3e-4),
    [0, 0.25, 0.5, 0.75, 1, 1],
  );
  const l = LrSchedule.fromRatio('linear', 1, 4, 0);
  assert.deepEqual(
    [0, 1, 2, 3].map((k) => l.lrAt(k)),
    [1, 0.75, 0.5, 0.25],
  );
});

test('bad schedule parameters are refused', () => {
  assert.throws(() => LrSchedule.fromRatio('linear', 1, 10, 1.5), InputError);
  assert.throws(() => LrSchedule.fromRatio('linear', -1, 10, 0.1), InputError);
  assert.throws(() => LrSchedule.fromRatio('linear', 1, 0, 0.1), InputError);
  assert.throws(
    () => new LrSchedule({ kind: 'step' as 'linear', baseLr: 1, totalSteps: 1, warmupSteps: 0 }),
    /unknown schedule/,
  );
});
