/**
 * Gradients of the LLaMA model against float64 central finite differences, for EVERY parameter
 * tensor (every element of small ones, 64 seeded-random elements of larger ones), the input activations, and the LoRA factors on every module type (q,k,v,o,gate,up,down,
 * embedding, lm_head), on tiny random configs with GQA, head_dim != hidden/heads, left and right
 * padding in one batch, an answer-only target mask and LoRA dropout (same seeded mask each eval).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setKernels } from '../src/engine/backend.js';
import { tsKernels } from '../src/engine/ts/index.js';
import { setPrecision } from '../src/engine/alloc.js';
import { Rng } from '../src/engine/rng.js';
import { randomModel, tinyConfig } from '../src/model/random.js';
import type { ModelConfig } from '../src/model/config.js';
import type { LlamaModel } from '../src/model/model.js';
import type { Batch } from '../src/model/batch.js';

setKernels(tsKernels);
setPrecision('f64');

const EPS = 1e-5;
/** Elements checked per tensor: all of a small tensor, else this many distinct ones drawn by a seeded RNG. */
const PER_TENSOR = 64;
const pickRng = new Rng(2024);

function indicesToCheck(n: number): number[] {
  const all = Array.from({ length: n }, (_, i) => i);
  if (n <= PER_TENSOR) return all;
  return pickRng
    .shuffle(all)
    .slice(0, PER_TENSOR)
    .sort((a, b) => a - b);
}

/** Batch: row 0 right-padded, row 1 left-padded, row 2 unpadded. */
function makeBatch(c: ModelConfig): { batch: Batch; targets: Int32Array } {
  const B = 3,
    T = 6;
  const rng = new Rng(7);
  const ids = new Int32Array(B * T);
  for (let i = 0; i < ids.length; i++) ids[i] = rng.int(c.vocabSize);
  const attentionMask = Uint8Array.from([1, 1, 1, 1, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1]);
  // next-token targets; -1 on padding and on the "prompt" (first two real tokens of each row)
  const targets = new Int32Array(B * T).fill(-1);
  for (let b = 0; b < B; b++) {
    let seen = 0;
    for (let t = 0; t < T; t++) {
      const i = b * T + t;
      if (!attentionMask[i]) continue;
      seen++;
      if (seen > 2 && t + 1 < T && attentionMask[i + 1]) targets[i] = ids[i + 1];
      else if (seen > 2 && (t + 1 === T || !attentionMask[i + 1])) targets[i] = rng.int(c.vocabSize);
    }
  }
  return { batch: { ids, B, T, attentionMask }, targets };
}

function attachAllLoras(m: LlamaModel, dropout: number): void {
  const rng = new Rng(11);
  for (const [name, mod] of m.modules()) {
    const r = 3;
    const inDim = 'inDim' in mod ? mod.inDim : mod.vocab;
    const outDim = 'outDim' in mod ? mod.outDim : mod.dim;
    // both factors non-zero, so dA and dB are both exercised
    const A = rng.fillNormal(new Float32Array(r * inDim), 0, 0.3);
    const B = rng.fillNormal(new Float32Array(outDim * r), 0, 0.3);
    m.attachLora(name, { r, alpha: 6, dropout, A, B });
  }
}

interface Checked {
  name: string;
  n: number;
  maxErr: number;
}

/** Compares analytic grad `g` of array `x` with central differences of `f`; returns the worst scaled error. */
function fdCheck(name: string, x: Float32Array, g: Float32Array, f: () => number): Checked {
  let maxErr = 0;
  for (const i of indicesToCheck(x.length)) {
    const x0 = x[i];
    x[i] = x0 + EPS;
    const lp = f();
    x[i] = x0 - EPS;
    const lm = f();
    x[i] = x0;
    const fd = (lp - lm) / (2 * EPS);
    const err = Math.abs(fd - g[i]) / (1e-4 + Math.abs(fd) + Math.abs(g[i]));
    const abs = Math.abs(fd - g[i]);
    // relative error, except where both are tiny (then absolute)
    const e = abs < 1e-8 ? 0 : err;
    if (e > maxErr) maxErr = e;
    if (e > 1e-5) assert.fail(`${name}[${i}]: analytic ${g[i]} vs finite difference ${fd}`);
  }
  return { name, n: x.length, maxErr };
}

