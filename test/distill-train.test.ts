/**
 * Distillation end to end on tiny random models (test/study-models.ts): kd-logits training with
 * λ = 0 against plain `nuggets train` (same adapter bytes and log), the teacher-logit cache (values
 * = the teacher's logits in f16, reused on a second run, rebuilt when the data change), kd-logits
 * with λ > 0 differing from plain training, and `distill-data` answers against `nuggets generate`.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { resolveOptions } from '../src/config/cli.js';
import { runTrain } from '../src/train/run.js';
import { main } from '../src/cli/main.js';
import { ensureTeacherLogits, KD_INDEX } from '../src/distill/cache.js';
import { runDistillData } from '../src/distill/sequence.js';
import { runGenerate } from '../src/eval/generate-text.js';
import { loadModelSource } from '../src/io/load.js';
import { readExamples } from '../src/data/examples.js';
import { collate, encodeExamples } from '../src/data/encode.js';
import { TULU } from '../src/data/chat.js';
import { LlamaModel } from '../src/model/model.js';
import { halfToFloat, f32ToF16 } from '../src/engine/dtype.js';
import { writeTinyModels, writeTinyTask } from './study-models.js';

const dir = mkdtempSync(join(tmpdir(), 'nuggets-kd-'));
test.after(() => rmSync(dir, { recursive: true, force: true }));
const { teacher, student } = writeTinyModels(join(dir, 'models'));
const task = writeTinyTask(join(dir, 'task'));

const opts = (over: Record<string, unknown>) =>
  resolveOptions('train', {
    student,
    data: task.train,
    epochs: 2,
    batchSize: 4,
    microBatchSize: 2,
    maxLength: 64,
    rank: 4,
    alpha: 8,
    learningRate: 3e-3,
    warmupRatio: 0,
    progress: false,
    ...over,
  });

/** The log without its clock fields. */
function logOf(out: string): unknown[] {
  return readFileSync(join(out, 'trainer_log.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => {
      const r = JSON.parse(l) as Record<string, unknown>;
      delete r.elapsed_time;
      delete r.remaining_time;
      return r;
    });
}

const adapterBytes = (out: string) => readFileSync(join(out, 'adapter_model.safetensors'));

test('kd-logits with λ = 0 trains bit for bit like plain training; λ > 0 does not', () => {
  const plain = join(dir, 'plain');
  runTrain(opts({ out: plain }));
  const kd0 = join(dir, 'kd0');
  runTrain(opts({ out: kd0, kdTeacher: teacher, kdLambda: 0, kdTemperature: 2 }));
  assert.ok(adapterBytes(plain).equals(adapterBytes(kd0)), 'same adapter bytes');
  assert.deepEqual(logOf(kd0), logOf(plain));
  const kd = join(dir, 'kd5');
  const r = runTrain(opts({ out: kd, kdTeacher: teacher, kdLambda: 0.5, kdTemperature: 2 }));
  assert.ok(!adapterBytes(plain).equals(adapterBytes(kd)));
  // the logged training loss now includes the KD term, the held-out loss stays cross-entropy
  assert.ok(Number.isFinite(r.result.trainLoss!));
  // top-k teacher logits: another run, another adapter
  const kdTop = join(dir, 'kd-top');
  const rt = runTrain(opts({ out: kdTop, kdTeacher: teacher, kdLambda: 0.5, kdTemperature: 2, kdTopK: 16 }));
  assert.ok(Number.isFinite(rt.result.trainLoss!));
  assert.ok(!adapterBytes(kdTop).equals(adapterBytes(kd)));
  const rec = JSON.parse(readFileSync(join(kd, 'training.json'), 'utf8')) as {
    options: Record<string, unknown>;
  };
  assert.equal(rec.options.kdTeacher, teacher);
  assert.equal(rec.options.kdLambda, 0.5);
});

