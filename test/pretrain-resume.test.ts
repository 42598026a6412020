/**
 * Pretraining checkpoints: 4 updates straight equal 2 updates, an interruption, and 2 resumed updates,
 * bitwise (parameters and both AdamW moments); resuming with other options or other data is refused
 * with every difference listed.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { InputError } from '../src/errors.js';
import { loadCheckpoint, listCheckpoints } from '../src/train/checkpoint.js';
import { readTrainerLog } from '../src/train/log.js';
import { pretrain } from '../src/train/pretrain.js';
import { PRETRAIN_DEFAULTS, type PretrainOptions } from '../src/train/pretrain/options.js';
import { readStories } from '../scripts/zoo/tinystories.js';

const tmp = mkdtempSync(join(tmpdir(), 'nuggets-pretrain-resume-'));
const stories = readStories('data/tinystories/tinystories_val.txt');
const DATA = join(tmp, 'train.jsonl');
writeFileSync(
  DATA,
  stories
    .slice(0, 6)
    .map((t) => JSON.stringify({ text: t }))
    .join('\n') + '\n',
);
const quiet = { log: () => {} };

function opts(out: string, over: Partial<PretrainOptions> = {}): PretrainOptions {
  return {
    ...PRETRAIN_DEFAULTS,
    data: DATA,
    out,
    tokenizer: 'data/stories260k/tokenizer.bin',
    hiddenSize: 16,
    numLayers: 2,
    numHeads: 4,
    numKvHeads: 2,
    intermediateSize: 24,
    seqLen: 16,
    batchSize: 8,
    microBatchSize: 4,
    learningRate: 5e-3,
    warmupSteps: 1,
    maxSteps: 4,
    saveSteps: 2,
    keepCheckpoints: 5,
    valFraction: 0.2,
    loggingSteps: 1,
    progress: false,
    ...over,
  };
}

test('4 updates == 2 updates + interruption + resume for 2 (bitwise: weights and AdamW moments)', () => {
  const straight = join(tmp, 'straight');
  const a = pretrain(opts(straight), quiet);
  assert.equal(a.steps, 4);

  const split = join(tmp, 'split');
  const first = pretrain(opts(split), { ...quiet, stopAfter: 2 });
  assert.equal(first.interrupted, true);
  assert.equal(first.steps, 2);
  assert.deepEqual(
    listCheckpoints(join(split, 'checkpoints')).map((c) => c.step),
    [2],
  );
  const second = pretrain(opts(split, { resume: true }), quiet);
  assert.equal(second.steps, 4);
  assert.equal(second.interrupted, false);

  const ca = loadCheckpoint(join(straight, 'checkpoints', 'checkpoint-4'));
  const cb = loadCheckpoint(join(split, 'checkpoints', 'checkpoint-4'));
  assert.deepEqual([...ca.tensors.keys()].sort(), [...cb.tensors.keys()].sort());
  const kinds = new Set<string>();
  for (const [name, t] of ca.tensors) {
    kinds.add(name.split('/')[0]);
    const u = t.data,
      v = cb.tensors.get(name)!.data;
    assert.ok(
      Buffer.from(u.buffer, u.byteOffset, u.byteLength).equals(
        Buffer.from(v.buffer, v.byteOffset, v.byteLength),
      ),
      `${name} differs`,
    );
  }
  assert.deepEqual([...kinds].sort(), ['adam_m', 'adam_v', 'param']);
  // the moments are real state (non-zero), so the bitwise check covers them
  assert.ok(ca.tensors.get('adam_v/model.layers.0.mlp.up_proj.weight')!.data.some((x) => x > 0));
  assert.deepEqual(
    readFileSync(join(straight, 'model.safetensors')),
    readFileSync(join(split, 'model.safetensors')),
  );
  assert.equal(second.valLoss, a.valLoss);
  // the log reads as one run: steps 1..4 once each, the same losses
  const la = readTrainerLog(join(straight, 'trainer_log.jsonl'));
  const lb = readTrainerLog(join(split, 'trainer_log.jsonl'));
  assert.deepEqual(
    lb.map((l) => l.current_steps),
    [1, 2, 3, 4],
  );
  assert.deepEqual(
    lb.map((l) => l.loss),
    la.map((l) => l.loss),
  );
});

test('resuming with other options or other data is refused, listing what differs', () => {
  const out = join(tmp, 'refuse');
  pretrain(opts(out), { ...quiet, stopAfter: 2 });
  assert.throws(
    () => pretrain(opts(out, { resume: true, learningRate: 1e-3, seed: 9 }), quiet),
    (e: unknown) =>
      e instanceof InputError &&
      /learningRate: 0\.005 in the checkpoint, 0\.001 now/.test(e.problem) &&
      /seed: 42 in the checkpoint, 9 now/.test(e.problem),
  );
  writeFileSync(DATA, readFileSync(DATA, 'utf8') + JSON.stringify({ text: 'One more story.' }) + '\n');
  assert.throws(
    () => pretrain(opts(out, { resume: true }), quiet),
    (e: unknown) => e instanceof InputError && /dataSha256/.test(e.problem),
  );
  // options that do not change the result may change (logging cadence, progress)
  writeFileSync(
    DATA,
    stories
      .slice(0, 6)
      .map((t) => JSON.stringify({ text: t }))
      .join('\n') + '\n',
  );
  const r = pretrain(opts(out, { resume: true, loggingSteps: 2 }), quiet);
  assert.equal(r.steps, 4);
});
