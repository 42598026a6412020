// Parity with an independent PyTorch reference of docs/method.md steps 1-4
// (scripts/fixtures/make_transfer_fixture.py, run by hand, writes fixtures/transfer/): nuggets'
// streaming sensitivity, then extract on nuggets' own S, must give the reference's layer
// selection and window offsets exactly and its rank-r products to 1e-4; the student initialised
// with the subtract trick gives the untouched student's logits to 1e-5.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { openHfModel } from '../src/io/checkpoint.js';
import { openSafetensors } from '../src/io/safetensors.js';
import { runSense } from '../src/transfer/sense/run.js';
import { fromIds } from '../src/transfer/sense/seeds.js';
import { MemorySink } from '../src/transfer/sense/sink.js';
import { extract } from '../src/transfer/extract.js';
import { subtractInit, addDelta } from '../src/transfer/inject.js';
import { modulePath, weightName } from '../src/transfer/modules.js';
import { LlamaModel } from '../src/model/model.js';

const DIR = join(import.meta.dirname, '..', 'fixtures', 'transfer');
const expected = JSON.parse(readFileSync(join(DIR, 'expected.json'), 'utf8')) as {
  rank: number;
  alpha: number;
  losses: number[];
  layer_scores: number[];
  selected_layers: number[];
  modules: Array<{
    module: string;
    offset: [number, number];
    shape: [number, number];
    singular_values: number[];
    energy_kept: number;
    share: number;
  }>;
};
const seedRows = JSON.parse(readFileSync(join(DIR, 'seeds.json'), 'utf8')) as Array<{
  ids: number[];
  answer_mask: number[];
}>;
const seeds = seedRows.map((s, i) => fromIds(i, s.ids, s.answer_mask, `seeds.json[${i}]`));
const ref = openSafetensors(join(DIR, 'expected.safetensors'));
const teacher = openHfModel(join(DIR, 'teacher'));
const student = openHfModel(join(DIR, 'student'));

const sens = new MemorySink();
const run = runSense({ config: teacher.config, weights: teacher.weights }, seeds, sens, { streaming: true });

test('step 1: per-example |theta * grad| sums and seed losses match PyTorch (float64 truth) for every tensor', async () => {
  const r = await run;
  r.losses.forEach((l, j) =>
    assert.ok(Math.abs(l.loss - expected.losses[j]) < 1e-5, `seed ${j}: ${l.loss} vs ${expected.losses[j]}`),
  );
  const names = teacher.weights.names().sort();
  assert.deepEqual(sens.names().sort(), names);
  for (const name of names) {
    const want = ref.get(`sens.${name}`),
      got = sens.get(name);
    let scale = 0;
    for (const v of want) scale = Math.max(scale, Math.abs(v));
    for (let i = 0; i < want.length; i++) {
      assert.ok(
        Math.abs(got[i] - want[i]) <= 1e-4 * Math.abs(want[i]) + 1e-6 * scale,
        `${name}[${i}]: ${got[i]} vs ${want[i]}`,
      );
    }
  }
});

test('steps 2-4: layer selection and window offsets exactly, products scale*B*A to 1e-4; the subtract trick keeps the logits (1e-5)', async () => {
  await run;
  const r = expected.rank,
    alpha = expected.alpha;
  const res = extract(
    {
      teacher: teacher.weights,
      teacherConfig: teacher.config,
      student: student.weights,
      studentConfig: student.config,
      sensitivity: sens,
    },
    {
      init: 'teacher',
      modules: 'all',
      rank: r,
      alpha,
      dropout: 0.05,
      structure: 'block',
      layers: 'sensitivity',
      svd: { method: 'exact' },
      seed: 1,
    },
  );
  const man = res.manifest;
  assert.deepEqual(man.layers!.teacherLayers, expected.selected_layers);
  man.layers!.scores.forEach((s, l) =>
    assert.ok(Math.abs(s - expected.layer_scores[l]) < 1e-5 * expected.layer_scores[l], `layer ${l}`),
  );
  assert.equal(man.matrices.length, expected.modules.length);
  for (const want of expected.modules) {
    const rec = man.matrices.find((m) => m.module === want.module);
    assert.ok(rec, want.module);
    assert.deepEqual(rec.offset, want.offset, `${want.module} offset`);
    assert.deepEqual(rec.shape, want.shape);
    rec.singularValues.forEach((s, i) =>
      assert.ok(
        Math.abs(s - want.singular_values[i]) < 1e-4 * want.singular_values[0],
        `${want.module} s${i}`,
      ),
    );
    assert.ok(Math.abs(rec.energyKept! - want.energy_kept) < 1e-5);
    assert.ok(Math.abs(rec.share! - want.share) < 1e-5);
    // scale * B * A against the reference product (factor layout)
    const mod = res.modules.find((m) => modulePath(m.ref) === want.module)!;
    const [n, m] = want.shape;
    const P = new Float32Array(n * m);
    addDelta(P, { B: mod.B, A: mod.A, n, m, r }, alpha / r, false);
    const product = ref.get(`product.${want.module}`);
    for (let i = 0; i < n * m; i++)
      assert.ok(Math.abs(P[i] - product[i]) < 1e-4, `${want.module}[${i}]: ${P[i]} vs ${product[i]}`);
  }

  // docs/method.md step 5: W_s - scale*B*A + LoRA(B, A) is the student itself
  const base = LlamaModel.load(student);
  const init = LlamaModel.load(student);
  for (const mod of res.modules) {
    const p = init.params.get(weightName(mod.ref, student.config));
    const emb = mod.ref.kind === 'embed_tokens';
    const [n, m] = emb ? [p.shape[1], p.shape[0]] : [p.shape[0], p.shape[1]];
    subtractInit(p.data, { B: mod.B, A: mod.A, n, m, r }, alpha / r, emb);
    init.attachLora(modulePath(mod.ref), { r, alpha, A: mod.A, B: mod.B, dropout: 0 });
  }
  for (const s of seeds) {
    const batch = { ids: s.ids, B: 1, T: s.ids.length };
    const want = Float32Array.from(base.forward(batch));
    const got = init.forward(batch);
    let worst = 0;
    for (let i = 0; i < want.length; i++) worst = Math.max(worst, Math.abs(got[i] - want[i]));
    assert.ok(worst < 1e-5, `seed ${s.index}: logits differ by ${worst}`);
  }
});
