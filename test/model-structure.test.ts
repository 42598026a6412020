/**
 * Loading and structure: bad weights are refused with the source and tensor named; a model run layer
 * by layer from separately loaded parts (as the streaming sensitivity code does: boundary hidden
 * states saved, each layer reloaded and its forward recomputed right before its backward) gives
 * the same loss and gradients as the whole model; padding does not change real tokens' outputs.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { InputError } from '../src/errors.js';
import { Rng } from '../src/engine/rng.js';
import { randomModel, randomWeights, tinyConfig } from '../src/model/random.js';
import { LlamaModel } from '../src/model/model.js';
import { MemoryWeights } from '../src/model/weights.js';
import { DecoderLayer } from '../src/model/block.js';
import { Head } from '../src/model/head.js';
import { Embedding } from '../src/model/embedding.js';
import { loadOuterParams } from '../src/model/params.js';
import { padBatch, seqContext, type Batch } from '../src/model/batch.js';
import { Workspace } from '../src/model/workspace.js';

const cfg = tinyConfig({ attentionBias: true, numLayers: 3 });

function editWeights(edit: (m: Map<string, { shape: number[]; data: Float32Array }>) => void): MemoryWeights {
  const w = randomWeights(cfg, 1);
  const m = new Map(w.names().map((n) => [n, { shape: w.info(n).shape, data: w.get(n) }]));
  edit(m);
  return new MemoryWeights('bad-checkpoint', m);
}

function assertInputError(fn: () => unknown, re: RegExp): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof InputError, `expected an InputError, got ${String(e)}`);
    assert.match(e.message, /^bad-checkpoint: /);
    assert.match(e.message, re);
    return true;
  });
}

test('missing, misshapen and unexplained tensors are refused, naming the source and the tensor', () => {
  assertInputError(
    () =>
      LlamaModel.load({
        config: cfg,
        weights: editWeights((m) => m.delete('model.layers.2.mlp.up_proj.weight')),
      }),
    /missing tensor model\.layers\.2\.mlp\.up_proj\.weight/,
  );
  assertInputError(
    () =>
      LlamaModel.load({
        config: cfg,
        weights: editWeights((m) =>
          m.set('model.layers.0.self_attn.k_proj.weight', { shape: [16, 16], data: new Float32Array(256) }),
        ),
      }),
    /model\.layers\.0\.self_attn\.k_proj\.weight has shape \[16, 16\] but the config implies \[12, 16\]/,
  );
  assertInputError(
    () =>
      LlamaModel.load({
        config: cfg,
        weights: editWeights((m) =>
          m.set('model.layers.3.mlp.up_proj.weight', { shape: [24, 16], data: new Float32Array(384) }),
        ),
      }),
    /not explained by the model config: model\.layers\.3\.mlp\.up_proj\.weight/,
  );
  // a tied model whose file still carries lm_head.weight loads (HF ignores it), old inv_freq buffers too
  const tied = { ...cfg, tieWordEmbeddings: true };
  const w = randomWeights(cfg, 1);
  const m = new Map(w.names().map((n) => [n, { shape: w.info(n).shape, data: w.get(n) }]));
  m.set('model.layers.0.self_attn.rotary_emb.inv_freq', { shape: [3], data: new Float32Array(3) });
  const model = LlamaModel.load({ config: tied, weights: new MemoryWeights('tied', m) });
  assert.equal(model.params.get('lm_head.weight'), model.params.get('model.embed_tokens.weight'));
});

test('bad token ids and all-ignored targets are clear errors', () => {
  const model = randomModel(cfg, 2);
  assert.throws(
    () => model.forward({ ids: Int32Array.from([1, 2, 32]), B: 1, T: 3 }),
    /token id 32 at position 2 is outside the vocabulary \[0, 32\)/,
  );
  assert.throws(() => model.forward({ ids: Int32Array.from([1, 2]), B: 1, T: 3 }), /2 ids for B\*T = 3/);
  assert.throws(
    () => model.loss({ ids: Int32Array.from([1, 2, 3]), B: 1, T: 3 }, Int32Array.from([-1, -1, -1])),
    /every target is ignored/,
  );
  assert.throws(
    () => model.loss({ ids: Int32Array.from([1, 2, 3]), B: 1, T: 3 }, Int32Array.from([-1, 40, -1])),
    /target id 40/,
  );
  assert.throws(() => model.backward(), /call loss\(\) first/);
});

test('layer-by-layer streaming (separately loaded layers, recomputed forward) equals the whole model', () => {
  const weights = randomWeights(cfg, 3);
  const rng = new Rng(5);
  const seqs = [
    [1, 5, 9, 3, 7, 2],
    [4, 8, 1],
  ];
  const batch = padBatch(seqs, 'right');
  const targets = new Int32Array(batch.B * batch.T).fill(-1);
  seqs.forEach((s, b) => s.forEach((_, t) => t >= 2 && (targets[b * batch.T + t] = rng.int(cfg.vocabSize))));

  const whole = LlamaModel.load({ config: cfg, weights });
  whole.enableGrads();
  const lossWhole = whole.loss(batch, targets);
  whole.backward();

  // streaming: outer params once; each layer loaded, run, its output saved, dropped
  const N = batch.B * batch.T,
    d = cfg.hiddenSize;
  const ctx = seqContext(batch);
  const ws = new Workspace();
  const outer = loadOuterParams(weights, cfg);
  outer.enableGrads();
  const embed = new Embedding('model.embed_tokens', outer.get('model.embed_tokens.weight'), ws);
  const boundaries: Float32Array[] = [new Float32Array(N * d)];
  embed.forward(boundaries[0], batch.ids, N);
  for (let l = 0; l < cfg.numLayers; l++) {
    const layer = DecoderLayer.load(weights, cfg, l, ws);
    boundaries.push(layer.forward(boundaries[l], ctx).slice());
  }
  const head = new Head(cfg, outer, ws);
  head.forward(boundaries[cfg.numLayers], N);
  const { loss } = head.loss(targets);
  assert.ok(Math.abs(loss - lossWhole) < 1e-6, `${loss} vs ${lossWhole}`);
  let dh = new Float32Array(N * d);
  head.backward(dh);
  for (let l = cfg.numLayers - 1; l >= 0; l--) {
    const layer = DecoderLayer.load(weights, cfg, l, ws);
    layer.params.enableGrads();
    layer.forward(boundaries[l], ctx); // recompute this layer's activations
    const dx = new Float32Array(N * d);
    layer.backward(dh, dx);
    for (const p of layer.params.unique()) {
      const want = whole.params.get(p.name).grad!;
      for (let i = 0; i < want.length; i++)
        assert.ok(Math.abs(p.grad![i] - want[i]) <= 1e-5 * (1 + Math.abs(want[i])), `${p.name}[${i}]`);
    }
    layer.releaseActivations();
    dh = dx;
  }
  for (let i = 0; i < N * d; i++) assert.ok(Math.abs(dh[i] - whole.inputGrad[i]) <= 1e-6, `inputGrad[${i}]`);
  embed.backward(dh, batch.ids, N);
  for (const name of ['model.embed_tokens.weight', 'lm_head.weight', 'model.norm.weight']) {
    const got = outer.get(name).grad!,
      want = whole.params.get(name).grad!;
    for (let i = 0; i < want.length; i++)
      assert.ok(Math.abs(got[i] - want[i]) <= 1e-5 * (1 + Math.abs(want[i])), `${name}[${i}]`);
  }
});

test('padding (left or right) leaves the logits of real tokens unchanged', () => {
  const model = randomModel(cfg, 4);
  const V = cfg.vocabSize;
  const seq = [1, 9, 4, 22, 7];
  const alone = model.forward({ ids: Int32Array.from(seq), B: 1, T: seq.length }).slice();
  for (const side of ['left', 'right'] as const) {
    const batch: Batch = padBatch([seq, [3, 3, 3, 3, 3, 3, 3, 3]], side, 5);
    const logits = model.forward(batch);
    const off = side === 'left' ? batch.T - seq.length : 0;
    for (let t = 0; t < seq.length; t++) {
      for (let v = 0; v < V; v++) {
        const a = logits[(off + t) * V + v],
          b = alone[t * V + v];
        assert.ok(Math.abs(a - b) <= 1e-5 * (1 + Math.abs(b)), `${side} t=${t} v=${v}: ${a} vs ${b}`);
      }
    }
  }
});

test('LoRA at init (B = 0) keeps the function; the subtract trick W - B·A with LoRA (B, A) is the identity', () => {
  const model = randomModel(cfg, 6);
  const batch: Batch = { ids: Int32Array.from([1, 4, 9, 16, 25]), B: 1, T: 5 };
  const base = model.forward(batch).slice();
  const rng = new Rng(8);
  for (const name of model.modules().keys()) model.attachLora(name, { r: 2, alpha: 4, rng });
  const same = model.forward(batch);
  for (let i = 0; i < base.length; i++) assert.ok(Math.abs(same[i] - base[i]) < 1e-6);
  // q_proj with a non-zero LoRA (B, A) and base W - scale·B·A: same function as the untouched model
  const q = model.layers[1].q;
  const lora = q.attachLora({
    r: 2,
    alpha: 4,
    A: rng.fillNormal(new Float32Array(2 * q.inDim)),
    B: rng.fillNormal(new Float32Array(q.outDim * 2)),
  });
  const W = q.weight.data;
  for (let o = 0; o < q.outDim; o++) {
    for (let i = 0; i < q.inDim; i++) {
      let s = 0;
      for (let k = 0; k < 2; k++) s += lora.B[o * 2 + k] * lora.A[k * q.inDim + i];
      W[o * q.inDim + i] -= lora.scale * s;
    }
  }
  const again = model.forward(batch);
  for (let i = 0; i < base.length; i++)
    assert.ok(Math.abs(again[i] - base[i]) < 1e-4, `${i}: ${again[i]} vs ${base[i]}`);
  // and a LoRA without the subtraction does change it (the check above is not vacuous)
  q.weight.data.set(randomWeights(cfg, 6).get('model.layers.1.self_attn.q_proj.weight'));
  const changed = model.forward(batch);
  assert.ok(changed.some((v, i) => Math.abs(v - base[i]) > 1e-3));
});

test('rowLoss gives per-token losses; gradScale scales the gradient (accumulated batches)', () => {
  const model = randomModel(cfg, 7);
  model.enableGrads();
  const batch: Batch = { ids: Int32Array.from([1, 4, 9, 16, 25, 3]), B: 2, T: 3 };
  const targets = Int32Array.from([4, 9, -1, -1, 25, 3]);
  const rowLoss = new Float32Array(6);
  const loss = model.loss(batch, targets, { rowLoss });
  assert.equal(rowLoss[2], 0);
  assert.equal(rowLoss[3], 0);
  assert.ok(Math.abs(rowLoss.reduce((a, b) => a + b) / 4 - loss) < 1e-6);
  model.backward();
  const g1 = model.params.get('model.layers.0.mlp.down_proj.weight').grad!.slice();
  model.zeroGrads();
  const loss2 = model.loss(batch, targets, { gradScale: 2 / 4 });
  assert.equal(loss2, loss);
  model.backward();
  const g2 = model.params.get('model.layers.0.mlp.down_proj.weight').grad!;
  for (let i = 0; i < g1.length; i++) assert.ok(Math.abs(g2[i] - 2 * g1[i]) <= 1e-6 * (1 + Math.abs(g1[i])));
  assert.ok(g1.some((v) => Math.abs(v) > 1e-4));
});
