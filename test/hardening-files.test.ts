/**
 * Files in and out: safetensors with holes or trailing bytes are refused (as the reference
 * implementation does), NaN weights are refused naming the tensor, `merge` builds its folder aside
 * and refuses to replace an earlier merge without --force, and `eval` writes results.json last.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { InputError } from '../src/errors.js';
import { openSafetensors } from '../src/io/safetensors.js';
import { LlamaModel } from '../src/model/model.js';
import { randomWeights, tinyConfig } from '../src/model/random.js';
import { MemoryWeights } from '../src/model/weights.js';
import { checkFiniteParams } from '../src/model/params.js';
import { loadModelSource } from '../src/io/load.js';
import { writeHfModel } from '../src/io/checkpoint.js';
import { loadModelLM } from '../src/eval/model-lm.js';
import { resolveOptions } from '../src/config/cli.js';
import { runTrain } from '../src/train/run.js';
import { runMerge } from '../src/train/merge.js';
import { heldOutStories, ROOT, STORIES260K } from './model-helpers.js';

const tmp = mkdtempSync(join(tmpdir(), 'hardening-files-'));

/** A safetensors file with two F32 tensors of 2 values at the given offsets and `dataBytes` of data. */
function safetensors(name: string, a: [number, number], b: [number, number], dataBytes: number): string {
  const header = JSON.stringify({
    a: { dtype: 'F32', shape: [2], data_offsets: a },
    b: { dtype: 'F32', shape: [2], data_offsets: b },
  });
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(header.length));
  const path = join(tmp, name);
  writeFileSync(path, Buffer.concat([len, Buffer.from(header), Buffer.alloc(dataBytes)]));
  return path;
}

test('safetensors: tensors must tile the data section: holes and trailing bytes are refused', () => {
  openSafetensors(safetensors('ok.safetensors', [0, 8], [8, 16], 16)).close();
  openSafetensors(safetensors('reversed.safetensors', [8, 16], [0, 8], 16)).close();
  assert.throws(
    () => openSafetensors(safetensors('hole.safetensors', [0, 8], [12, 20], 20)),
    (e: unknown) => e instanceof InputError && /4 unused bytes \(8\.\.12\) before tensor "b"/.test(e.message),
  );
  assert.throws(
    () => openSafetensors(safetensors('lead.safetensors', [4, 12], [12, 20], 20)),
    /4 unused bytes \(0\.\.4\) before tensor "a"/,
  );
  assert.throws(
    () => openSafetensors(safetensors('trailing.safetensors', [0, 8], [8, 16], 24)),
    /8 trailing bytes after the last tensor/,
  );
  assert.throws(() => openSafetensors(safetensors('overlap.safetensors', [0, 8], [4, 12], 12)), /overlaps/);
});

test('the NaN check reads bf16 weights as bits: a clean bf16 model stays half, a damaged one is refused', () => {
  // zoo/teacher-facts is stored bf16: its matrices load half, and checking them must not widen them
  const src = loadModelSource(join(ROOT, 'zoo', 'teacher-facts'));
  const m = LlamaModel.load(src);
  src.weights.close();
  const q = m.params.get('model.layers.0.self_attn.q_proj.weight');
  assert.ok(q.half, 'stored half');
  checkFiniteParams(m.params, 'teacher-facts');
  assert.ok(q.half, 'still half after the check');
  q.half!.bits[7] = 0x7fc0; // a bf16 NaN
  assert.throws(
    () => checkFiniteParams(m.params, 'teacher-facts'),
    /teacher-facts: tensor model\.layers\.0\.self_attn\.q_proj\.weight holds NaN at index 7/,
  );
  q.half!.bits[7] = 0xff80; // bf16 -Infinity
  assert.throws(() => checkFiniteParams(m.params, 'teacher-facts'), /holds -Infinity at index 7/);
});

