// Activation checkpointing (LlamaModel.setGradientCheckpointing): the recomputed backward gives the very
// gradients of the unchecked path (same kernels, same order, same LoRA dropout masks), and leaves the
// dropout RNG where the unchecked step leaves it, so later steps match too.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { resolveOptions } from '../src/config/cli.js';
import { Rng } from '../src/engine/rng.js';
import { runTrain } from '../src/train/run.js';
import { heldOutStories, STORIES260K } from './model-helpers.js';
import { randomModel, tinyConfig } from '../src/model/random.js';
import type { LlamaModel } from '../src/model/model.js';

const config = tinyConfig({ numLayers: 3, vocabSize: 40, tieWordEmbeddings: false, attentionBias: true });

function build(checkpointing: boolean): LlamaModel {
  const m = randomModel(config, 5);
  const rng = new Rng(17);
  for (const [name, mod] of m.modules()) {
    const r = 2;
    const inDim = 'inDim' in mod ? mod.inDim : mod.vocab;
    const outDim = 'outDim' in mod ? mod.outDim : mod.dim;
    m.attachLora(name, {
      r,
      alpha: 4,
      dropout: 0.3,
      A: rng.fillNormal(new Float32Array(r * inDim), 0, 0.3),
      B: rng.fillNormal(new Float32Array(outDim * r), 0, 0.3),
    });
  }
  m.enableGrads();
  m.setTraining(true);
  m.setGradientCheckpointing(checkpointing);
  return m;
}

function batch(seed: number) {
  const B = 2,
    T = 7;
  const rng = new Rng(seed);
  const ids = Int32Array.from({ length: B * T }, () => rng.int(config.vocabSize));
  const attentionMask = Uint8Array.from([0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1]);
  const targets = Int32Array.from({ length: B * T }, (_, i) =>
    attentionMask[i] && i % 3 !== 0 ? rng.int(config.vocabSize) : -1,
  );
  return { batch: { ids, B, T, attentionMask }, targets };
}

/** Every gradient of a model after `steps` loss+backward calls (accumulated, as micro-batches are). */
function gradients(m: LlamaModel, steps: number): Map<string, Float32Array> {
  m.zeroGrads();
  const losses: number[] = [];
  for (let s = 0; s < steps; s++) {
    const { batch: b, targets } = batch(100 + s);
    losses.push(m.loss(b, targets));
    m.backward();
  }
  const out = new Map<string, Float32Array>();
  for (const p of m.params.unique()) out.set(p.name, p.grad!.slice());
  for (const [name, l] of m.loras()) {
    out.set(`${name}.dA`, l.dA.slice());
    out.set(`${name}.dB`, l.dB.slice());
  }
  out.set('inputGrad', m.inputGrad.slice());
  out.set('losses', Float32Array.from(losses));
  out.set('rng', Float32Array.from(m.mode.rng.getState().slice(0, 4)));
  return out;
}

test('checkpointed gradients equal the unchecked ones exactly, dropout included, over several micro-batches', () => {
  const plain = gradients(build(false), 3);
  const cp = build(true);
  assert.equal(cp.gradientCheckpointing, true);
  const checked = gradients(cp, 3);
  assert.deepEqual([...checked.keys()], [...plain.keys()]);
  let nonZero = 0;
  for (const [k, g] of plain) {
    assert.deepEqual(checked.get(k), g, k);
    if (g.some((v) => v !== 0)) nonZero++;
  }
  // every parameter and factor really got a gradient (a test of zeros against zeros proves nothing)
  assert.ok(nonZero >= plain.size - 1, `${nonZero} of ${plain.size} non-zero`);
});

test('switching checkpointing off restores per-layer buffers and the same gradients', () => {
  const m = build(true);
  const a = gradients(m, 1);
  m.setGradientCheckpointing(false);
  assert.equal(m.gradientCheckpointing, false);
  const ref = build(false);
  gradients(ref, 1);
  // both models are now one step along the same RNG stream: the next step matches as well
  assert.deepEqual(gradients(m, 1).get('losses'), gradients(ref, 1).get('losses'));
  assert.ok(a.get('losses')![0] > 0);
});

test('inputs_embeds batches are recomputed from the given embeddings', () => {
  const run = (cpOn: boolean) => {
    const m = build(cpOn);
    const { batch: b, targets } = batch(7);
    const emb = new Rng(3).fillNormal(new Float32Array(b.B * b.T * config.hiddenSize));
    m.zeroGrads();
    m.loss({ ...b, inputEmbeds: emb }, targets);
    m.backward();
    return m.inputGrad.slice();
  };
  assert.deepEqual(run(true), run(false));
});

test('nuggets train --gradient-checkpointing writes the same adapter bytes and log as the unchecked run', () => {
  const dir = mkdtempSync(join(tmpdir(), 'nuggets-cp-'));
  try {
    const data = join(dir, 'train.jsonl');
    writeFileSync(
      data,
      heldOutStories(6)
        .map((s) => JSON.stringify({ text: s }))
        .join('\n') + '\n',
    );
    const run = (gradientCheckpointing: boolean) => {
      const out = join(dir, gradientCheckpointing ? 'cp' : 'plain');
      runTrain(
        resolveOptions('train', {
          student: join(STORIES260K, 'checkpoint_legacy.bin'),
          data,
          out,
          epochs: 1,
          batchSize: 6,
          microBatchSize: 3,
          learningRate: 5e-3,
          warmupRatio: 0,
          maxLength: 48,
          dropout: 0.1,
          progress: false,
          gradientCheckpointing,
        }),
      );
      const log = readFileSync(join(out, 'trainer_log.jsonl'), 'utf8').replace(
        /"(elapsed|time|timestamp|tokens_per_second)[^,}]*[,]?/g,
        '',
      );
      return { adapter: readFileSync(join(out, 'adapter_model.safetensors')), log };
    };
    const plain = run(false);
    const cp = run(true);
    assert.ok(plain.adapter.equals(cp.adapter), 'adapter bytes equal');
    assert.equal(cp.log, plain.log);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
