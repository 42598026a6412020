/**
 * `nuggets run <experiment.yaml>`: the experiment runner (src/study/): a grid of methods x training
 * seeds x tasks, each cell "sense -> extract -> train -> eval" in its own folder, finished cells
 * skipped on rerun, `--jobs N` cells at a time in child processes, and one results table (mean, std,
 * n, paired comparison against plain LoRA) as results.json + results.md in the run folder.
 *
 * `nuggets __job <run-dir> <job-id>` (hidden) is the child process of one job (src/study/job.ts: the
 * job's steps as library calls).
 *
 * The library's `runExperiment` (src/api/steps.ts) does the work; this module adds Ctrl-C handling.
 */
import { CommanderError, InvalidArgumentError, type Command } from 'commander';
import { resolve } from 'node:path';
import { runExperiment } from '../api/steps.js';
import { runJob } from '../study/job.js';
import { startOrphanGuard } from '../study/orphan-guard.js';
import type { RunSummary } from '../study/runner.js';

export interface RunCommandOptions {
  out?: string;
  jobs: number;
}

/** A commander value parser: a mistake is a usage error (one line with the help hint, exit 2). */
export function positiveInt(raw: string): number {
  const v = Number(raw);
  if (!Number.isInteger(v) || v < 1) throw new InvalidArgumentError('expected a positive integer.');
  return v;
}

/** Runs an experiment file with Ctrl-C handling: children are stopped and the run can be resumed. */
export async function runExperimentFile(file: string, o: RunCommandOptions): Promise<RunSummary> {
  const ac = new AbortController();
  const stop = () => {
    process.stderr.write(
      '\nnuggets run: stopping the running jobs (rerun the same command to finish the missing cells)\n',
    );
    ac.abort();
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  try {
    return await runExperiment({ experiment: file, out: o.out, jobs: o.jobs, signal: ac.signal });
  } finally {
    process.off('SIGINT', stop);
    process.off('SIGTERM', stop);
  }
}

export function registerExperiment(program: Command): void {
  program
    .command('run')
    .description(
      'run an experiment grid (methods x seeds x tasks: sense -> extract -> train -> eval per cell) and tabulate it',
    )
    .argument('<experiment>', 'experiment file (YAML), e.g. experiments/study.yaml')
    .option('-o, --out <folder>', 'run folder (default: "out" in the experiment file)')
    .option('-j, --jobs <n>', 'cells run at the same time, each in its own process', positiveInt, 1)
    .action(async (file: string, o: RunCommandOptions) => {
      const s = await runExperimentFile(file, o);
      if (s.interrupted) {
        process.stderr.write(
          `nuggets run: interrupted; ${s.ran.length} job(s) finished in this session. Rerun to finish the rest.\n`,
        );
        throw new CommanderError(130, 'nuggets.run.interrupted', 'interrupted');
      }
      process.stdout.write(`results: ${s.files.md}\n         ${s.files.json}\n`);
      if (s.failed.length > 0) {
        process.stderr.write(
          `nuggets run: ${s.failed.length} job(s) failed:\n${s.failed.map((f) => `  ${f.id}: ${f.reason} (log: ${f.log})`).join('\n')}\n`,
        );
        // Exit status 1 without a stack (main() returns a CommanderError's code as is).
        throw new CommanderError(1, 'nuggets.run.failed', 'some jobs failed');
      }
    });

  program
    .command('__job', { hidden: true })
    .description('internal: run one job of a run folder (started by "nuggets run")')
    .argument('<run-dir>')
    .argument('<job-id>')
    .action(async (runDir: string, jobId: string) => {
      startOrphanGuard();
      const code = await runJob(resolve(runDir), jobId);
      if (code !== 0) throw new CommanderError(code, 'nuggets.job.failed', `job ${jobId} failed`);
    });
}
