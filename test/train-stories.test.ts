/**
 * LoRA training lowers held-out loss on the bundled stories260K (the end-to-end check), run through the
 * real command line (`nuggets train`, PEFT default init, Tulu format, answer-only loss): 32 TinyStories
 * held-out stories as {"prompt","answer"} rows, 8 others as the held-out set, 4 updates at lr 1e-3.
 * The student has never seen the Tulu wrapper, so its loss on stories that follow one is high; four
 * updates teach it to write the story after the wrapper, and the held-out loss must fall by > 0.1 nats.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { main } from '../src/cli/main.js';
import { readTrainerLog } from '../src/train/log.js';
import type { TrainingRecord } from '../src/train/run.js';
import { heldOutStories, STORIES260K } from './model-helpers.js';
import { tempDir } from './train-helpers.js';

async function cli(args: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '',
    err = '';
  const w = process.stdout.write.bind(process.stdout);
  const e = process.stderr.write.bind(process.stderr);
  const ce = console.error;
  process.stdout.write = ((s: string) => ((out += s), true)) as typeof process.stdout.write;
  process.stderr.write = ((s: string) => ((err += s), true)) as typeof process.stderr.write;
  console.error = (...a: unknown[]) => (err += a.join(' ') + '\n');
  try {
    return { code: await main(['node', 'nuggets', ...args]), out, err };
  } finally {
    process.stdout.write = w;
    process.stderr.write = e;
    console.error = ce;
  }
}

test('nuggets train on stories260K lowers the held-out loss (asserted drop > 0.1 nats)', async () => {
  const dir = tempDir('stories');
  try {
    const stories = heldOutStories(40);
    const rows = (xs: string[]) =>
      xs.map((s) => JSON.stringify({ prompt: 'Write a short story.', answer: s })).join('\n') + '\n';
    writeFileSync(join(dir, 'train.jsonl'), rows(stories.slice(0, 32)));
    writeFileSync(join(dir, 'eval.jsonl'), rows(stories.slice(32)));
    const out = join(dir, 'out');
    const r = await cli([
      'train',
      join(STORIES260K, 'checkpoint_legacy.bin'),
      '--data',
      join(dir, 'train.jsonl'),
      '--eval-data',
      join(dir, 'eval.jsonl'),
      '--out',
      out,
      '--epochs',
      '1',
      '--batch-size',
      '8',
      '--micro-batch-size',
      '8',
      '--learning-rate',
      '1e-3',
      '--warmup-ratio',
      '0',
      '--max-length',
      '64',
      '--logging-steps',
      '2',
      '--no-progress',
    ]);
    assert.equal(r.code, 0, r.err);
    const rec = JSON.parse(readFileSync(join(out, 'training.json'), 'utf8')) as TrainingRecord;
    const before = rec.results.initialEvalLoss!,
      after = rec.results.evalLosses[0];
    assert.ok(Number.isFinite(before) && Number.isFinite(after));
    assert.ok(before - after > 0.1, `held-out loss ${before} -> ${after}`);
    assert.equal(rec.results.steps, 4);
    // the one-line summary on stdout, the data report on stderr
    assert.match(
      r.out,
      /^trained 4 updates \(1 epochs\) in \d+:\d\d:\d\d, \d+ tokens\/s; train loss \d\.\d{4}; held-out loss \d\.\d{4} -> \d\.\d{4}; adapter: /,
    );
    assert.equal(r.out.trim().split('\n').length, 1);
    assert.match(r.err, /training data: 32\/32 examples/);
    // trainer_log.jsonl: a line every 2 updates and the epoch's eval line
    const log = readTrainerLog(join(out, 'trainer_log.jsonl'));
    assert.deepEqual(
      log.map((l) => [l.current_steps, l.loss === null ? 'eval' : 'train']),
      [
        [2, 'train'],
        [4, 'train'],
        [4, 'eval'],
      ],
    );
    assert.equal(log[2].eval_loss, after);
    assert.equal(log[1].learning_rate, 0); // linear decay reaches 0 after the last update
    assert.equal(log[0].learning_rate, 5e-4);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