function runCheck(c: ModelConfig, dropout: number): Checked[] {
  const m = randomModel(c, 3);
  attachAllLoras(m, dropout);
  m.enableGrads();
  m.setTraining(dropout > 0);
  const { batch, targets } = makeBatch(c);
  const rngState = m.mode.rng.getState();
  const lossFn = (b: Batch = batch) => {
    m.mode.rng.setState(rngState); // identical dropout masks on every evaluation
    return m.loss(b, targets);
  };
  m.zeroGrads();
  lossFn();
  m.backward();
  // snapshot the analytic gradients (later loss calls do not touch them, but be explicit)
  const checked: Checked[] = [];
  const grads = new Map<string, Float32Array>();
  for (const p of m.params.unique()) grads.set(p.name, p.grad!.slice());
  const inGrad = m.inputGrad.slice();
  const loraGrads = new Map<string, { dA: Float32Array; dB: Float32Array }>();
  for (const [name, l] of m.loras()) loraGrads.set(name, { dA: l.dA.slice(), dB: l.dB.slice() });

  for (const p of m.params.unique())
    checked.push(fdCheck(p.name, p.data, grads.get(p.name)!, () => lossFn()));
  for (const [name, l] of m.loras()) {
    const g = loraGrads.get(name)!;
    checked.push(fdCheck(`${name}.lora_A`, l.A, g.dA, () => lossFn()));
    checked.push(fdCheck(`${name}.lora_B`, l.B, g.dB, () => lossFn()));
  }
  // input activations: run from the embedding output itself (inputs_embeds)
  lossFn();
  const d = c.hiddenSize,
    N = batch.B * batch.T;
  const emb = new Float64Array(N * d) as unknown as Float32Array;
  // embedding output = E[id] + LoRA delta; take it from the embedding module directly
  m.embed.forward(emb, batch.ids, N);
  const viaEmb: Batch = { ...batch, inputEmbeds: emb };
  const base = lossFn(viaEmb);
  assert.ok(Math.abs(base - lossFn()) < 1e-12, 'inputs_embeds path gives the same loss');
  checked.push(fdCheck('inputGrad', emb, inGrad, () => lossFn(viaEmb)));
  return checked;
}

test('gradients of every parameter, LoRA factor and input activation match finite differences (qwen2-style: q/k/v bias, untied, GQA, head_dim != d/H)', () => {
  const c = tinyConfig({
    arch: 'qwen2',
    attentionBias: true,
    headDim: 6,
    numHeads: 4,
    numKvHeads: 2,
    hiddenSize: 16,
    ropeTheta: 1000,
  });
  const checked = runCheck(c, 0);
  const names = new Set(checked.map((x) => x.name));
  // every tensor of the model was checked, and every module's LoRA
  for (const n of [
    'model.embed_tokens.weight',
    'lm_head.weight',
    'model.norm.weight',
    'model.layers.1.self_attn.k_proj.bias',
    'model.layers.0.mlp.down_proj.weight',
    'model.layers.1.post_attention_layernorm.weight',
    'model.embed_tokens.lora_A',
    'lm_head.lora_B',
    'model.layers.0.self_attn.v_proj.lora_A',
    'inputGrad',
  ])
    assert.ok(names.has(n), n);
  assert.equal(checked.length, 3 + 2 * 12 + 2 * 16 + 1);
});

test('gradients with LoRA dropout (training mode), tied embeddings, o/MLP biases and llama2.c pair RoPE', () => {
  const c = tinyConfig({
    tieWordEmbeddings: true,
    attentionBias: true,
    oBias: true,
    mlpBias: true,
    ropeStyle: 'pairs',
    numKvHeads: 1,
    headDim: 4,
    numLayers: 1,
  });
  const checked = runCheck(c, 0.3);
  assert.ok(!checked.some((x) => x.name === 'lm_head.weight'), 'tied lm_head shares the embedding gradient');
});
