/**
 * What training leaves behind, end to end on the bundled stories260K (a llama2.c checkpoint with tied
 * embeddings): an init folder from `extract` (self-teacher, every module incl. embed_tokens and
 * lm_head, rank 4, alpha 8 so the scale is 2) -> `train` with the subtract trick -> the plain
 * rank-2r adapter on the UNTOUCHED student gives the trained model's logits (1e-5), while the trained
 * factors alone do not; `merge` writes an HF folder (q/k permuted, lm_head untied) whose logits equal
 * student + adapter (1e-5), which `nuggets generate` reloads and which greedy-decodes the same text,
 * with a model card naming teacher, student, seeds' hash, layers, options and command lines.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Rng } from '../src/engine/rng.js';
import { loadModelSource } from '../src/io/load.js';
import { openSafetensors, writeSafetensors } from '../src/io/safetensors.js';
import { LlamaModel } from '../src/model/model.js';
import { resolveOptions } from '../src/config/cli.js';
import { extractToFolder } from '../src/transfer/extract.js';
import { sha256File } from '../src/transfer/manifest.js';
import { readAdapter, readAdapterConfig, assertAdapterFolder } from '../src/transfer/peft.js';
import { modulePath } from '../src/transfer/modules.js';
import { summaryPathFor } from '../src/transfer/sense/summary.js';
import { runTrain } from '../src/train/run.js';
import { runMerge } from '../src/train/merge.js';
import { readTrainerLog } from '../src/train/log.js';
import { runGenerate } from '../src/eval/generate-text.js';
import { convertLlama2cToHf } from '../src/io/convert.js';
import { InputError } from '../src/errors.js';
import { heldOutStories, STORIES260K } from './model-helpers.js';
import { tempDir } from './train-helpers.js';

const STUDENT = join(STORIES260K, 'checkpoint_legacy.bin');
const dir = tempDir('outputs');
test.after(() => rmSync(dir, { recursive: true, force: true }));

const IDS = (() => {
  const rng = new Rng(4);
  const ids = new Int32Array(2 * 24);
  for (let i = 0; i < ids.length; i++) ids[i] = i % 24 === 0 ? 1 : 3 + rng.int(500);
  return ids;
})();

function logits(m: LlamaModel): Float32Array {
  m.setTraining(false);
  return Float32Array.from(m.forward({ ids: IDS, B: 2, T: 24 }));
}

function maxDiff(a: Float32Array, b: Float32Array): number {
  assert.equal(a.length, b.length);
  let d = 0;
  for (let i = 0; i < a.length; i++) d = Math.max(d, Math.abs(a[i] - b[i]));
  return d;
}

/**
 * Max |a - b| relative to the logits' scale (max |b|): float32 logits of magnitude ~17 computed along
 * different paths (W' + B1·A1 vs W + [B1|B0]·[A1;-A0]) differ by a few ulps, ~2e-6 each.
 */
function relDiff(a: Float32Array, b: Float32Array): number {
  let scale = 0;
  for (let i = 0; i < b.length; i++) scale = Math.max(scale, Math.abs(b[i]));
  return maxDiff(a, b) / Math.max(1, scale);
}

/** The untouched student with an adapter folder's modules attached (PEFT semantics). */
function studentWith(adapterDir: string | null): LlamaModel {
  const src = loadModelSource(STUDENT);
  try {
    const m = LlamaModel.load(src);
    if (adapterDir)
      for (const mod of readAdapter(adapterDir, src.config).modules)
        m.attachLora(modulePath(mod.ref), { r: mod.r, alpha: mod.alpha, A: mod.A, B: mod.B });
    return m;
  } finally {
    src.weights.close();
  }
}

/** A self-teacher init folder with a sensitivity file and its seeds summary beside it. */
function makeInit(): string {
  const src = loadModelSource(STUDENT);
  const seeds = join(dir, 'seeds.jsonl');
  writeFileSync(seeds, '{"prompt": "Tell me a story.", "answer": "Once upon a time."}\n');
  const sensPath = join(dir, 'sens.safetensors');
  const rng = new Rng(5);
  writeSafetensors(
    sensPath,
    src.weights.names().map((name) => {
      const shape = src.weights.info(name).shape;
      const data = rng.fillNormal(new Float32Array(shape.reduce((a, b) => a * b, 1)));
      for (let i = 0; i < data.length; i++) data[i] = Math.abs(data[i]);
      return { name, shape, data };
    }),
  );
  writeFileSync(
    summaryPathFor(sensPath),
    JSON.stringify({
      teacher: { path: STUDENT },
      seeds: { path: seeds, sha256: sha256File(seeds).sha256, used: 1 },
    }),
  );
  const sens = openSafetensors(sensPath);
  const initDir = join(dir, 'init');
  try {
    extractToFolder(
      {
        teacher: src.weights,
        teacherConfig: src.config,
        student: src.weights,
        studentConfig: src.config,
        sensitivity: sens,
      },
      {
        init: 'teacher',
        modules: 'all',
        rank: 4,
        alpha: 8,
        dropout: 0.05,
        structure: 'block',
        layers: 'sensitivity',
        svd: { method: 'exact' },
        seed: 1,
        teacherName: STUDENT,
        studentName: STUDENT,
        inputPaths: { teacher: STUDENT, student: STUDENT, sensitivity: sensPath },
      },
      initDir,
    );
  } finally {
    sens.close();
    src.weights.close();
  }
  return initDir;
}

