/**
 * `nuggets run`: executes a plan (plan.ts) with up to `jobs` child processes at a time and collects
 * the results table.
 *
 * - Every job runs in its own child (`nuggets __job <run-dir> <id>`, job.ts), its output appended to
 *   <job>/log.txt. Sense jobs come first in the queue; a cell starts once the sensitivity file it
 *   reads exists, so one sense run serves every cell of that teacher x task.
 * - Finished jobs (a cell's result.json, a sense job's step marker) are skipped on rerun, and cut-off
 *   jobs continue from their finished steps, so a killed run finishes only what is missing and gives
 *   the same table. A finished job recorded with other options than the plan's is refused, never mixed
 *   into the table.
 * - Children get OMP_NUM_THREADS / OPENBLAS_NUM_THREADS = the experiment's `threads`, fixed whatever
 *   --jobs is: the kernels' reductions depend on the thread count, and the table must not depend on
 *   --jobs.
 * - A child whose runner dies (kill -9) ends itself (orphan-guard.ts), so a rerun never races it.
 * - One run per folder at a time (lock.ts): a second one is refused instead of mixing configurations.
 * - Reference jobs (the task's teacher and the untouched student, no training) run like cells and
 *   are cached the same way; a scale study (`sizes`) runs every size's jobs in one queue.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { InputError } from '../errors.js';
import { writeJsonAtomic } from '../io/atomic.js';
import { RUNNER_PID_ENV } from './orphan-guard.js';
import { sizeRunsTask, type Experiment } from './config.js';
import { loadModelSource } from '../io/load.js';
import { lockRunFolder } from './lock.js';
import { buildPlan, PLAN_FILE, RESULT_FILE, type Job, type Plan } from './plan.js';
import { buildTable, tableMarkdown, writeTable, type ResultsTable } from './table.js';

export interface RunOptions {
  /** Run folder. */
  out: string;
  /** Child processes at a time. */
  jobs: number;
  /** How to start `nuggets` in a child (default: this installation's CLI under this Node). */
  command?: string[];
  log?: (line: string) => void;
  /** Aborting kills the children and ends the run (Ctrl-C). */
  signal?: AbortSignal;
}

export interface JobFailure {
  id: string;
  reason: string;
  log: string;
}

export interface RunSummary {
  out: string;
  plan: Plan;
  /** Jobs already finished before this run. */
  skipped: string[];
  /** Jobs this run finished. */
  ran: string[];
  failed: JobFailure[];
  interrupted: boolean;
  table: ResultsTable;
  files: { json: string; md: string };
  seconds: number;
}

/** `nuggets` as a child process: node [--import tsx] <cli entry> (source tree or built dist/). */
export function nuggetsCommand(): string[] {
  const here = fileURLToPath(import.meta.url);
  if (here.endsWith('.ts')) {
    return [
      process.execPath,
      '--import',
      import.meta.resolve('tsx'),
      resolve(dirname(here), '../cli/run.ts'),
    ];
  }
  return [process.execPath, resolve(dirname(here), '../cli/run.js')];
}

const sameJson = (a: unknown, b: unknown) => JSON.stringify(a) === JSON.stringify(b);

function readJson(path: string): Record<string, unknown> | null {
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as Record<string, unknown>;
  } catch {
    return null;
  }
}

/** Is the job finished? Throws when its recorded options differ from the plan's. */
function finished(job: Job, conflicts: string[]): boolean {
  // Any step already done must have run with the planned command line.
  for (const step of job.steps) {
    const m = readJson(join(job.dir, 'steps', `${step.name}.json`));
    if (!m) continue;
    const planned = m.planned;
    if (planned !== undefined && !sameJson(planned, step.argv)) {
      conflicts.push(`${job.id} (step ${step.name} ran as: nuggets ${(planned as string[]).join(' ')})`);
      return false;
    }
    if (m.inputs !== undefined && !sameJson(m.inputs, job.spec.inputs)) {
      conflicts.push(`${job.id} (step ${step.name} ran on model or task files that have changed since)`);
      return false;
    }
  }
  if (job.kind === 'sense') return existsSync(join(job.dir, 'steps', 'sense.json')) && existsSync(job.output);
  const r = readJson(join(job.dir, RESULT_FILE));
  if (!r) return false;
  if (!sameJson(r.spec, job.spec)) {
    const spec = r.spec as Record<string, unknown> | undefined;
    const what =
      spec && sameJson(spec.steps, job.spec.steps)
        ? 'its model or task files changed since'
        : 'result.json from other options';
    conflicts.push(`${job.id} (${what})`);
    return false;
  }
  return true;
}

