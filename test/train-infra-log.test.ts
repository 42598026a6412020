import { test } from 'node:test';
import assert from 'node:assert/strict';
import { appendFileSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { formatDuration, readTrainerLog, TrainerLog } from '../src/train/log.js';

const dir = mkdtempSync(join(tmpdir(), 'nuggets-log-'));

test('durations print like Python str(timedelta(seconds=int(s)))', () => {
  assert.equal(formatDuration(0), '0:00:00');
  assert.equal(formatDuration(65.9), '0:01:05');
  assert.equal(formatDuration(3600 * 13 + 61), '13:01:01');
  assert.equal(formatDuration(86400 + 3723), '1 day, 1:02:03');
  assert.equal(formatDuration(2 * 86400), '2 days, 0:00:00');
  assert.equal(formatDuration(-5), '0:00:00');
});

test('each log call appends one line with the LLaMA-Factory field names and values', () => {
  let t = 100;
  const p = join(dir, 'a', 'trainer_log.jsonl');
  const log = new TrainerLog(p, { totalSteps: 48, now: () => t });
  t += 10;
  log.log({ step: 2, loss: 1.5, learningRate: 1.5e-4, epoch: 0.04166, gradNorm: 0.7 });
  t += 30;
  log.log({
    step: 4,
    loss: 1.25,
    learningRate: 3e-4,
    epoch: 1 / 12,
    evalLoss: 1.4,
    extra: { tokens_per_second: 123.5 },
  });
  const lines = readFileSync(p, 'utf8').trimEnd().split('\n');
  assert.equal(lines.length, 2);
  assert.deepEqual(Object.keys(JSON.parse(lines[0])), [
    'current_steps',
    'total_steps',
    'loss',
    'learning_rate',
    'epoch',
    'percentage',
    'elapsed_time',
    'remaining_time',
    'grad_norm',
  ]);
  assert.deepEqual(JSON.parse(lines[0]), {
    current_steps: 2,
    total_steps: 48,
    loss: 1.5,
    learning_rate: 1.5e-4,
    epoch: 0.04,
    percentage: 4.17,
    elapsed_time: '0:00:10',
    remaining_time: '0:03:50',
    grad_norm: 0.7, // 5 s/step x 46 steps
  });
  assert.deepEqual(JSON.parse(lines[1]), {
    current_steps: 4,
    total_steps: 48,
    loss: 1.25,
    learning_rate: 3e-4,
    epoch: 0.08,
    percentage: 8.33,
    elapsed_time: '0:00:40',
    remaining_time: '0:07:20',
    eval_loss: 1.4,
    tokens_per_second: 123.5, // 10 s/step x 44
  });
});

test('a new run truncates an old log; a resumed run keeps lines up to its step, adds earlier time, and drops a torn line', () => {
  const p = join(dir, 'b', 'trainer_log.jsonl');
  let t = 0;
  const first = new TrainerLog(p, { totalSteps: 10, now: () => t });
  for (let s = 1; s <= 6; s++) {
    t += 2;
    first.log({ step: s, loss: 1 / s, learningRate: 0.1, epoch: s / 10 });
  }
  appendFileSync(p, '{"current_steps": 7, "tot');
  t = 1000;
  const resumed = new TrainerLog(p, { totalSteps: 10, startStep: 4, elapsedBefore: 8, now: () => t });
  assert.deepEqual(
    readTrainerLog(p).map((r) => r.current_steps),
    [1, 2, 3, 4],
  );
  t += 3;
  const rec = resumed.log({ step: 5, loss: 0.2, learningRate: 0.1, epoch: 0.5 });
  assert.equal(rec.elapsed_time, '0:00:11');
  assert.equal(rec.remaining_time, '0:00:15'); // 3 s/step this session x 5 left
  assert.deepEqual(
    readTrainerLog(p).map((r) => r.current_steps),
    [1, 2, 3, 4, 5],
  );
  new TrainerLog(p, { totalSteps: 10 });
  assert.equal(readFileSync(p, 'utf8'), '');
});
