/**
 * The bundled zoo (zoo/*): the folders load, every file stays under its size limit (2 MB; 20 MB for
 * the size M and L pairs, teacher-l in shards), share the tok512 vocabulary and tokenizer, every
 * teacher -> student pair is transfer-compatible (every student dimension <= the teacher's, equal
 * head_dim), the size M and L pairs have their recorded shapes and parameter counts and ratios, the
 * committed weights are those zoo/README.md names
 * by sha256, the recipes name the data they were trained on, and each facts teacher knows the
 * held-out facts that its student does not (greedy cloze answers vs gold, computed here from the
 * committed weights).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadModelSource } from '../src/io/load.js';
import { LlamaModel } from '../src/model/model.js';
import { Llama2cTokenizer } from '../src/io/tokenizer-llama2c.js';
import { clozeAccuracy } from '../scripts/zoo/facts-eval.js';
import { buildAll } from '../scripts/zoo/build.js';
import type { KnowledgeBase } from '../scripts/zoo/facts.js';
import {
  compatibility,
  PAIRS,
  paramCount,
  fileSha256,
  STUDENT,
  TEACHERS,
  weightFiles,
  ZOO_MODELS,
} from '../scripts/zoo/verify-zoo.js';

const kb = JSON.parse(readFileSync('tasks/facts/knowledge.json', 'utf8')) as KnowledgeBase;
const tmp = mkdtempSync(join(tmpdir(), 'nuggets-zoo-'));
const open = (name: string) => loadModelSource(join('zoo', name));
const configOf = (name: string) => {
  const src = open(name);
  src.weights.close();
  return src.config;
};

/** The largest file a zoo folder may hold: the size M and L models (bf16) are allowed 20 MB, the others 2 MB. */
const sizeLimit = (name: string) => (name.endsWith('-m') || name.endsWith('-l') ? 20e6 : 2e6);

test('every zoo folder loads, is under its size limit, and uses the tok512 tokenizer of stories260K', () => {
  const bin = Llama2cTokenizer.fromFile('data/stories260k/tokenizer.bin');
  const text = 'Once upon a time, the vivup ate honey. "Hi!" said Lily.\n\nThe end.';
  for (const name of ZOO_MODELS) {
    const dir = join('zoo', name);
    for (const f of readdirSync(dir))
      assert.ok(
        statSync(join(dir, f)).size < sizeLimit(name),
        `${dir}/${f} is ${sizeLimit(name) / 1e6} MB or more`,
      );
    const src = open(name);
    assert.equal(src.format, 'hf');
    assert.equal(src.config.vocabSize, 512, name);
    assert.equal(src.config.headDim, 8, name);
    assert.deepEqual(src.tokenizer.encode(text, { addBos: true }), bin.encode(text, { addBos: true }), name);
    src.weights.close();
  }
});

test('the student is smaller than stories260K, and transfer-compatible with both teachers', () => {
  const s = open(STUDENT).config,
    ref = open('stories260k').config;
  assert.ok(
    s.numLayers < ref.numLayers && s.hiddenSize < ref.hiddenSize,
    'fewer layers AND a smaller width than stories260K',
  );
  for (const t of TEACHERS) {
    const c = open(t).config;
    for (const k of ['numLayers', 'hiddenSize', 'intermediateSize', 'numHeads', 'numKvHeads'] as const) {
      assert.ok(s[k] <= c[k], `${t}: student ${k} ${s[k]} > teacher ${c[k]}`);
    }
    assert.equal(compatibility(c, s), '', `${t} -> ${STUDENT}`);
  }
  const teacher = open('teacher-facts').config;
  assert.ok(
    teacher.hiddenSize > ref.hiddenSize && teacher.numLayers > ref.numLayers,
    'teacher-facts is larger than stories260K',
  );
});