/**
 * The parameter count of each size's student (the x axis of the scale plot), after checking that
 * every size's models exist: a size whose student or teacher is missing (not built yet) stops the run
 * before anything starts, naming the folder.
 */
export function studentParams(exp: Experiment): Record<string, number> {
  const out: Record<string, number> = {};
  for (const s of exp.sizes ?? []) {
    const used = new Set(
      exp.tasks
        .filter((t) => sizeRunsTask(s, t.name))
        .map((t) => t.teacher)
        .filter((t) => t !== 'student'),
    );
    for (const [what, p] of [
      ['student', s.student],
      ...[...used].map((t) => [`teacher "${t}"`, s.teachers[t]]),
    ]) {
      if (!existsSync(p))
        throw new InputError(p, `missing: the ${what} of size "${s.name}" in ${exp.file} (build it first)`);
    }
    const src = loadModelSource(s.student);
    try {
      out[s.name] = src.weights.names().reduce((a, n) => a + numel(src.weights.info(n).shape), 0);
    } finally {
      src.weights.close();
    }
  }
  return out;
}

const numel = (shape: readonly number[]) => shape.reduce((a, b) => a * b, 1);

/** Runs an experiment into opts.out; returns the summary (failures are listed, not thrown). */
export async function runExperiment(exp: Experiment, opts: RunOptions): Promise<RunSummary> {
  const t0 = performance.now();
  const out = resolve(opts.out);
  const log = opts.log ?? ((l: string) => process.stderr.write(l + '\n'));
  if (!Number.isInteger(opts.jobs) || opts.jobs < 1)
    throw new InputError('--jobs', `must be a positive integer, got ${opts.jobs}`);
  const params = studentParams(exp);
  mkdirSync(out, { recursive: true });
  const lock = lockRunFolder(out, log);
  try {
    return await runLocked(exp, params, opts, out, log, t0);
  } finally {
    lock.release();
  }
}

