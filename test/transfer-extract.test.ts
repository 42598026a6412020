// End to end below the CLI: extract -> PEFT folder + manifest; the student initialised with the
// subtract trick gives the same logits as the untouched student (acceptance, to 1e-5), for the
// teacher init and every control.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { extract, extractToFolder, type ExtractOptions } from '../src/transfer/extract.js';
import { assertAdapterFolder, readAdapter, type AdapterModule } from '../src/transfer/peft.js';
import { readManifest } from '../src/transfer/manifest.js';
import { subtractInit } from '../src/transfer/inject.js';
import { modulePath, weightName } from '../src/transfer/modules.js';
import { LlamaModel } from '../src/model/model.js';
import { randomWeights } from '../src/model/random.js';
import type { ModelConfig } from '../src/model/config.js';
import type { MemoryWeights } from '../src/model/weights.js';
import { kernels } from '../src/engine/backend.js';
import { matmul64, maxAbsDiff, modelTensors, tinyConfig } from './transfer-helpers.js';
import { Rng } from '../src/engine/rng.js';

const tcfg = tinyConfig({ hiddenSize: 24, intermediateSize: 40, numLayers: 4, numHeads: 6, numKvHeads: 3 });
const scfg = tinyConfig(); // d 16, f 24, 2 layers, 4/2 heads of 4
const teacher = randomWeights(tcfg, 11);
const student = randomWeights(scfg, 12);
// Layer l's sensitivity is scaled by LAYER_WEIGHT[l], so layers 1 and 3 score highest.
const LAYER_WEIGHT = [1, 5, 0.5, 3];
function sensitivity(cfg: ModelConfig, seed: number): MemoryWeights {
  const rng = new Rng(seed);
  return modelTensors(cfg, (name, n) => {
    const m = /^model\.layers\.(\d+)\./.exec(name);
    const w = m ? LAYER_WEIGHT[Number(m[1])] : 1;
    const a = new Float32Array(n);
    for (let i = 0; i < n; i++) a[i] = w * Math.abs(rng.normal());
    return a;
  });
}
const sens = sensitivity(tcfg, 13);

const opts = (o: Partial<ExtractOptions> = {}): ExtractOptions => ({
  init: 'teacher',
  modules: 'all',
  rank: 3,
  alpha: 6,
  dropout: 0.05,
  structure: 'block',
  layers: 'sensitivity',
  svd: { method: 'exact' },
  seed: 1,
  teacherName: 'teacher',
  studentName: 'student',
  ...o,
});

const IDS = Int32Array.from([1, 5, 9, 30, 2, 7, 3, 3, 14, 0]);
function logits(m: LlamaModel): Float32Array {
  return Float32Array.from(m.forward({ ids: IDS, B: 2, T: 5 }));
}

/** The student with W - scale·B·A in every targeted module and the LoRA (B, A) attached. */
function injected(modules: AdapterModule[]): LlamaModel {
  const model = LlamaModel.load({ config: scfg, weights: student });
  for (const mod of modules) {
    const p = model.params.get(weightName(mod.ref, scfg));
    const [n, m] = mod.ref.kind === 'embed_tokens' ? [p.shape[1], p.shape[0]] : [p.shape[0], p.shape[1]];
    subtractInit(
      p.data,
      { B: mod.B, A: mod.A, n, m, r: mod.r },
      mod.alpha / mod.r,
      mod.ref.kind === 'embed_tokens',
    );
    model.attachLora(modulePath(mod.ref), { r: mod.r, alpha: mod.alpha, A: mod.A, B: mod.B, dropout: 0 });
  }
  return model;
}