test('NaN or infinite weights are refused when a model is loaded to generate, naming the tensor', () => {
  const config = tinyConfig({ numLayers: 1 });
  const w = randomWeights(config, 3);
  const tensors = new Map(w.names().map((n) => [n, { shape: w.info(n).shape, data: w.get(n) }]));
  tensors.get('model.layers.0.mlp.up_proj.weight')!.data[5] = NaN;
  const damaged = LlamaModel.load({ config, weights: new MemoryWeights('damaged', tensors) });
  assert.throws(
    () => checkFiniteParams(damaged.params, 'damaged'),
    (e: unknown) =>
      e instanceof InputError &&
      /^damaged: tensor model\.layers\.0\.mlp\.up_proj\.weight holds NaN at index 5/.test(e.message),
  );
  checkFiniteParams(LlamaModel.load({ config, weights: randomWeights(config, 3) }).params, 'fine');

  // through the loader that generate, eval and serve use: an HF folder with one Inf weight
  const src = loadModelSource(join(ROOT, 'zoo', 'student-tiny'));
  const all = new Map(
    src.weights
      .names()
      .map((n) => [n, { shape: src.weights.info(n).shape, data: Float32Array.from(src.weights.get(n)) }]),
  );
  src.weights.close();
  all.get('model.norm.weight')!.data[0] = -Infinity;
  const folder = join(tmp, 'damaged-model');
  writeHfModel(folder, src.config, new MemoryWeights('x', all));
  for (const f of ['tokenizer.json', 'tokenizer_config.json'])
    copyFileSync(join(ROOT, 'zoo', 'student-tiny', f), join(folder, f));
  assert.throws(
    () => loadModelLM(folder),
    /model\.safetensors: tensor model\.norm\.weight holds -Infinity at index 0/,
  );
});

test(
  'merge: an earlier merge is not replaced without --force; with it, replaced whole; nothing is left aside',
  { timeout: 120_000 },
  () => {
    const student = join(STORIES260K, 'checkpoint_legacy.bin');
    const data = join(tmp, 'train.jsonl');
    writeFileSync(
      data,
      heldOutStories(4)
        .map((s) => JSON.stringify({ text: s.slice(0, 120) }))
        .join('\n') + '\n',
    );
    const trained = join(tmp, 'trained');
    runTrain(
      resolveOptions('train', {
        student,
        data,
        out: trained,
        epochs: 1,
        batchSize: 4,
        microBatchSize: 4,
        maxLength: 32,
        progress: false,
        rank: 2,
        alpha: 4,
      }),
    );
    const out = join(tmp, 'merged');
    runMerge({ student, adapter: trained, out, dtype: 'f32' });
    const first = readFileSync(join(out, 'config.json'), 'utf8');
    assert.throws(
      () => runMerge({ student, adapter: trained, out, dtype: 'bf16' }),
      (e: unknown) =>
        e instanceof InputError && e.source === out && /already exists; .* --force/.test(e.message),
    );
    assert.equal(readFileSync(join(out, 'config.json'), 'utf8'), first, 'the earlier merge is untouched');
    runMerge({ student, adapter: trained, out, dtype: 'bf16', force: true });
    assert.match(readFileSync(join(out, 'config.json'), 'utf8'), /"torch_dtype": "bfloat16"/);
    assert.deepEqual(
      readdirSync(dirname(out)).filter((n) => n.startsWith('merged.')),
      [],
      'no temporary or old folder is left beside the output',
    );
    // a merge that fails leaves no output folder behind
    const failed = join(tmp, 'never');
    assert.throws(() => runMerge({ student, adapter: join(tmp, 'no-adapter'), out: failed, dtype: 'f32' }));
    assert.equal(existsSync(failed), false);
  },
);

test(
  'eval: when the samples file cannot be written, no results.json claims a finished run',
  { timeout: 120_000 },
  () => {
    const text = join(tmp, 'story.txt');
    writeFileSync(text, heldOutStories(1)[0].slice(0, 300));
    const results = join(tmp, 'eval', 'results.json');
    const blocker = join(tmp, 'a-file');
    writeFileSync(blocker, 'x');
    const r = spawnSync(
      process.execPath,
      [
        '--import',
        'tsx',
        join(ROOT, 'src', 'cli', 'run.ts'),
        'eval',
        join(STORIES260K, 'checkpoint_legacy.bin'),
        '--tasks',
        `perplexity:${text}`,
        '--out',
        results,
        '--samples',
        join(blocker, 'samples.jsonl'),
        '--no-progress',
      ],
      { cwd: ROOT, encoding: 'utf8', timeout: 100_000 },
    );
    assert.equal(r.status, 2, r.stderr);
    assert.match(
      r.stderr.trim(),
      /^nuggets: .*a-file\/samples\.jsonl: cannot write: (a part of the path is a file, not a folder \(ENOTDIR\)|a file stands where a folder is needed \(EEXIST\))$/,
    );
    assert.equal(existsSync(results), false);
  },
);
