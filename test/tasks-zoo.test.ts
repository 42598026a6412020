/**
 * The bundled zoo (zoo/*): the folders load, stay under 2 MB, share the tok512 vocabulary and
 * tokenizer, are transfer-compatible with the student (every student dimension <= the teacher's,
 * equal head_dim, student layers <= teacher layers), the student is smaller than stories260K, the
 * recipes name the data they were trained on, and the facts teacher knows the held-out facts that
 * the student does not (greedy cloze answers vs gold, computed here from the committed weights).
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
import { compatibility, STUDENT, TEACHERS, ZOO_MODELS } from '../scripts/zoo/verify-zoo.js';

const kb = JSON.parse(readFileSync('tasks/facts/knowledge.json', 'utf8')) as KnowledgeBase;
const tmp = mkdtempSync(join(tmpdir(), 'nuggets-zoo-'));
const open = (name: string) => loadModelSource(join('zoo', name));

test('every zoo folder loads, is under 2 MB, and uses the tok512 tokenizer of stories260K', () => {
  const bin = Llama2cTokenizer.fromFile('data/stories260k/tokenizer.bin');
  const text = 'Once upon a time, the vivup ate honey. "Hi!" said Lily.\n\nThe end.';
  for (const name of ZOO_MODELS) {
    const dir = join('zoo', name);
    for (const f of readdirSync(dir))
      assert.ok(statSync(join(dir, f)).size < 2e6, `${dir}/${f} is 2 MB or more`);
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

test('recipes: the exact command, the seed and the sha256 of the pretraining data', () => {
  for (const name of ['student-tiny', 'teacher-facts']) {
    const r = readFileSync(join('zoo', name, 'RECIPE.md'), 'utf8');
    assert.match(r, /nuggets pretrain .*--data runs\/zoo-build\/data\/[a-z-]+\.jsonl/);
    assert.match(r, /\| sha256 \| `[0-9a-f]{64}` \|/);
    assert.match(r, /\| seed \| \d+ \|/);
  }
  // the recorded data hashes are those of the corpora the committed generator writes today
  const sha = (name: string) =>
    /\| sha256 \| `([0-9a-f]{64})` \|/.exec(readFileSync(join('zoo', name, 'RECIPE.md'), 'utf8'))![1];
  const built = buildAll(join(tmp, 'tasks'), join(tmp, 'corpus')).files;
  assert.equal(sha('student-tiny'), built['corpus/student-tiny.jsonl']);
  assert.equal(sha('teacher-facts'), built['corpus/teacher-facts.jsonl']);
});

test('the facts teacher knows the held-out facts; the student does not', () => {
  const heldOut = kb.animals.filter((a) => a.split === 'heldOut');
  const acc = (name: string) => {
    const src = open(name);
    const r = clozeAccuracy(LlamaModel.load(src), src.tokenizer, heldOut);
    src.weights.close();
    return r;
  };
  const teacher = acc('teacher-facts');
  const student = acc(STUDENT);
  console.log(
    `held-out facts (cloze, greedy): teacher-facts ${teacher.correct}/${teacher.total}, ${STUDENT} ${student.correct}/${student.total}`,
  );
  assert.equal(teacher.total, 96);
  assert.ok(teacher.accuracy >= 0.5, `teacher-facts answers only ${teacher.correct}/96 held-out facts`);
  assert.ok(
    student.accuracy <= 0.15,
    `the student answers ${student.correct}/96 held-out facts: it should not know them`,
  );
  assert.ok(teacher.accuracy - student.accuracy >= 0.4);
});