async function runLocked(
  exp: Experiment,
  params: Record<string, number>,
  opts: RunOptions,
  out: string,
  log: (line: string) => void,
  t0: number,
): Promise<RunSummary> {
  const plan = buildPlan(exp, out, params);

  const conflicts: string[] = [];
  const done = new Set<string>();
  for (const j of plan.jobs) if (finished(j, conflicts)) done.add(j.id);
  if (conflicts.length > 0) {
    throw new InputError(
      out,
      `holds work from different options for ${conflicts.length} job(s): ${conflicts.slice(0, 5).join('; ')}${conflicts.length > 5 ? '; ...' : ''}. ` +
        'Use another output folder, or delete those job folders to redo them.',
    );
  }
  writeJsonAtomic(join(out, PLAN_FILE), plan);

  // Only the sense jobs that an unfinished cell still needs are run.
  const cells = plan.jobs.filter((j) => j.kind === 'cell');
  const neededSense = new Set(cells.filter((c) => !done.has(c.id) && c.needs).map((c) => c.needs!));
  const pending = plan.jobs.filter((j) => !done.has(j.id) && (j.kind !== 'sense' || neededSense.has(j.id)));
  const skipped = plan.jobs.filter((j) => done.has(j.id)).map((j) => j.id);
  const cellsDone = cells.filter((c) => done.has(c.id)).length;
  log(
    `nuggets run: ${plan.name}: ${cells.length} cells (${cellsDone} already finished), ${pending.length} job(s) to run with --jobs ${opts.jobs}; folder ${out}`,
  );

  const command = opts.command ?? nuggetsCommand();
  // OMP_WAIT_POLICY=passive: OpenMP workers that spin while waiting burn the CPU the other jobs need.
  const env = {
    OMP_WAIT_POLICY: 'passive',
    ...process.env,
    OMP_NUM_THREADS: String(plan.threads),
    OPENBLAS_NUM_THREADS: String(plan.threads),
    [RUNNER_PID_ENV]: String(process.pid),
  };
  const running = new Map<string, ChildProcess>();
  const failed: JobFailure[] = [];
  const failedIds = new Set<string>();
  const ran: string[] = [];
  let interrupted = false;
  let finishedCount = 0;
  const total = pending.length;

  const runOne = (job: Job): Promise<void> =>
    new Promise((resolveJob) => {
      mkdirSync(job.dir, { recursive: true });
      const logPath = join(job.dir, 'log.txt');
      const fd = openSync(logPath, 'a');
      const t = performance.now();
      const child = spawn(command[0], [...command.slice(1), '__job', out, job.id], {
        env,
        stdio: ['ignore', fd, fd],
      });
      closeSync(fd);
      running.set(job.id, child);
      log(`started ${job.id}`);
      const finish = (reason: string | null) => {
        running.delete(job.id);
        finishedCount++;
        const secs = ((performance.now() - t) / 1000).toFixed(1);
        if (reason === null) {
          ran.push(job.id);
          done.add(job.id);
          let what = '';
          if (job.kind !== 'sense') {
            const r = readJson(join(job.dir, RESULT_FILE));
            if (r && typeof r.value === 'number') what = `: ${job.metric} ${r.value.toFixed(4)}`;
          }
          log(`[${finishedCount}/${total}] ${job.id} done${what} (${secs} s)`);
        } else if (!interrupted) {
          failed.push({ id: job.id, reason, log: logPath });
          failedIds.add(job.id);
          log(`[${finishedCount}/${total}] ${job.id} FAILED: ${reason} (see ${logPath})`);
        }
        resolveJob();
      };
      child.on('error', (e) => finish(`could not start: ${e.message}`));
      child.on('exit', (code, sig) =>
        finish(code === 0 ? null : sig ? `killed by ${sig}` : `exit code ${code}`),
      );
    });

  const onAbort = () => {
    interrupted = true;
    for (const c of running.values()) c.kill('SIGTERM');
  };
  opts.signal?.addEventListener('abort', onAbort, { once: true });
  if (opts.signal?.aborted) onAbort();

  try {
    const queue = [...pending];
    const active = new Set<Promise<void>>();
    for (;;) {
      if (interrupted) break;
      // Drop cells whose sense job failed: they cannot run.
      for (let i = queue.length - 1; i >= 0; i--) {
        const j = queue[i];
        if (j.kind === 'cell' && j.needs && failedIds.has(j.needs)) {
          queue.splice(i, 1);
          failed.push({
            id: j.id,
            reason: `its sensitivity job ${j.needs} failed`,
            log: join(out, j.needs, 'log.txt'),
          });
          failedIds.add(j.id);
        }
      }
      while (active.size < opts.jobs) {
        const idx = queue.findIndex((j) => j.kind !== 'cell' || !j.needs || done.has(j.needs));
        if (idx < 0) break;
        const [job] = queue.splice(idx, 1);
        const p: Promise<void> = runOne(job).then(() => {
          active.delete(p);
        });
        active.add(p);
      }
      if (active.size === 0) break;
      await Promise.race(active);
    }
    await Promise.all(
      [...running.values()].map(
        (c) =>
          new Promise((r) => (c.exitCode !== null || c.signalCode !== null ? r(null) : c.once('exit', r))),
      ),
    );
  } finally {
    opts.signal?.removeEventListener('abort', onAbort);
  }

  const table = buildTable(plan);
  const files = writeTable(out, table);
  if (!interrupted) log(tableMarkdown(table));
  return {
    out,
    plan,
    skipped,
    ran,
    failed,
    interrupted,
    table,
    files,
    seconds: (performance.now() - t0) / 1000,
  };
}
