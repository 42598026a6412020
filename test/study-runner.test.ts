/**
 * The runner on real (tiny, random) models through the real CLI steps: a clean run with --jobs 2, and
 * a run killed with SIGKILL mid-way, then rerun: the rerun finishes only the missing cells and the
 * table is identical to the clean run's (bit for bit: the children's thread count is fixed).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { InputError } from '../src/errors.js';
import { loadExperiment } from '../src/study/config.js';
import { runExperiment } from '../src/study/runner.js';
import type { ResultsTable } from '../src/study/table.js';
import { writeTinyExperiment } from './study-models.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const quiet = () => {};

function values(t: ResultsTable): Record<string, Record<string, number>> {
  return Object.fromEntries(t.rows.map((r) => [`${r.task}/${r.method}`, r.values]));
}

/** Every number of every cell (exact match, ROUGE-L and the held-out answer loss). */
function cellMetrics(out: string): Record<string, Record<string, number>> {
  const o: Record<string, Record<string, number>> = {};
  for (const m of ['lora', 'transfer']) {
    o[m] = JSON.parse(readFileSync(join(out, `cells/toy/${m}/seed-1/result.json`), 'utf8')).metrics;
  }
  return o;
}

test('a run killed mid-way finishes only the missing cells on rerun and gives the same table', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'nuggets-runner-'));
  try {
    // Exact match needs the eval step too: every cell runs extract (transfer) -> train -> eval.
    const file = writeTinyExperiment(dir, {
      methods: ['lora', 'transfer'],
      seeds: [1],
      metric: 'exact_match',
    });
    const exp = loadExperiment(file);

    // Reference: an uninterrupted run, two jobs at a time.
    const clean = await runExperiment(exp, { out: join(dir, 'clean'), jobs: 2, log: quiet });
    assert.deepEqual(clean.failed, []);
    assert.equal(clean.ran.length, 5, 'one sense job, two reference jobs (teacher, student) and two cells');
    assert.deepEqual(clean.table.missing, []);
    for (const r of clean.table.rows)
      assert.ok(r.n === 1 && Number.isFinite(r.mean!), `${r.method} has a result`);
    const cleanMetrics = cellMetrics(join(dir, 'clean'));
    for (const m of Object.values(cleanMetrics))
      assert.deepEqual(Object.keys(m).sort(), ['answer_loss', 'exact_match', 'rouge_l']);
    // The held-out answer loss of the exact-match task is tabulated too, as a secondary metric.
    const loss = clean.table.secondary.filter((r) => r.metric === 'answer_loss');
    assert.deepEqual(
      loss.map((r) => [r.method, r.values['1']]),
      [
        ['lora', cleanMetrics.lora.answer_loss],
        ['transfer', cleanMetrics.transfer.answer_loss],
      ],
    );
    assert.equal(loss[1].higherIsBetter, false);
    // Reference rows: the teacher and the untouched student, without training, on every metric.
    assert.deepEqual(
      clean.table.references.map((x) => [x.role, x.model, x.metric]),
      [
        ['teacher', 'big', 'exact_match'],
        ['student', 'student', 'exact_match'],
        ['teacher', 'big', 'answer_loss'],
        ['student', 'student', 'answer_loss'],
        ['teacher', 'big', 'rouge_l'],
        ['student', 'student', 'rouge_l'],
      ],
    );
    const ref = (model: string, metric: string) =>
      clean.table.references.find((x) => x.model === model && x.metric === metric)!.value;
    for (const model of ['big', 'student']) {
      // exact match and ROUGE-L from `nuggets eval` on the model alone (no adapter)
      const dirOf = join(dir, 'clean', `reference/${model}--toy`);
      const ev = JSON.parse(readFileSync(join(dirOf, 'eval/results.json'), 'utf8')).results.super_ni;
      assert.equal(ref(model, 'exact_match'), ev['exact_match,none']);
      assert.equal(ref(model, 'rouge_l'), ev['rougeL,none']);
      const steps: string[][] = JSON.parse(readFileSync(join(dirOf, 'result.json'), 'utf8')).spec.steps;
      assert.ok(!steps.some((s) => s.includes('--adapter')));
    }
    // the untouched student's answer loss is the LoRA cell's held-out loss before training (B = 0)
    const before = JSON.parse(
      readFileSync(join(dir, 'clean/cells/toy/lora/seed-1/train/training.json'), 'utf8'),
    ).results.initialEvalLoss;
    assert.equal(ref('student', 'answer_loss'), before);
    assert.ok(ref('big', 'answer_loss')! > 0 && ref('big', 'answer_loss') !== before);

    // The same experiment through the CLI, one job at a time (sense, lora, transfer), killed with
    // SIGKILL (no clean-up) as soon as the lora cell has its result: transfer has just started.
    const out = join(dir, 'killed');
    const child = spawn(
      process.execPath,
      ['--import', 'tsx', resolve('src/cli/run.ts'), 'run', file, '--out', out, '--jobs', '1'],
      { stdio: 'ignore' },
    );
    const loraResult = join(out, 'cells/toy/lora/seed-1/result.json');
    const deadline = Date.now() + 60_000;
    while (!existsSync(loraResult)) {
      assert.ok(Date.now() < deadline, 'the first cell did not finish in time');
      assert.equal(child.exitCode, null, 'the run ended before it could be killed');
      await sleep(50);
    }
    child.kill('SIGKILL');
    await new Promise((r) => child.once('exit', r));
    // The orphaned job child notices its runner is gone and ends itself (it polls every 0.5 s).
    await sleep(1200);
    assert.ok(!existsSync(join(out, 'results.json')), 'the killed run never got to its table');
    assert.ok(!existsSync(join(out, 'cells/toy/transfer/seed-1/result.json')), 'transfer was cut off');
    const loraMtime = statSync(loraResult).mtimeMs;

    const lines: string[] = [];
    const resumed = await runExperiment(exp, { out, jobs: 2, log: (l) => lines.push(l) });
    assert.deepEqual(resumed.failed, []);
    assert.deepEqual(resumed.skipped.sort(), [
      'cells/toy/lora/seed-1',
      'reference/big--toy',
      'reference/student--toy',
      'sense/big--toy',
    ]);
    assert.deepEqual(resumed.ran, ['cells/toy/transfer/seed-1'], 'only the missing cell ran');
    assert.equal(statSync(loraResult).mtimeMs, loraMtime, 'the finished cell was not redone');
    // the killed run left its lock behind: taken over with a note, then the plan line
    assert.match(lines[0], /taking over the stale lock .*run\.lock of PID \d+, which no longer runs/);
    assert.match(lines[1], /2 cells \(1 already finished\)/);
    assert.deepEqual(values(resumed.table), values(clean.table), 'same table as the uninterrupted run');
    assert.deepEqual(cellMetrics(out), cleanMetrics, 'same numbers in every cell');

    // A third run has nothing to do and writes the same table again.
    const again = await runExperiment(exp, { out, jobs: 2, log: quiet });
    assert.deepEqual(again.ran, []);
    assert.deepEqual(
      JSON.parse(readFileSync(join(out, 'results.json'), 'utf8')).rows,
      JSON.parse(JSON.stringify(resumed.table.rows)),
    );

    // Changing an option that went into finished cells is refused, not mixed into the table ...
    const yaml = readFileSync(file, 'utf8');
    writeFileSync(file, yaml.replace('learning-rate: 0.003', 'learning-rate: 0.002'));
    await assert.rejects(
      runExperiment(loadExperiment(file), { out, jobs: 1, log: quiet }),
      (e: unknown) =>
        e instanceof InputError &&
        e.source === out &&
        /different options for 2 job\(s\).*step train ran as: nuggets train .*--learning-rate 0\.003/.test(
          e.problem,
        ),
    );
    // ... and so is a rebuilt student (same path, new file): every job that read it is stale (the two
    // cells and the untouched student's reference row).
    writeFileSync(file, yaml);
    const weights = join(dir, 'models/student/model.safetensors');
    utimesSync(weights, new Date(), new Date(Date.now() + 5000));
    await assert.rejects(
      runExperiment(loadExperiment(file), { out, jobs: 1, log: quiet }),
      (e: unknown) =>
        e instanceof InputError &&
        /different options for 3 job\(s\).*model or task files that have changed since/.test(e.problem),
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('two runs on one folder: the second is refused while the first runs; a stale lock is taken over with a note', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'nuggets-runner-lock-'));
  try {
    const file = writeTinyExperiment(dir, { methods: ['lora'], seeds: [1] });
    const other = join(dir, 'other.yaml');
    writeFileSync(other, readFileSync(file, 'utf8').replace('learning-rate: 0.003', 'learning-rate: 0.01'));
    const out = join(dir, 'run');
    // stand-in jobs that only take time: the lock, not the training, is under test
    const slowJob = [process.execPath, '-e', 'setTimeout(() => {}, 1500)'];
    const first = runExperiment(loadExperiment(file), { out, jobs: 1, command: slowJob, log: quiet });
    await sleep(200);
    await assert.rejects(
      runExperiment(loadExperiment(other), { out, jobs: 1, command: slowJob, log: quiet }),
      (e: unknown) =>
        e instanceof InputError && /another nuggets run \(PID \d+\) is using this folder/.test(e.message),
    );
    const plan = JSON.parse(readFileSync(join(out, 'plan.json'), 'utf8')) as { jobs: { spec: unknown }[] };
    assert.match(JSON.stringify(plan.jobs), /0\.003/);
    assert.doesNotMatch(JSON.stringify(plan.jobs), /0\.01\b/);
    await first;
    assert.equal(existsSync(join(out, 'run.lock')), false, 'the lock is released at the end');

    // a lock whose process is gone (killed with -9) is taken over
    const dead = spawn(process.execPath, ['-e', '0']);
    await new Promise((r) => dead.on('exit', r));
    writeFileSync(join(out, 'run.lock'), `${dead.pid}\n`);
    const lines: string[] = [];
    await runExperiment(loadExperiment(other), { out, jobs: 1, command: slowJob, log: (l) => lines.push(l) });
    assert.ok(
      lines.some((l) => l.includes(`stale lock`) && l.includes(`PID ${dead.pid}`)),
      lines.join('\n'),
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
