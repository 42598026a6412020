import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Rng } from '../src/engine/rng.js';
import { InputError } from '../src/errors.js';
import {
  assertResumable,
  checkpointTensor,
  diffOptions,
  latestCheckpoint,
  listCheckpoints,
  loadCheckpoint,
  restoreRng,
  saveCheckpoint,
  STATE_FILE,
} from '../src/train/checkpoint.js';

const root = () => mkdtempSync(join(tmpdir(), 'nuggets-ckpt-'));
const options = { learningRate: 3e-4, epochs: 3, modules: ['q_proj', 'v_proj'], seed: 42, progress: true };

function tensors(seed: number) {
  const r = new Rng(seed);
  return {
    'base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight': {
      shape: [4, 8],
      data: r.fillNormal(new Float32Array(32)),
    },
    'optimizer.exp_avg.0': { shape: [4, 8], data: r.fillNormal(new Float32Array(32)) },
    'optimizer.exp_avg_sq.0': { shape: [32], data: r.fillUniform(new Float32Array(32)) },
    empty: { shape: [0], data: new Float32Array(0) },
  };
}

test('save then load gives back every tensor bitwise, the state, and RNG streams that continue identically', () => {
  const dir = root();
  const dropout = new Rng(7);
  dropout.normal(); // leaves a spare normal in the state (NaN-free branch)
  const shuffle = new Rng(9); // spare is null -> NaN in getState
  const t = tensors(1);
  const path = saveCheckpoint(dir, {
    step: 12,
    epoch: 1.5,
    scheduler: { kind: 'linear', baseLr: 3e-4, totalSteps: 48, warmupSteps: 2 },
    rng: { dropout, shuffle },
    options,
    elapsedS: 33.5,
    extra: { lossSum: 1.25, cursor: 7 },
    tensors: t,
  });
  assert.equal(path, join(dir, 'checkpoint-12'));
  const ck = loadCheckpoint(path);
  assert.equal(ck.state.step, 12);
  assert.equal(ck.state.epoch, 1.5);
  assert.deepEqual(ck.state.scheduler, { kind: 'linear', baseLr: 3e-4, totalSteps: 48, warmupSteps: 2 });
  assert.deepEqual(ck.state.options, options);
  assert.equal(ck.state.elapsedS, 33.5);
  assert.deepEqual(ck.state.extra, { lossSum: 1.25, cursor: 7 });
  for (const [name, v] of Object.entries(t)) {
    assert.deepEqual(ck.tensors.get(name)!.shape, v.shape);
    assert.deepEqual(Buffer.from(ck.tensors.get(name)!.data.buffer), Buffer.from(v.data.buffer), name);
  }
  const d2 = new Rng(0);
  const s2 = new Rng(0);
  restoreRng(d2, ck, 'dropout');
  restoreRng(s2, ck, 'shuffle');
  for (let i = 0; i < 5; i++) {
    assert.equal(d2.normal(), dropout.normal());
    assert.equal(s2.nextU32(), shuffle.nextU32());
  }
  assert.throws(() => restoreRng(new Rng(0), ck, 'nope'), InputError);
  assert.equal(checkpointTensor(ck, 'optimizer.exp_avg_sq.0', [32]).length, 32);
  assert.throws(
    () => checkpointTensor(ck, 'optimizer.exp_avg_sq.0', [4, 8]),
    /has shape \[32\], expected \[4, 8\]/,
  );
  assert.throws(() => checkpointTensor(ck, 'missing', [1]), /no tensor "missing"/);
});

test('keep N: only the newest N checkpoints stay; re-saving a step replaces it; no temp folders remain', () => {
  const dir = root();
  for (const step of [2, 4, 6, 8])
    saveCheckpoint(dir, { step, epoch: 0, options, tensors: tensors(step) }, { keep: 2 });
  assert.deepEqual(
    listCheckpoints(dir).map((c) => c.step),
    [6, 8],
  );
  assert.equal(latestCheckpoint(dir), join(dir, 'checkpoint-8'));
  saveCheckpoint(dir, { step: 8, epoch: 1, options, tensors: tensors(80) }, { keep: 2 });
  assert.equal(loadCheckpoint(join(dir, 'checkpoint-8')).state.epoch, 1);
  assert.deepEqual(readdirSync(dir).sort(), ['checkpoint-6', 'checkpoint-8']);
  // checkpoint-10 sorts after checkpoint-8 by step, not by name.
  saveCheckpoint(dir, { step: 10, epoch: 1, options, tensors: tensors(10) }, { keep: 5 });
  assert.equal(latestCheckpoint(dir), join(dir, 'checkpoint-10'));
  assert.equal(latestCheckpoint(join(dir, 'none')), null);
});

