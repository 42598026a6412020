/**
 * `nuggets demo`: the whole pipeline on the bundled models — sense -> extract -> train -> eval for a
 * small grid (experiments/demo.yaml: the zoo student, its teachers, both miniature tasks), then the
 * HTML report — and prints where the report is. Rerunning it reuses the finished cells.
 */
import { CommanderError, type Command } from 'commander';
import { existsSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { InputError } from '../errors.js';
import { loadExperiment } from '../study/config.js';
import { positiveInt, runExperimentFile } from './experiment.js';
import { makeReport } from './report.js';

/** experiments/<name> of this installation (source tree or built dist/). */
export function bundledExperiment(name: string): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const p = join(dir, 'experiments', name);
    if (existsSync(p)) return p;
    const up = dirname(dir);
    if (up === dir)
      throw new InputError(`experiments/${name}`, 'not found next to this nuggets installation');
    dir = up;
  }
}

export interface DemoOptions {
  out: string;
  jobs: number;
  experiment?: string;
}

export async function runDemo(
  o: DemoOptions,
): Promise<{ report: string; results: string; seconds: number; failed: number }> {
  const t0 = performance.now();
  const file = o.experiment ? resolve(o.experiment) : bundledExperiment('demo.yaml');
  const exp = loadExperiment(file);
  // Refuse early, with the fix, when the bundled models or tasks are missing (a partial checkout).
  const needed = [
    exp.student,
    ...Object.values(exp.teachers),
    ...exp.tasks.flatMap((t) => [t.seeds, t.train, t.test]),
  ];
  for (const p of needed) {
    if (!existsSync(p))
      throw new InputError(
        p,
        'missing: the demo needs the bundled zoo/ and tasks/ (rebuild them with scripts/build-zoo.sh)',
      );
  }
  process.stderr.write(
    `nuggets demo: ${exp.name}: ${exp.methods.length} methods x ${exp.seeds.length} seeds x ${exp.tasks.length} tasks into ${o.out}\n`,
  );
  const s = await runExperimentFile(file, { out: o.out, jobs: o.jobs });
  if (s.interrupted) {
    process.stderr.write('nuggets demo: interrupted; run it again to finish the missing cells\n');
    throw new CommanderError(130, 'nuggets.demo.interrupted', 'interrupted');
  }
  const out = resolve(o.out);
  const report = makeReport(out, join(out, 'report.html'));
  return {
    report: report.path,
    results: s.files.md,
    seconds: (performance.now() - t0) / 1000,
    failed: s.failed.length,
  };
}

export function registerDemo(program: Command): void {
  program
    .command('demo')
    .description(
      'run the whole pipeline on the bundled models (sense, extract, train, eval for a small grid) and write the HTML report',
    )
    .option('-o, --out <folder>', 'run folder', 'out/demo')
    .option('-j, --jobs <n>', 'cells run at the same time', positiveInt, 2)
    .option('--experiment <file>', 'another experiment file instead of experiments/demo.yaml')
    .action(async (o: DemoOptions) => {
      const r = await runDemo(o);
      const rel = (p: string) => {
        const x = relative(process.cwd(), p);
        return x.startsWith('..') ? p : x;
      };
      process.stdout.write(`results: ${rel(r.results)}\nreport:  ${rel(r.report)}  (open it in a browser)\n`);
      process.stderr.write(
        `nuggets demo: done in ${(r.seconds / 60).toFixed(1)} min${r.failed ? `; ${r.failed} job(s) failed (see above)` : ''}\n`,
      );
      if (r.failed) throw new CommanderError(1, 'nuggets.demo.failed', 'some jobs failed');
    });
}