test('train from an extract folder: plain rank-2r adapter == trained model; merge == student + adapter; generate reloads it; model card', () => {
  const initDir = makeInit();
  const stories = heldOutStories(17);
  const data = join(dir, 'train.jsonl');
  writeFileSync(
    data,
    stories
      .slice(0, 16)
      .map((s) => JSON.stringify({ prompt: 'Write a story.', answer: s }))
      .join('\n') + '\n',
  );
  const out = join(dir, 'run');
  const opts = resolveOptions('train', {
    student: STUDENT,
    data,
    out,
    init: initDir,
    rank: 4,
    alpha: 8,
    epochs: 1,
    batchSize: 8,
    microBatchSize: 4,
    learningRate: 2e-3,
    warmupRatio: 0,
    maxLength: 40,
    progress: false,
    seed: 3,
    loggingSteps: 1,
  });
  const argv = [
    'train',
    STUDENT,
    '--data',
    data,
    '--out',
    out,
    '--init',
    initDir,
    '--rank',
    '4',
    '--alpha',
    '8',
  ];
  const r = runTrain(opts, { argv });
  assert.equal(r.subtract, true);
  assert.equal(r.result.steps, 2);
  assert.match(r.summary, /trained 2 updates \(1 epochs\)/);
  assert.match(r.summary, /plain rank 8/);

  // Files: the untouched-student adapter at the top (rank 2r, alpha doubled), the trained factors below it.
  const src = loadModelSource(STUDENT);
  const cfg = src.config;
  src.weights.close();
  assertAdapterFolder(out, cfg);
  assertAdapterFolder(r.trainedAdapterDir!, cfg);
  const top = readAdapterConfig(out),
    trained = readAdapterConfig(r.trainedAdapterDir!);
  assert.equal(top.r, 8);
  assert.equal(top.lora_alpha, 16);
  assert.equal(trained.r, 4);
  assert.equal(trained.lora_alpha, 8);
  assert.deepEqual(top.target_modules, [
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
  for (const f of [
    'training.json',
    'init_manifest.json',
    'trainer_log.jsonl',
    'checkpoint-2/adapter_model.safetensors',
  ])
    assert.ok(existsSync(join(out, f)), f);
  const log = readTrainerLog(join(out, 'trainer_log.jsonl'));
  assert.deepEqual(Object.keys(log[0]).slice(0, 8), [
    'current_steps',
    'total_steps',
    'loss',
    'learning_rate',
    'epoch',
    'percentage',
    'elapsed_time',
    'remaining_time',
  ]);
  assert.deepEqual(
    log.map((l) => l.current_steps),
    [1, 2],
  );
  assert.equal(log[1].percentage, 100);

  // The trained model vs the untouched student + the plain adapter.
  const trainedLogits = logits(r.model);
  const plainLogits = logits(studentWith(out));
  const d = relDiff(plainLogits, trainedLogits);
  assert.ok(
    d <= 1e-5,
    `plain rank-2r adapter on the untouched student: max |logit diff| / max |logit| = ${d}`,
  );
  // not a vacuous comparison: training moved the model, and the trained factors alone are a different model
  assert.ok(maxDiff(logits(studentWith(null)), trainedLogits) > 1e-3, 'training changed the logits');
  assert.ok(
    maxDiff(logits(studentWith(r.trainedAdapterDir!)), trainedLogits) > 1e-2,
    'the trained factors alone do not give the trained model',
  );

  // Merge into an HF folder and reload it.
  const merged = join(dir, 'merged');
  const mr = runMerge(
    { student: STUDENT, adapter: out, out: merged, dtype: 'f32' },
    { argv: ['merge', '--student', STUDENT, '--adapter', out, '--out', merged] },
  );
  assert.equal(mr.untied, true);
  for (const f of [
    'config.json',
    'model.safetensors',
    'tokenizer.json',
    'tokenizer_config.json',
    'generation_config.json',
    'README.md',
  ])
    assert.ok(mr.files.includes(f), f);
  const msrc = loadModelSource(merged);
  assert.equal(msrc.format, 'hf');
  assert.equal(msrc.config.tieWordEmbeddings, false);
  assert.equal(msrc.config.ropeStyle, 'half');
  const mergedModel = LlamaModel.load(msrc);
  msrc.weights.close();
  const dm = relDiff(logits(mergedModel), plainLogits);
  assert.ok(dm <= 1e-5, `merged folder vs student + adapter: max |logit diff| / max |logit| = ${dm}`);

  // `nuggets generate` on the merged folder decodes what student + adapter decodes.
  const gen = (model: string, adapter?: string) => {
    const o = resolveOptions('generate', {
      model,
      ...(adapter ? { adapter } : {}),
      prompt: 'Once upon a time',
      maxNewTokens: 30,
      stream: false,
    });
    let text = '';
    runGenerate({ ...o, stop: [], chat: false }, (t) => (text += t));
    return text;
  };
  const viaMerged = gen(merged);
  assert.ok(viaMerged.length > 20, `generated: ${JSON.stringify(viaMerged)}`);
  assert.equal(viaMerged, gen(STUDENT, out));

  // The model card.
  const card = readFileSync(join(merged, 'README.md'), 'utf8');
  const seedsHash = sha256File(join(dir, 'seeds.jsonl')).sha256;
  assert.match(card, /^---\nbase_model: /);
  assert.ok(card.includes(`| teacher | ${STUDENT} |`), 'teacher');
  assert.ok(card.includes(seedsHash!), "seeds' hash");
  assert.ok(card.includes(sha256File(STUDENT).sha256!), 'student hash');
  assert.match(
    card,
    /Selection: sensitivity\. Teacher layer -> student layer:\n\n0 -> 0, 1 -> 1, 2 -> 2, 3 -> 3, 4 -> 4/,
  );
  assert.match(card, /\| learning rate \| 0\.002 \|/);
  assert.ok(card.includes(`nuggets train ${STUDENT} --data ${data}`), 'train command line');
  assert.ok(card.includes(`nuggets merge --student ${STUDENT}`), 'merge command line');
  assert.match(card, /"structure": "block"/);

  // The trained factors cannot be merged onto the untouched student by mistake.
  assert.throws(
    () =>
      runMerge({ student: STUDENT, adapter: r.trainedAdapterDir!, out: join(dir, 'wrong'), dtype: 'f32' }),
    (e: unknown) => e instanceof InputError && /merge the adapter in the parent folder/.test(e.message),
  );
});

test('HF student (converted stories260K), PEFT default init on attention: merge keeps the tie, copies the tokenizer, equals student + adapter', () => {
  const hf = join(dir, 'hf-student');
  convertLlama2cToHf(STUDENT, join(STORIES260K, 'tokenizer.bin'), hf);
  const data = join(dir, 'hf-train.jsonl');
  writeFileSync(
    data,
    heldOutStories(4)
      .map((s) => JSON.stringify({ text: s }))
      .join('\n') + '\n',
  );
  const out = join(dir, 'hf-run');
  const r = runTrain(
    resolveOptions('train', {
      student: hf,
      data,
      out,
      modules: ['attention'],
      epochs: 1,
      batchSize: 4,
      microBatchSize: 2,
      learningRate: 5e-3,
      warmupRatio: 0,
      maxLength: 32,
      progress: false,
      dropout: 0,
    }),
  );
  assert.equal(r.subtract, false);
  assert.equal(r.trainedAdapterDir, null);
  assert.deepEqual(readAdapterConfig(out).target_modules, ['q_proj', 'k_proj', 'v_proj', 'o_proj']);
  const src = loadModelSource(hf);
  const withAdapter = LlamaModel.load(src);
  src.weights.close();
  for (const mod of readAdapter(out, src.config).modules)
    withAdapter.attachLora(modulePath(mod.ref), { r: mod.r, alpha: mod.alpha, A: mod.A, B: mod.B });
  const trained = logits(r.model);
  assert.ok(relDiff(logits(withAdapter), trained) <= 1e-6, 'the adapter is the trained one');
  const merged = join(dir, 'hf-merged');
  const mr = runMerge({ student: hf, adapter: out, out: merged, dtype: 'f32' });
  assert.equal(mr.untied, false);
  const msrc = loadModelSource(merged);
  assert.equal(msrc.config.tieWordEmbeddings, true);
  const mergedModel = LlamaModel.load(msrc);
  msrc.weights.close();
  const d = relDiff(logits(mergedModel), trained);
  assert.ok(d <= 1e-5, `merged vs student + adapter: ${d}`);
  for (const f of ['tokenizer.json', 'tokenizer_config.json', 'generation_config.json']) {
    assert.equal(readFileSync(join(merged, f), 'utf8'), readFileSync(join(hf, f), 'utf8'), `${f} copied`);
  }
  // the card without an init manifest still names the student, the training options and the command line
  const card = readFileSync(join(merged, 'README.md'), 'utf8');
  assert.match(card, /\| initialisation \| default \|/);
  assert.match(card, /nuggets train --student /);
});