test('the teacher-logit cache holds the teacher logits (f16), is reused, and is rebuilt when the data change', () => {
  const src = loadModelSource(student);
  const tsrc = loadModelSource(teacher);
  try {
    const enc = (file: string) =>
      encodeExamples(
        readExamples(file),
        src.tokenizer,
        { format: TULU, maxLength: 64, overflow: 'truncate' },
        file,
      ).examples;
    const examples = enc(task.train);
    const cacheDir = join(dir, 'cache');
    const ensure = (ex: typeof examples) =>
      ensureTeacherLogits({
        dir: cacheDir,
        teacher,
        examples: ex,
        studentTokenizer: src.tokenizer,
        studentName: student,
        dtype: 'f16',
        batchSize: 3,
      });
    const a = ensure(examples);
    assert.equal(a.built, true);
    const tokens = examples.reduce((s, e) => s + e.nTargets, 0);
    assert.equal(a.cache.rowsStored, tokens);
    assert.equal(a.cache.bytes, tokens * 512 * 2, 'answer tokens x V x 2 bytes');
    // values: the teacher's own logits at the answer rows, rounded to f16
    const tm = LlamaModel.load(tsrc);
    const b = collate(examples.slice(4, 6));
    const logits = tm.forward({ ids: b.ids, B: b.B, T: b.T, attentionMask: b.attentionMask });
    const want: number[] = [];
    for (let i = 0; i < b.B * b.T; i++)
      if (b.targets[i] >= 0)
        for (const h of f32ToF16(logits.subarray(i * 512, (i + 1) * 512))) want.push(halfToFloat(h));
    assert.deepEqual(Array.from(a.cache.rowsFor(examples.slice(4, 6))), want);
    a.cache.close();

    const indexTime = statSync(join(cacheDir, KD_INDEX)).mtimeMs;
    const again = ensure(examples);
    assert.equal(again.built, false, 'reused');
    assert.equal(statSync(join(cacheDir, KD_INDEX)).mtimeMs, indexTime);
    again.cache.close();

    // a changed data file (one answer edited) gives other example keys: rebuilt
    const lines = readFileSync(task.train, 'utf8').trim().split('\n');
    lines[3] = lines[3].replace(/ is (\w+)\./, ' is purple.');
    const changed = join(dir, 'changed.jsonl');
    writeFileSync(changed, lines.join('\n') + '\n');
    const c = ensure(enc(changed));
    assert.equal(c.built, true, 'rebuilt');
    c.cache.close();

    // top-k storage: the 8 largest logits of each row, −∞ elsewhere, 6 bytes per kept logit
    const topDir = join(dir, 'cache-top8');
    const top = ensureTeacherLogits({
      dir: topDir,
      teacher,
      examples,
      studentTokenizer: src.tokenizer,
      studentName: student,
      dtype: 'f16',
      topK: 8,
      batchSize: 5,
    });
    assert.equal(top.cache.bytes, tokens * 8 * 6);
    const sparse = top.cache.rowsFor(examples.slice(4, 6));
    assert.equal(sparse.length, want.length);
    for (let r = 0; r < want.length / 512; r++) {
      const dense = want.slice(r * 512, (r + 1) * 512);
      const kth = [...dense].sort((x, y) => y - x)[7];
      let kept = 0;
      for (let c = 0; c < 512; c++) {
        const v = sparse[r * 512 + c];
        if (v === -Infinity) assert.ok(dense[c] <= kth, `row ${r} id ${c} dropped but in the top 8`);
        else {
          assert.equal(v, dense[c]);
          kept++;
        }
      }
      assert.equal(kept, 8);
    }
    top.cache.close();
  } finally {
    src.weights.close();
    tsrc.weights.close();
  }
});

test("distill-data writes the teacher's greedy answers, the same as nuggets generate", () => {
  const out = join(dir, 'answers.jsonl');
  const r = runDistillData(
    resolveOptions('distill-data', { teacher, data: task.test, out, maxNewTokens: 6, batchSize: 3 }),
  );
  const rows = readFileSync(out, 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as { id: string; messages: { role: string; content: string }[] });
  const inputs = readFileSync(task.test, 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as { id: string; messages: { role: string; content: string }[] });
  assert.equal(r.rows + r.dropped.length, inputs.length);
  assert.ok(rows.length > 0);
  for (const row of rows) {
    const input = inputs.find((x) => x.id === row.id)!;
    assert.deepEqual(row.messages.slice(0, -1), input.messages.slice(0, -1));
    const g = runGenerate(
      {
        ...resolveOptions('generate', {
          model: teacher,
          prompt: input.messages[0].content,
          chatFormat: 'tulu',
          maxNewTokens: 6,
          stream: false,
        }),
        stop: [],
        chat: false,
      },
      () => {},
    );
    assert.equal(row.messages.at(-1)!.content, g.text, `answer of ${row.id}`);
    assert.notEqual(row.messages.at(-1)!.content, input.messages.at(-1)!.content);
  }
  // the file is training data for plain `nuggets train`
  const t = runTrain(opts({ data: out, out: join(dir, 'seq'), epochs: 1 }));
  assert.equal(t.result.steps, Math.ceil(rows.length / 4));
});

test('distill-data refuses bad input with one clear error (exit 2)', async () => {
  const texts = join(dir, 'texts.jsonl');
  writeFileSync(texts, JSON.stringify({ text: 'Once upon a time' }) + '\n');
  const cli = async (args: string[]) => {
    const origError = console.error;
    let err = '';
    console.error = (...a: unknown[]) => {
      err += a.map(String).join(' ') + '\n';
    };
    try {
      return { code: await main(['node', 'nuggets', ...args]), err };
    } finally {
      console.error = origError;
    }
  };
  const out = join(dir, 'never.jsonl');
  let r = await cli(['distill-data', teacher, '--data', texts, '--out', out]);
  assert.equal(r.code, 2);
  assert.match(r.err, /texts\.jsonl:1: a \{"text"\} row has no prompt/);
  r = await cli(['distill-data', teacher, '--data', join(dir, 'missing.jsonl'), '--out', out]);
  assert.equal(r.code, 2);
  assert.ok(!existsSync(out), 'nothing written');
});
