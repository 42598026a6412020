/**
 * A scale study end to end on tiny random models (seconds): two student sizes sharing one teacher,
 * plain LoRA, the transfer and logit distillation, two seeds, one task scored by held-out answer loss
 * (exact match is 0 everywhere on random models; the runner test covers the eval path of the
 * reference rows). Checks the per-size folders, the reference rows (teacher and untouched student, no training) against independent numbers, and the
 * difference-from-LoRA points against the paired means computed here from the cells' result.json.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { InputError } from '../src/errors.js';
import { loadExperiment } from '../src/study/config.js';
import { runExperiment } from '../src/study/runner.js';
import { tQuantile } from '../src/study/stats.js';
import { writeTinyExperiment } from './study-models.js';

const quiet = () => {};
const readJson = (p: string) => JSON.parse(readFileSync(p, 'utf8'));

/** Parameters of a llama-style HF config with untied head, counted from its shapes. */
function paramsOf(folder: string): number {
  const c = readJson(join(folder, 'config.json'));
  const d = c.hidden_size;
  const hd = c.head_dim ?? d / c.num_attention_heads;
  const q = c.num_attention_heads * hd * d;
  const kv = c.num_key_value_heads * hd * d;
  const layer = 2 * q + 2 * kv + 3 * d * c.intermediate_size + 2 * d;
  return c.vocab_size * d * 2 + c.num_hidden_layers * layer + d;
}

