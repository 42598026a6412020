/**
 * The distillation methods in the study runner, on tiny random models through the real CLI steps:
 * kd-logits, kd-sequence and transfer+kd, one seed, one epoch. Every cell writes its result; the
 * kd-logits cells share one teacher-logit cache; the kd-sequence cell trains on the teacher's answers.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { appendFileSync, existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadExperiment } from '../src/study/config.js';
import { runExperiment } from '../src/study/runner.js';
import { writeTinyExperiment } from './study-models.js';

test('kd-logits, kd-sequence and transfer+kd run as study cells and write their results', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'nuggets-study-kd-'));
  try {
    const file = writeTinyExperiment(dir, {
      methods: ['kd-logits', 'kd-sequence', 'transfer+kd'],
      seeds: [1],
    });
    appendFileSync(file, ['distill-data:', '  max-new-tokens: 8', ''].join('\n'));
    const exp = loadExperiment(file);
    const out = join(dir, 'run');
    const r = await runExperiment(exp, { out, jobs: 1, log: () => {} });
    assert.deepEqual(r.failed, []);
    assert.equal(r.ran.length, 6, 'one sense job (transfer+kd only), two reference jobs and three cells');
    assert.deepEqual(r.table.missing, []);
    const results: Record<string, { value: number; spec: { steps: string[][] } }> = {};
    for (const m of ['kd-logits', 'kd-sequence', 'transfer+kd']) {
      results[m] = JSON.parse(readFileSync(join(out, `cells/toy/${m}/seed-1/result.json`), 'utf8'));
      assert.ok(Number.isFinite(results[m].value) && results[m].value > 0, `${m}: ${results[m].value}`);
    }
    // kd-logits and transfer+kd read one cache of the task's teacher logits
    const cache = join(out, 'kd-cache', 'big--toy');
    assert.ok(existsSync(join(cache, 'index.json')));
    for (const m of ['kd-logits', 'transfer+kd']) {
      const train = results[m].spec.steps.find((s) => s[0] === 'train')!;
      assert.equal(train[train.indexOf('--kd-cache') + 1], cache);
      assert.equal(train[train.indexOf('--kd-teacher') + 1], exp.teachers.big);
    }
    assert.equal(results['transfer+kd'].spec.steps[0][0], 'extract');
    // kd-sequence: distill-data first, then training on its answers
    const seq = results['kd-sequence'].spec.steps;
    assert.deepEqual(
      seq.map((s) => s[0]),
      ['distill-data', 'train'],
    );
    const answers = join(out, 'cells/toy/kd-sequence/seed-1/distill/answers.jsonl');
    assert.equal(seq[1][seq[1].indexOf('--data') + 1], answers);
    assert.equal(readFileSync(answers, 'utf8').trim().split('\n').length, 16);
    assert.ok(!seq[1].includes('--kd-teacher'));
    // the three methods train differently
    const values = Object.values(results).map((x) => x.value);
    assert.equal(new Set(values).size, 3);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
