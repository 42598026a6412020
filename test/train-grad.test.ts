/**
 * Trainer-level gradient check (the per-module LoRA gradients are checked in model-grad.test.ts): the
 * gradient that one optimizer update uses — the flat LoRA group's gradient after accumulating
 * micro-batches of unequal token counts with the effective-batch token-mean weighting, LoRA dropout on
 * — against float64 central finite differences of the update's loss, for A and B of every module type
 * (q, k, v, o, gate, up, down, embed_tokens, lm_head). Also: that loss and gradient equal one
 * full-batch pass (independent of the micro-batch split), the reference normalisation.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setKernels } from '../src/engine/backend.js';
import { tsKernels } from '../src/engine/ts/index.js';
import { setPrecision } from '../src/engine/alloc.js';
import { Rng } from '../src/engine/rng.js';
import { randomWeights, tinyConfig } from '../src/model/random.js';
import { collate } from '../src/data/encode.js';
import { setupLora } from '../src/train/lora-init.js';
import { LoraParams } from '../src/train/lora-params.js';
import { batchGradient } from '../src/train/trainer.js';
import { ALL_KINDS } from '../src/transfer/modules.js';
import { randomExamples } from './train-helpers.js';

setKernels(tsKernels);
setPrecision('f64');

const config = tinyConfig({ arch: 'qwen2', attentionBias: true, numLayers: 2 });
const weights = randomWeights(config, 8);
const rows = randomExamples(5, config.vocabSize, 12, 4, 9);

function setup(dropout: number) {
  const s = setupLora(config, weights, {
    init: { kind: 'pissa' },
    kinds: ALL_KINDS,
    kindsAreDefault: false,
    rank: 2,
    alpha: 3,
    dropout,
    seed: 1,
  });
  return { model: s.model, params: LoraParams.gather(s.model) };
}

test('a full update gradient on the flat LoRA group matches float64 finite differences (every module type, A and B, dropout on)', () => {
  const { model, params } = setup(0.2);
  model.setTraining(true);
  const rngState = new Rng(77).getState();
  const lossAt = () => {
    model.mode.rng.setState(rngState); // the same dropout masks for every evaluation
    return batchGradient(model, params, rows, 2).loss;
  };
  lossAt();
  const grad = params.grad.slice();
  const pick = new Rng(3);
  const EPS = 1e-5;
  const kinds = new Set<string>();
  let checked = 0;
  for (const seg of params.segments) {
    for (let c = 0; c < 6; c++) {
      const i = seg.offset + pick.int(seg.length);
      const x0 = params.data[i];
      params.data[i] = x0 + EPS;
      const lp = lossAt();
      params.data[i] = x0 - EPS;
      const lm = lossAt();
      params.data[i] = x0;
      const fd = (lp - lm) / (2 * EPS);
      const err = Math.abs(fd - grad[i]) / (1e-6 + Math.abs(fd) + Math.abs(grad[i]));
      if (Math.abs(fd - grad[i]) > 1e-9 && err > 1e-6)
        assert.fail(
          `${seg.module}.lora_${seg.factor}[${i - seg.offset}]: analytic ${grad[i]} vs finite difference ${fd}`,
        );
      checked++;
    }
    kinds.add(`${seg.module.replace(/^model\.layers\.\d+\.(self_attn|mlp)\./, '')}.${seg.factor}`);
  }
  for (const k of [
    'q_proj',
    'k_proj',
    'v_proj',
    'o_proj',
    'gate_proj',
    'up_proj',
    'down_proj',
    'model.embed_tokens',
    'lm_head',
  ]) {
    assert.ok(kinds.has(`${k}.A`) && kinds.has(`${k}.B`), `checked ${k}`);
  }
  assert.equal(checked, params.segments.length * 6);
  // the gradient is not trivially zero anywhere: every segment has a non-zero entry
  for (const seg of params.segments)
    assert.ok(
      grad.subarray(seg.offset, seg.offset + seg.length).some((g) => g !== 0),
      seg.module,
    );
});

test('the update loss is the token mean over the whole effective batch, whatever the micro-batch split', () => {
  const { model, params } = setup(0);
  model.setTraining(false);
  // reference: one pass over the whole batch, the model's own mean over answer tokens
  const all = collate(rows);
  params.zeroGrad();
  const ref = model.loss({ ids: all.ids, B: all.B, T: all.T, attentionMask: all.attentionMask }, all.targets);
  model.backward();
  const refGrad = params.grad.slice();
  let tokens = 0;
  for (const r of rows) tokens += r.ids.length;
  for (const micro of [1, 2, 3, 5]) {
    const g = batchGradient(model, params, rows, micro);
    assert.ok(Math.abs(g.loss - ref) < 1e-12, `micro ${micro}: loss ${g.loss} vs ${ref}`);
    assert.equal(g.nTargets, all.nTargets);
    assert.equal(g.tokens, tokens);
    let worst = 0;
    for (let i = 0; i < refGrad.length; i++) worst = Math.max(worst, Math.abs(params.grad[i] - refGrad[i]));
    assert.ok(worst < 1e-12, `micro ${micro}: gradient differs by ${worst}`);
  }
  // a per-micro-batch mean (older HF) would differ here: the micro-batches hold unequal token counts
  const counts = [
    collate(rows.slice(0, 2)).nTargets,
    collate(rows.slice(2, 4)).nTargets,
    collate(rows.slice(4)).nTargets,
  ];
  assert.ok(new Set(counts).size > 1, `unequal micro-batch token counts ${counts}`);
});