test('a failure while writing leaves no checkpoint folder and no temp folder; extra files are included', () => {
  const dir = root();
  assert.throws(
    () =>
      saveCheckpoint(
        dir,
        { step: 3, epoch: 0, options, tensors: tensors(3) },
        {
          writeExtra: () => {
            throw new Error('disk full');
          },
        },
      ),
    /disk full/,
  );
  assert.deepEqual(readdirSync(dir), []);
  const p = saveCheckpoint(
    dir,
    { step: 3, epoch: 0, options, tensors: tensors(3) },
    {
      writeExtra: (d) => writeFileSync(join(d, 'adapter_config.json'), '{}'),
    },
  );
  assert.equal(readFileSync(join(p, 'adapter_config.json'), 'utf8'), '{}');
  // A stale temp folder from a crashed process is not a checkpoint and is cleaned on the next save.
  mkdirSync(join(dir, '.checkpoint-5.tmp-999999-abcdef'));
  assert.equal(latestCheckpoint(dir), p);
  saveCheckpoint(dir, { step: 4, epoch: 0, options, tensors: tensors(4) });
  assert.ok(!existsSync(join(dir, '.checkpoint-5.tmp-999999-abcdef')));
});

test('resume refuses different options, listing each difference; cadence/verbosity keys may change', () => {
  const dir = root();
  const ck = loadCheckpoint(saveCheckpoint(dir, { step: 1, epoch: 0, options, tensors: tensors(1) }));
  assert.doesNotThrow(() => assertResumable(ck, { ...options, progress: false, saveSteps: 5 }));
  assert.doesNotThrow(() =>
    assertResumable(ck, { seed: 42, modules: ['q_proj', 'v_proj'], epochs: 3, learningRate: 3e-4 }),
  );
  assert.deepEqual(
    diffOptions(options, { ...options, learningRate: 1e-4, modules: ['q_proj'], dropout: 0.1 }),
    [
      'dropout: (unset) in the checkpoint, 0.1 now',
      'learningRate: 0.0003 in the checkpoint, 0.0001 now',
      'modules: ["q_proj","v_proj"] in the checkpoint, ["q_proj"] now',
    ],
  );
  assert.throws(
    () => assertResumable(ck, { ...options, epochs: 4, seed: 1 }),
    (e: unknown) =>
      e instanceof InputError &&
      e.source === ck.dir &&
      e.problem.includes('epochs: 3 in the checkpoint, 4 now') &&
      e.problem.includes('seed: 42 in the checkpoint, 1 now'),
  );
});

test('broken checkpoints are InputErrors naming the file', () => {
  const dir = root();
  const p = saveCheckpoint(dir, { step: 1, epoch: 0, options, tensors: tensors(1) });
  assert.throws(() => loadCheckpoint(join(dir, 'checkpoint-99')), /no such checkpoint folder/);
  writeFileSync(join(p, STATE_FILE), '{"format": "other"}');
  assert.throws(
    () => loadCheckpoint(p),
    (e: unknown) => e instanceof InputError && /not a nuggets training checkpoint/.test(e.problem),
  );
  writeFileSync(join(p, STATE_FILE), '{oops');
  assert.throws(
    () => loadCheckpoint(p),
    (e: unknown) => e instanceof InputError && e.source === join(p, STATE_FILE),
  );
  const q = saveCheckpoint(dir, { step: 2, epoch: 0, options, tensors: tensors(2) });
  const st = JSON.parse(readFileSync(join(q, STATE_FILE), 'utf8'));
  st.tensors.push('ghost');
  writeFileSync(join(q, STATE_FILE), JSON.stringify(st));
  assert.throws(() => loadCheckpoint(q), /missing tensors listed in trainer_state.json: ghost/);
});