test('teacher init: layers by score, windows, rank-r products of the teacher blocks, a valid PEFT folder', () => {
  const dir = mkdtempSync(join(tmpdir(), 'nuggets-extract-'));
  try {
    const seeds = join(dir, 'seeds.jsonl');
    writeFileSync(seeds, '{"messages": []}\n');
    const res = extractToFolder(
      { teacher, teacherConfig: tcfg, student, studentConfig: scfg, sensitivity: sens },
      opts({ inputPaths: { seeds } }),
      join(dir, 'init'),
    );
    assertAdapterFolder(join(dir, 'init'), scfg);
    const man = readManifest(join(dir, 'init'));
    assert.deepEqual(man.layers!.teacherLayers, [1, 3]);
    assert.equal(man.layers!.scores.length, 4);
    assert.ok(man.layers!.scores[1] > man.layers!.scores[3] && man.layers!.scores[3] > man.layers!.scores[0]);
    assert.deepEqual(man.lora, { r: 3, alpha: 6, scale: 2, dropout: 0.05 });
    assert.equal(man.subtract, true);
    assert.equal(man.matrices.length, 2 + 7 * 2);
    assert.equal(
      man.inputs.seeds.files[0].sha256,
      createHash('sha256').update('{"messages": []}\n').digest('hex'),
    );
    assert.deepEqual(man.options.modules, [
      'embed_tokens',
      'q_proj',
      'k_proj',
      'v_proj',
      'o_proj',
      'gate_proj',
      'up_proj',
      'down_proj',
      'lm_head',
    ]);

    // One matrix checked by hand: student layer 1 up_proj comes from teacher layer 3.
    const rec = man.matrices.find((m) => m.module === 'model.layers.1.mlp.up_proj')!;
    assert.equal(rec.teacherLayer, 3);
    assert.equal(rec.teacherTensor, 'model.layers.3.mlp.up_proj.weight');
    const S = sens.get(rec.teacherTensor!),
      W = teacher.get(rec.teacherTensor!);
    const win = kernels().maxWindow(S, 40, 24, 24, 16);
    assert.deepEqual(rec.offset, [win.i, win.j]);
    assert.ok(Math.abs(rec.share! - win.sum / win.total) < 1e-12);
    const block = new Float32Array(24 * 16);
    for (let a = 0; a < 24; a++)
      for (let b = 0; b < 16; b++) block[a * 16 + b] = W[(win.i + a) * 24 + win.j + b];
    const full = kernels().svd(block, 24, 16);
    const best = new Float64Array(24 * 16);
    for (let a = 0; a < 24; a++)
      for (let b = 0; b < 16; b++)
        for (let c = 0; c < 3; c++)
          best[a * 16 + b] += full.U[a * full.k + c] * full.S[c] * full.Vt[c * 16 + b];
    const mod = res.modules.find((m) => modulePath(m.ref) === rec.module)!;
    assert.ok(
      maxAbsDiff(
        matmul64(mod.B, mod.A, 24, 3, 16).map((x) => 2 * x),
        best,
      ) < 1e-5,
    );
    assert.ok(maxAbsDiff(rec.singularValues, Array.from(full.S.subarray(0, 3))) < 1e-5);
    // The embedding window slides along d only and is reported in the [d, V] layout.
    const emb = man.matrices[0];
    assert.equal(emb.module, 'model.embed_tokens');
    assert.equal(emb.offset![1], 0);
    assert.deepEqual(emb.shape, [16, 32]);
    // The folder reads back to the same factors.
    const back = readAdapter(join(dir, 'init'), scfg);
    assert.deepEqual(
      back.modules.map((m) => m.B),
      res.modules.map((m) => m.B),
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('acceptance: with the subtract trick the student gives the untouched logits (1e-5), for every init', () => {
  const want = logits(LlamaModel.load({ config: scfg, weights: student }));
  for (const init of ['teacher', 'pissa', 'random-matched', 'lora'] as const) {
    for (const structure of init === 'teacher'
      ? (['block', 'heads', 'rowcol', 'elements', 'random'] as const)
      : (['block'] as const)) {
      const res = extract(
        { teacher, teacherConfig: tcfg, student, studentConfig: scfg, sensitivity: sens },
        opts({ init, structure }),
      );
      const got = logits(injected(res.modules));
      const err = maxAbsDiff(got, want);
      assert.ok(err < 1e-5, `${init}/${structure}: max |logit diff| ${err}`);
      if (init !== 'lora')
        assert.ok(
          res.manifest.matrices.every((m) => m.deltaNorm > 0.01),
          `${init}: the factors are not trivial`,
        );
      if (structure === 'heads') {
        for (const m of res.manifest.matrices) {
          if (['q_proj', 'k_proj', 'v_proj'].includes(m.kind))
            assert.equal(m.offset![0] % scfg.headDim, 0, m.module);
          if (m.kind === 'o_proj') assert.equal(m.offset![1] % scfg.headDim, 0, m.module);
        }
      }
    }
  }
});

test('without the subtract trick the same factors change the logits (the test above can fail)', () => {
  const res = extract(
    { teacher, teacherConfig: tcfg, student, studentConfig: scfg, sensitivity: sens },
    opts(),
  );
  const model = LlamaModel.load({ config: scfg, weights: student });
  for (const mod of res.modules)
    model.attachLora(modulePath(mod.ref), { r: mod.r, alpha: mod.alpha, A: mod.A, B: mod.B, dropout: 0 });
  const want = logits(LlamaModel.load({ config: scfg, weights: student }));
  assert.ok(maxAbsDiff(logits(model), want) > 1e-2);
});

test("random-matched has the teacher init's delta norms; seeds reproduce; lora init has zero deltas", () => {
  const src = { teacher, teacherConfig: tcfg, student, studentConfig: scfg, sensitivity: sens };
  const t = extract(src, opts());
  const r1 = extract(src, opts({ init: 'random-matched' }));
  const r2 = extract(src, opts({ init: 'random-matched' }));
  for (let i = 0; i < t.manifest.matrices.length; i++) {
    const a = t.manifest.matrices[i].deltaNorm,
      b = r1.manifest.matrices[i].deltaNorm;
    assert.ok(Math.abs(a - b) <= 1e-5 * a, `${t.manifest.matrices[i].module}: ${a} vs ${b}`);
  }
  assert.deepEqual(r1.modules[3].B, r2.modules[3].B);
  assert.notDeepEqual(r1.modules[3].B, t.modules[3].B);
  const l = extract({ student, studentConfig: scfg }, opts({ init: 'lora' }));
  assert.ok(l.manifest.matrices.every((m) => m.deltaNorm === 0));
  assert.equal(l.manifest.layers, null);
  assert.equal(l.manifest.subtract, false);
});

test('self-teacher: teacher = student cuts the whole matrix (share 1) and keeps layer order', () => {
  const self = sensitivity(scfg, 3);
  const res = extract(
    { teacher: student, teacherConfig: scfg, student, studentConfig: scfg, sensitivity: self },
    opts(),
  );
  assert.deepEqual(res.manifest.layers!.teacherLayers, [0, 1]);
  for (const m of res.manifest.matrices) {
    assert.deepEqual(m.offset, [0, 0]);
    assert.ok(Math.abs(m.share! - 1) < 1e-12);
  }
});

test('module subsets, other layer methods, a tied student; refusals happen before reading tensors', () => {
  const src = { teacher, teacherConfig: tcfg, student, studentConfig: scfg, sensitivity: sens };
  const ffn = extract(src, opts({ modules: 'mlp', layers: 'last' }));
  assert.deepEqual(ffn.manifest.layers!.teacherLayers, [2, 3]);
  assert.ok(ffn.modules.every((m) => ['gate_proj', 'up_proj', 'down_proj'].includes(m.ref.kind)));
  const tiedCfg = tinyConfig({ tieWordEmbeddings: true });
  const tied = extract(
    { ...src, student: randomWeights(tiedCfg, 4), studentConfig: tiedCfg },
    opts({ modules: 'embedding' }),
  );
  assert.equal(tied.manifest.untieStudentHead, true);
  let reads = 0;
  const counting = {
    ...sens,
    names: () => sens.names(),
    has: (n: string) => sens.has(n),
    info: (n: string) => sens.info(n),
    get: (n: string) => {
      reads++;
      return sens.get(n);
    },
  };
  assert.throws(
    () => extract({ ...src, sensitivity: counting, studentConfig: tinyConfig({ vocabSize: 40 }) }, opts()),
    /vocabularies differ/,
  );
  assert.equal(reads, 0);
  assert.throws(() => extract({ student, studentConfig: scfg }, opts()), /needs a teacher/);
  assert.throws(() => extract(src, opts({ alpha: 0 })), /lora_alpha/);
});
