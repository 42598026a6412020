// docs/method.md step 2: layer scores and the four selection methods, on hand-made sensitivities.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { layerScores, selectLayers } from '../src/transfer/layers.js';
import { InputError } from '../src/errors.js';
import { modelTensors, tinyConfig } from './transfer-helpers.js';

test('layer score = sum of S over the 7 linears and 2 norms of the layer, nothing else', () => {
  const cfg = tinyConfig({ numLayers: 3 });
  // Every element of layer l's tensors is (l + 1); embedding, final norm and lm_head are huge and must not count.
  const sens = modelTensors(cfg, (name, n) => {
    const m = /^model\.layers\.(\d+)\./.exec(name);
    return new Float32Array(n).fill(m ? Number(m[1]) + 1 : 1e6);
  });
  const d = cfg.hiddenSize,
    f = cfg.intermediateSize,
    qd = cfg.numHeads * cfg.headDim,
    kvd = cfg.numKvHeads * cfg.headDim;
  const perLayer = qd * d + 2 * kvd * d + d * qd + 3 * f * d + 2 * d; // elements in one layer
  const scores = layerScores(sens, cfg.numLayers, 'sens');
  assert.deepEqual(
    Array.from(scores),
    [1, 2, 3].map((v) => v * perLayer),
  );
});

test('a layer missing a tensor, or a layer beyond the teacher, is refused by name', () => {
  const cfg = tinyConfig({ numLayers: 2 });
  const sens = modelTensors(cfg, (_n, n) => new Float32Array(n).fill(1));
  const missing = {
    names: () => sens.names().filter((n) => n !== 'model.layers.1.post_attention_layernorm.weight'),
    get: (n: string) => sens.get(n),
  };
  assert.throws(
    () => layerScores(missing, 2, 'sens.safetensors'),
    (e: unknown) =>
      e instanceof InputError &&
      /sens\.safetensors/.test(e.message) &&
      /model\.layers\.1\.post_attention_layernorm\.weight/.test(e.message),
  );
  assert.throws(() => layerScores(sens, 1, 'sens'), /names layer 1, but the teacher has 1 layers/);
  const nan = {
    names: () => sens.names(),
    get: (n: string) => {
      const t = sens.get(n);
      if (n.includes('layers.0.mlp.up')) t[3] = NaN;
      return t;
    },
  };
  assert.throws(() => layerScores(nan, 2, 'sens'), /model\.layers\.0\.mlp\.up_proj\.weight holds NaN/);
});

test('sensitivity selection keeps the top L_s layers, then depth order; ties go to the shallower layer', () => {
  const scores = [5, 9, 1, 9, 7, 3];
  assert.deepEqual(selectLayers('sensitivity', 6, 3, { scores }).teacherLayers, [1, 3, 4]);
  assert.deepEqual(selectLayers('sensitivity', 6, 1, { scores }).teacherLayers, [1]); // tie 9/9 -> layer 1
  assert.deepEqual(selectLayers('sensitivity', 6, 6, { scores }).teacherLayers, [0, 1, 2, 3, 4, 5]);
  assert.deepEqual(selectLayers('sensitivity', 6, 3, { scores }).scores, scores);
});

test('first and last', () => {
  assert.deepEqual(selectLayers('first', 6, 4).teacherLayers, [0, 1, 2, 3]);
  assert.deepEqual(selectLayers('last', 6, 4).teacherLayers, [2, 3, 4, 5]);
});

test('random: seeded, distinct, sorted, and different seeds give different subsets', () => {
  const a = selectLayers('random', 40, 10, { seed: 7 }).teacherLayers;
  const b = selectLayers('random', 40, 10, { seed: 7 }).teacherLayers;
  assert.deepEqual(a, b);
  assert.equal(new Set(a).size, 10);
  assert.deepEqual(
    a,
    [...a].sort((x, y) => x - y),
  );
  assert.ok(a.every((x) => x >= 0 && x < 40));
  const others = [1, 2, 3, 4, 5].map((s) => selectLayers('random', 40, 10, { seed: s }).teacherLayers.join());
  assert.ok(
    others.some((o) => o !== a.join()),
    'seeds must matter',
  );
  assert.throws(() => selectLayers('random', 40, 10), /needs a seed/);
});

test('a student with more layers than the teacher is refused', () => {
  assert.throws(
    () => selectLayers('first', 4, 5),
    (e: unknown) => e instanceof InputError && /5 layers but the teacher only 4/.test(e.message),
  );
  assert.throws(() => selectLayers('sensitivity', 4, 2, { scores: [1, 2] }), /needs 4 layer scores/);
});