test('the size M and L pairs: their shapes and parameter counts, and every pair of the study is transfer-compatible', () => {
  const want = {
    'student-m': {
      hiddenSize: 128,
      numLayers: 6,
      numHeads: 16,
      numKvHeads: 4,
      intermediateSize: 352,
      params: 1189504,
    },
    'teacher-m': {
      hiddenSize: 256,
      numLayers: 8,
      numHeads: 32,
      numKvHeads: 8,
      intermediateSize: 704,
      params: 5902592,
    },
    'student-l': {
      hiddenSize: 256,
      numLayers: 8,
      numHeads: 32,
      numKvHeads: 8,
      intermediateSize: 768,
      params: 6295808,
    },
    'teacher-l': {
      hiddenSize: 512,
      numLayers: 8,
      numHeads: 64,
      numKvHeads: 16,
      intermediateSize: 1600,
      params: 25436672,
    },
  };
  const count = (name: string) => paramCount(configOf(name));
  for (const [name, w] of Object.entries(want)) {
    const c = configOf(name);
    const { params, ...shape } = w;
    assert.deepEqual(
      {
        hiddenSize: c.hiddenSize,
        numLayers: c.numLayers,
        numHeads: c.numHeads,
        numKvHeads: c.numKvHeads,
        intermediateSize: c.intermediateSize,
      },
      shape,
      name,
    );
    assert.equal(c.torchDtype, 'bfloat16', name);
    assert.equal(c.tieWordEmbeddings, false, name);
    assert.equal(count(name), params, name);
  }
  // the scale sweep: about 10x and 50-100x student-tiny, each teacher 4-8x its student
  const tiny = count('student-tiny');
  assert.ok(count('student-m') / tiny > 9 && count('student-m') / tiny < 11);
  assert.ok(count('student-l') / tiny >= 50 && count('student-l') / tiny <= 100);
  for (const size of ['m', 'l']) {
    const ratio = count(`teacher-${size}`) / count(`student-${size}`);
    assert.ok(ratio >= 4 && ratio <= 8, `size ${size}: teacher ${ratio.toFixed(2)}x its student`);
  }
  // teacher-l does not fit one 20 MB file: it is sharded as save_pretrained shards it
  assert.ok(weightFiles(join('zoo', 'teacher-l')).length >= 4, 'teacher-l is an index and shards');
  for (const [t, st] of PAIRS) {
    const c = configOf(t),
      s = configOf(st);
    for (const k of ['numLayers', 'hiddenSize', 'intermediateSize', 'numHeads', 'numKvHeads'] as const)
      assert.ok(s[k] <= c[k], `${t} -> ${st}: student ${k} ${s[k]} > teacher ${c[k]}`);
    assert.equal(compatibility(c, s), '', `${t} -> ${st}`);
  }
});

test('zoo/README.md records the sha256 of every committed weights file', () => {
  const readme = readFileSync(join('zoo', 'README.md'), 'utf8');
  for (const name of ZOO_MODELS) {
    for (const file of weightFiles(join('zoo', name))) {
      const sha = fileSha256(join('zoo', name, file));
      assert.match(
        readme,
        new RegExp(`\\| ${name} \\| ${file.replace(/\./g, '\\.')} \\| \`${sha}\` \\|`),
        `${name}/${file} differs from zoo/README.md`,
      );
    }
  }
});

test('recipes: the exact command, the seed and the sha256 of the pretraining data', () => {
  const built = buildAll(join(tmp, 'tasks'), join(tmp, 'corpus')).files;
  for (const name of ['student-tiny', 'teacher-facts', 'student-m', 'teacher-m', 'student-l', 'teacher-l']) {
    const r = readFileSync(join('zoo', name, 'RECIPE.md'), 'utf8');
    const corpus = /nuggets pretrain .*--data runs\/zoo-build\/data\/([a-z-]+)\.jsonl/.exec(r);
    assert.ok(corpus, `${name}: the recipe names no corpus of scripts/zoo/build.ts`);
    assert.match(r, /\| seed \| \d+ \|/);
    // the recorded data hash is that of the corpus the committed generator writes today
    const sha = /\| sha256 \| `([0-9a-f]{64})` \|/.exec(r);
    assert.ok(sha, `${name}: no data sha256`);
    assert.equal(sha[1], built[`corpus/${corpus[1]}.jsonl`], name);
  }
});

test('the facts teacher knows the held-out facts; the student does not', () => {
  const heldOut = kb.animals.filter((a) => a.split === 'heldOut');
  const acc = (name: string) => {
    const src = open(name);
    const r = clozeAccuracy(LlamaModel.load(src), src.tokenizer, heldOut);
    src.weights.close();
    return r;
  };
  for (const [t, st] of [
    ['teacher-facts', STUDENT],
    ['teacher-m', 'student-m'],
    ['teacher-l', 'student-l'],
  ]) {
    const teacher = acc(t);
    const student = acc(st);
    console.log(
      `held-out facts (cloze, greedy): ${t} ${teacher.correct}/${teacher.total}, ${st} ${student.correct}/${student.total}`,
    );
    assert.equal(teacher.total, 96);
    assert.ok(teacher.accuracy >= 0.5, `${t} answers only ${teacher.correct}/96 held-out facts`);
    assert.ok(
      student.accuracy <= 0.15,
      `${st} answers ${student.correct}/96 held-out facts: it should not know them`,
    );
    assert.ok(teacher.accuracy - student.accuracy >= 0.4);
  }
});
