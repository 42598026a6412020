/**
 * The logit-distillation term against float64 central finite differences: the term alone
 * (T²·KL(p_t ‖ p_s) per answer row, gradient T·(p_s − p_t)), and the model's whole training loss
 * (1 − λ)·CE + λ·T²·KL with respect to every LoRA factor of a tiny random model; plus the value of the
 * KL against a direct float64 evaluation of its definition.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setKernels } from '../src/engine/backend.js';
import { tsKernels } from '../src/engine/ts/index.js';
import { setPrecision } from '../src/engine/alloc.js';
import { Rng } from '../src/engine/rng.js';
import { randomModel, tinyConfig } from '../src/model/random.js';
import { distillLoss } from '../src/distill/kl.js';
import { LoraParams } from '../src/train/lora-params.js';

setKernels(tsKernels);
setPrecision('f64');

const EPS = 1e-5;

function close(name: string, analytic: number, fd: number): void {
  const abs = Math.abs(fd - analytic);
  if (abs < 1e-9) return;
  const rel = abs / (1e-6 + Math.abs(fd) + Math.abs(analytic));
  assert.ok(rel < 1e-6, `${name}: analytic ${analytic} vs finite difference ${fd}`);
}

test('T²·KL(teacher ‖ student): value by definition, gradient T·(p_s − p_t) vs finite differences', () => {
  const rows = 5,
    V = 7;
  const rng = new Rng(3);
  const logits = rng.fillNormal(
    new Float64Array(rows * V) as unknown as Float32Array,
    0,
    2,
  ) as unknown as Float64Array;
  const targets = Int32Array.from([-1, 2, 5, -1, 0]);
  const teacher = rng.fillNormal(
    new Float64Array(3 * V) as unknown as Float32Array,
    0,
    2,
  ) as unknown as Float64Array;
  for (const T of [1, 2, 0.5]) {
    const kd = { teacher, temperature: T };
    // the definition, row by row
    let want = 0;
    let k = 0;
    for (let r = 0; r < rows; r++) {
      if (targets[r] < 0) continue;
      const soft = (z: ArrayLike<number>, o: number) => {
        const e = Array.from({ length: V }, (_, c) => Math.exp(z[o + c] / T));
        const s = e.reduce((a, b) => a + b, 0);
        return e.map((x) => x / s);
      };
      const ps = soft(logits, r * V),
        pt = soft(teacher, k * V);
      for (let c = 0; c < V; c++) want += T * T * pt[c] * Math.log(pt[c] / ps[c]);
      k++;
    }
    const scale = 0.37;
    const grad = new Float64Array(rows * V).fill(1); // the term ADDS into grad
    const got = distillLoss(logits, targets, rows, V, kd, grad, scale);
    assert.ok(Math.abs(got - want) < 1e-12 * Math.max(1, Math.abs(want)), `T=${T}: ${got} vs ${want}`);
    assert.ok(got > 0);
    for (let i = 0; i < rows * V; i++) {
      const x0 = logits[i];
      logits[i] = x0 + EPS;
      const lp = distillLoss(logits, targets, rows, V, kd, null, 0);
      logits[i] = x0 - EPS;
      const lm = distillLoss(logits, targets, rows, V, kd, null, 0);
      logits[i] = x0;
      const fd = (scale * (lp - lm)) / (2 * EPS);
      close(`T=${T} dlogits[${i}]`, grad[i] - 1, fd);
    }
    // rows with target -1 get nothing
    for (const r of [0, 3]) for (let c = 0; c < V; c++) assert.equal(grad[r * V + c], 1);
  }
  // the teacher rows must match the answer rows one for one
  assert.throws(
    () =>
      distillLoss(logits, targets, rows, V, { teacher: teacher.subarray(0, 2 * V), temperature: 1 }, null, 1),
    /teacher rows/,
  );
});

test('model loss (1 − λ)·CE + λ·T²·KL: LoRA gradients vs finite differences, λ = 0 is plain CE', () => {
  const c = tinyConfig({
    vocabSize: 13,
    hiddenSize: 8,
    intermediateSize: 12,
    numLayers: 2,
    numHeads: 2,
    numKvHeads: 1,
  });
  const m = randomModel(c, 5);
  const rng = new Rng(9);
  for (const name of ['model.layers.0.self_attn.q_proj', 'model.layers.1.mlp.down_proj', 'lm_head']) {
    const mod = m.module(name);
    const inDim = 'inDim' in mod ? mod.inDim : mod.vocab;
    const outDim = 'outDim' in mod ? mod.outDim : mod.dim;
    m.attachLora(name, {
      r: 2,
      alpha: 4,
      dropout: 0,
      A: rng.fillNormal(new Float32Array(2 * inDim), 0, 0.3),
      B: rng.fillNormal(new Float32Array(outDim * 2), 0, 0.3),
    });
  }
  const params = LoraParams.gather(m);
  const B = 2,
    T = 5;
  const ids = new Int32Array(B * T);
  for (let i = 0; i < ids.length; i++) ids[i] = rng.int(c.vocabSize);
  const attentionMask = Uint8Array.from([1, 1, 1, 1, 0, 1, 1, 1, 1, 1]);
  const targets = Int32Array.from([-1, 4, 7, -1, -1, -1, -1, 2, 9, -1]);
  const batch = { ids, B, T, attentionMask };
  const teacher = rng.fillNormal(new Float64Array(4 * c.vocabSize) as unknown as Float32Array, 0, 1.5);
  const kd = { teacher, lambda: 0.3, temperature: 2 };
  const loss = () => m.loss(batch, targets, { kd, gradScale: 0.25 });
  params.zeroGrad();
  const l0 = loss();
  m.backward();
  const g = Float64Array.from(params.grad);
  let checked = 0;
  for (let i = 0; i < params.size; i += 3) {
    const x0 = params.data[i];
    params.data[i] = x0 + EPS;
    const lp = loss();
    params.data[i] = x0 - EPS;
    const lm = loss();
    params.data[i] = x0;
    // the loss returned is the mean over the 4 answer tokens; the gradient carries gradScale = 1/4
    close(`lora[${i}]`, g[i], (lp - lm) / (2 * EPS));
    checked++;
  }
  assert.ok(checked > 20);
  // the loss value: (1 − λ)·CE + λ·(T²·KL)
  const ce = m.loss(batch, targets);
  const kl = (() => {
    const logits = Float64Array.from(m.forward(batch));
    return distillLoss(logits, targets, B * T, c.vocabSize, kd, null, 0) / 4;
  })();
  assert.ok(Math.abs(l0 - (0.7 * ce + 0.3 * kl)) < 1e-12, `${l0} vs ${0.7 * ce + 0.3 * kl}`);
  // λ = 0: the very same loss and gradient bits as without the term
  params.zeroGrad();
  const a = m.loss(batch, targets, { kd: { ...kd, lambda: 0 } });
  m.backward();
  const ga = Float64Array.from(params.grad);
  params.zeroGrad();
  const b = m.loss(batch, targets);
  m.backward();
  assert.equal(a, b);
  assert.deepEqual(ga, Float64Array.from(params.grad));
});