test('scale study: two sizes, reference rows and the difference from LoRA per size', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'nuggets-scale-'));
  try {
    const file = writeTinyExperiment(dir, {
      methods: ['lora', 'transfer', 'kd-logits'],
      seeds: [1, 2],
      sizes: true,
    });
    const exp = loadExperiment(file);
    assert.deepEqual(
      exp.sizes!.map((s) => [s.name, s.learningRate, s.teachers.big]),
      [
        ['s', 0.003, join(dir, 'models/teacher')],
        ['m', 0.002, join(dir, 'models/teacher')],
      ],
    );
    const out = join(dir, 'run');
    const r = await runExperiment(exp, { out, jobs: 2, log: quiet });
    assert.deepEqual(r.failed, []);
    // per size: one sense job, two reference jobs (teacher, student), 3 methods x 2 seeds
    assert.equal(r.ran.length, 2 * (1 + 2 + 6));
    assert.deepEqual(r.table.missing, []);
    const t = r.table;

    // Each size trains its own student with its own learning rate, in its own folder.
    for (const [size, lr, student] of [
      ['s', '0.003', 'models/student'],
      ['m', '0.002', 'models/student-m'],
    ]) {
      const spec = readJson(join(out, `sizes/${size}/cells/toy/transfer/seed-1/result.json`)).spec;
      const train: string[] = spec.steps.find((s: string[]) => s[0] === 'train');
      assert.equal(train[train.indexOf('--learning-rate') + 1], lr);
      assert.equal(train[train.indexOf('--student') + 1], join(dir, student));
      const extract: string[] = spec.steps.find((s: string[]) => s[0] === 'extract');
      assert.equal(extract[extract.indexOf('--student') + 1], join(dir, student));
      // each size's student has its own teacher-logit cache (the cache is keyed by the student's data)
      const kd = readJson(join(out, `sizes/${size}/cells/toy/kd-logits/seed-2/result.json`)).spec.steps[0];
      const cache = join(out, `sizes/${size}/kd-cache/big--toy`);
      assert.equal(kd[kd.indexOf('--kd-cache') + 1], cache);
      assert.ok(existsSync(join(cache, 'index.json')));
    }
    assert.deepEqual(
      t.sizes!.map((s) => [s.name, s.params, s.learningRate]),
      [
        ['s', paramsOf(join(dir, 'models/student')), 0.003],
        ['m', paramsOf(join(dir, 'models/student-m')), 0.002],
      ],
    );
    assert.ok(t.sizes![0].params! < t.sizes![1].params!);

    // Method rows per size x task.
    assert.deepEqual(
      t.rows.map((x) => [x.size, x.method, x.n]),
      [
        ['s', 'lora', 2],
        ['s', 'transfer', 2],
        ['s', 'kd-logits', 2],
        ['m', 'lora', 2],
        ['m', 'transfer', 2],
        ['m', 'kd-logits', 2],
      ],
    );

    // Reference rows: the teacher and the untouched student.
    for (const size of ['s', 'm']) {
      const refs = t.references.filter((x) => x.size === size);
      assert.deepEqual(
        refs.map((x) => [x.role, x.model, x.metric]),
        [
          ['teacher', 'big', 'answer_loss'],
          ['student', 'student', 'answer_loss'],
        ],
      );
      // The untouched student's answer loss is the plain-LoRA cells' held-out loss before training
      // (B = 0 adds exactly nothing), measured by the trainer on its own.
      const before = readJson(join(out, `sizes/${size}/cells/toy/lora/seed-1/train/training.json`)).results
        .initialEvalLoss;
      const student = refs.find((x) => x.role === 'student' && x.metric === 'answer_loss')!;
      assert.equal(student.value, before);
      const teacher = refs.find((x) => x.role === 'teacher')!;
      assert.ok(Number.isFinite(teacher.value) && teacher.value! > 0 && teacher.value !== student.value);
    }
    // One teacher for both sizes: the same reference numbers; different students: different ones.
    const refValue = (size: string, role: string) =>
      t.references.find((x) => x.size === size && x.role === role && x.metric === 'answer_loss')!.value;
    assert.equal(refValue('s', 'teacher'), refValue('m', 'teacher'));
    assert.notEqual(refValue('s', 'student'), refValue('m', 'student'));

    // The scaling points: the paired mean of (method - lora) per size, from the cells themselves,
    // with the 95% paired t interval.
    assert.deepEqual(
      t.scaling!.map((p) => `${p.method}/${p.size}`),
      ['transfer/s', 'transfer/m', 'kd-logits/s', 'kd-logits/m'],
    );
    for (const p of t.scaling!) {
      const v = (m: string, seed: number) =>
        readJson(join(out, `sizes/${p.size}/cells/toy/${m}/seed-${seed}/result.json`)).value as number;
      const diffs = [1, 2].map((s) => v(p.method, s) - v('lora', s));
      const mean = (diffs[0] + diffs[1]) / 2;
      const se = Math.abs(diffs[0] - diffs[1]) / 2; // sd / sqrt(2) for two values
      assert.equal(p.n, 2);
      assert.ok(diffs.every((x) => x !== 0) && diffs[0] !== diffs[1], 'the methods really differ');
      assert.ok(Math.abs(p.meanDiff! - mean) < 1e-15, `${p.size}: ${p.meanDiff} vs ${mean}`);
      assert.ok(Math.abs(p.stdErr! - se) < 1e-12);
      const half = 12.706204736174707 * se; // t(0.975, df 1)
      assert.ok(Math.abs(p.ciLow! - (mean - half)) < 1e-9 && Math.abs(p.ciHigh! - (mean + half)) < 1e-9);
      assert.equal(p.params, t.sizes!.find((s) => s.name === p.size)!.params);
    }
    assert.ok(Math.abs(tQuantile(0.95, 1) - 12.706204736174707) < 1e-9);

    // The Markdown table has a section per size, the reference rows and the scaling table.
    const md = readFileSync(r.files.md, 'utf8');
    assert.match(md, /### size s: student student, [\d,]+ parameters, learning rate 0\.003/);
    assert.match(md, /### size m: student student-m, [\d,]+ parameters, learning rate 0\.002/);
    assert.equal((md.match(/\| \*teacher big, no training\* \| \d\.\d{4} \|/g) ?? []).length, 2);
    assert.equal((md.match(/\| \*student, no training\* \| \d\.\d{4} \|/g) ?? []).length, 2);
    assert.match(md, /### Difference from `lora` against student size/);
    assert.match(md, /\| transfer \| m \| [\d,]+ \| 2 \| [+-]\d\.\d{4} \|/);

    // A second run has nothing to do: reference jobs are cached like cells.
    const again = await runExperiment(exp, { out, jobs: 1, log: quiet });
    assert.deepEqual(again.ran, []);
    assert.deepEqual(again.table.references, t.references);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('scale study: a size whose student is not built yet stops the run, naming the folder', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'nuggets-scale-missing-'));
  try {
    const file = writeTinyExperiment(dir, { methods: ['lora'], seeds: [1], sizes: true });
    rmSync(join(dir, 'models/student-m'), { recursive: true });
    const out = join(dir, 'run');
    await assert.rejects(
      runExperiment(loadExperiment(file), { out, jobs: 1, log: quiet }),
      (e: unknown) =>
        e instanceof InputError &&
        e.source === join(dir, 'models/student-m') &&
        /the student of size "m"/.test(e.problem),
    );
    assert.ok(!existsSync(join(out, 'plan.json')), 'nothing was started');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
