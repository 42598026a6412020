/**
 * Grid expansion: an experiment becomes a list of jobs with their exact `nuggets` command lines.
 *
 *   sense/<teacher>--<task>/          one sensitivity file per teacher x task, shared by every cell
 *                                     that needs it (teacher "student" for the self-teacher control)
 *   cells/<task>/<method>/seed-<n>/   one cell: extract (when the method has one) -> train -> eval,
 *                                     then result.json; a kd-sequence cell first writes the teacher's
 *                                     answers (distill-data), which its training step reads
 *   kd-cache/<teacher>--<task>/       the teacher-logit cache of the task's kd-logits cells (shared:
 *                                     the same training data gives the same cache for every seed)
 *
 * A job's `spec` is everything that determines its output (the argv of its steps and the metric);
 * a finished job whose recorded spec differs from the plan's is refused instead of silently mixed
 * into the table (see runner.ts).
 */
import { SENSITIVITY_FILE } from '../transfer/sense/output.js';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { toFlags } from '../config/cli.js';
import { METRICS, type Experiment, type MetricName } from './config.js';
import { BASELINE, type MethodSpec } from './methods.js';

export const PLAN_FILE = 'plan.json';
export const RESULT_FILE = 'result.json';
/** Placeholder in the eval options (and argv), replaced by the trained adapter folder once training has run. */
export const ADAPTER_PLACEHOLDER = '{trained-adapter}';

export type StepName = 'sense' | 'distill-data' | 'extract' | 'train' | 'eval';

export interface StepPlan {
  name: StepName;
  /**
   * The options the step's library function is called with (src/api/steps.ts; validated there by
   * the command's schema).
   */
  options: Record<string, unknown>;
  /** The same options as the command line after "nuggets" (e.g. ["train", "--student", ...]): commands.sh. */
  argv: string[];
}

/** A step called with `options`; its command line is derived from the very same options. */
export function stepPlan(name: StepName, options: Record<string, unknown>): StepPlan {
  return { name, options, argv: [name, ...toFlags(name, options)] };
}

interface JobBase {
  id: string;
  /** Absolute job folder. */
  dir: string;
  steps: StepPlan[];
  spec: Record<string, unknown>;
}

export interface SenseJob extends JobBase {
  kind: 'sense';
  teacher: string;
  task: string;
  /** The sensitivity file. */
  output: string;
}

export interface CellJob extends JobBase {
  kind: 'cell';
  task: string;
  method: string;
  seed: number;
  metric: MetricName;
  higherIsBetter: boolean;
  /** Id of the sense job this cell reads, if any. */
  needs: string | null;
  initDir: string | null;
  trainDir: string;
  evalDir: string;
}

export type Job = SenseJob | CellJob;

export interface Plan {
  experiment: string;
  name: string;
  out: string;
  threads: number;
  baseline: string;
  tasks: Array<{
    name: string;
    metric: MetricName;
    higherIsBetter: boolean;
    label: string;
    teacher: string;
    description?: string;
  }>;
  methods: Array<{ name: string; description: string; teacher: MethodSpec['teacher'] }>;
  seeds: number[];
  jobs: Job[];
}

export { SENSITIVITY_FILE };

export function senseId(teacher: string, task: string): string {
  return `sense/${teacher}--${task}`;
}

export function cellId(task: string, method: string, seed: number): string {
  return `cells/${task}/${method}/seed-${seed}`;
}

/**
 * What identifies an input's current contents without reading it: size and modification time of the
 * file, or of every non-hidden file directly inside a folder. Part of each job's spec, so a rebuilt
 * model or regenerated task file makes finished cells stale (refused) instead of silently reused.
 */
export function fingerprint(path: string): string {
  if (!existsSync(path)) return 'missing';
  const st = statSync(path);
  if (!st.isDirectory()) return `${st.size}:${Math.round(st.mtimeMs)}`;
  return readdirSync(path)
    .filter((n) => !n.startsWith('.'))
    .sort()
    .map((n) => {
      const f = statSync(join(path, n));
      return f.isFile() ? `${n}=${f.size}:${Math.round(f.mtimeMs)}` : null;
    })
    .filter((x) => x !== null)
    .join(',');
}

/** Train options without the distillation term's (cells that do not distil keep their usual argv). */
function withoutKd(train: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(train).filter(([k]) => !k.startsWith('kd')));
}

/** Expands the grid in table order: task, then method, then seed. */
export function buildPlan(exp: Experiment, out: string): Plan {
  const jobs: Job[] = [];
  const prints = new Map<string, string>();
  const print = (p: string) => {
    if (!prints.has(p)) prints.set(p, fingerprint(p));
    return prints.get(p)!;
  };
  const senses = new Map<string, SenseJob>();
  const rank = exp.train.rank ?? 16;
  const alpha = exp.train.alpha ?? 16;

  const ensureSense = (teacher: string, task: Experiment['tasks'][number]): SenseJob => {
    const id = senseId(teacher, task.name);
    const have = senses.get(id);
    if (have) return have;
    const dir = join(out, id);
    const output = join(dir, SENSITIVITY_FILE);
    const teacherPath = teacher === 'student' ? exp.student : exp.teachers[teacher];
    const step = stepPlan('sense', {
      ...exp.sense,
      teacher: teacherPath,
      seeds: task.seeds,
      out: output,
      progress: false,
    });
    const inputs = { teacher: print(teacherPath), seeds: print(task.seeds) };
    const job: SenseJob = {
      kind: 'sense',
      id,
      dir,
      teacher,
      task: task.name,
      output,
      steps: [step],
      spec: { steps: [step.argv], inputs },
    };
    senses.set(id, job);
    jobs.push(job);
    return job;
  };

  const cells: CellJob[] = [];
  for (const task of exp.tasks) {
    for (const m of exp.methods) {
      const teacher = m.teacher === 'task' ? task.teacher : m.teacher === 'student' ? 'student' : null;
      // distillation-only methods read the teacher but not its sensitivity
      const sense = teacher === null || !m.extract ? null : ensureSense(teacher, task);
      const teacherPath =
        teacher === null ? null : teacher === 'student' ? exp.student : exp.teachers[teacher];
      for (const seed of exp.seeds) {
        const id = cellId(task.name, m.name, seed);
        const dir = join(out, id);
        const initDir = m.extract ? join(dir, 'init') : null;
        const trainDir = join(dir, 'train');
        const evalDir = join(dir, 'eval');
        const steps: StepPlan[] = [];
        let trainData = task.train;
        if (m.distill === 'sequence') {
          trainData = join(dir, 'distill', 'answers.jsonl');
          steps.push(
            stepPlan('distill-data', {
              ...exp.distillData,
              teacher: teacherPath,
              data: task.train,
              out: trainData,
              seed,
            }),
          );
        }
        const kd =
          m.distill === 'logits'
            ? { kdTeacher: teacherPath, kdCache: join(out, 'kd-cache', `${teacher}--${task.name}`) }
            : {};
        if (m.extract) {
          const teacherArg = teacher === 'student' ? 'self' : exp.teachers[teacher!];
          steps.push(
            stepPlan('extract', {
              ...exp.extract,
              ...m.extract,
              teacher: teacherArg,
              student: exp.student,
              sensitivity: sense!.output,
              out: initDir,
              seed,
              rank,
              alpha,
            }),
          );
        }
        steps.push(
          stepPlan('train', {
            ...(m.distill === 'logits' ? exp.train : withoutKd(exp.train)),
            ...m.train,
            student: exp.student,
            data: trainData,
            out: trainDir,
            ...kd,
            ...(initDir ? { init: initDir } : {}),
            seed,
            evalData: task.test,
            progress: false,
          }),
        );
        if (METRICS[task.metric].needsEval) {
          steps.push(
            stepPlan('eval', {
              ...exp.eval,
              model: exp.student,
              adapter: ADAPTER_PLACEHOLDER,
              tasks: [`super_ni:${task.test}`],
              out: join(evalDir, 'results.json'),
              progress: false,
            }),
          );
        }
        cells.push({
          kind: 'cell',
          id,
          dir,
          task: task.name,
          method: m.name,
          seed,
          metric: task.metric,
          higherIsBetter: METRICS[task.metric].higherIsBetter,
          needs: sense?.id ?? null,
          initDir,
          trainDir,
          evalDir,
          steps,
          spec: {
            metric: task.metric,
            steps: steps.map((s) => s.argv),
            inputs: {
              student: print(exp.student),
              ...(teacher && teacher !== 'student' ? { teacher: print(exp.teachers[teacher]) } : {}),
              ...(sense ? { seeds: print(task.seeds) } : {}),
              train: print(task.train),
              test: print(task.test),
            },
          },
        });
      }
    }
  }
  jobs.push(...cells);
  return {
    experiment: exp.file,
    name: exp.name,
    out,
    threads: exp.threads,
    baseline: BASELINE,
    tasks: exp.tasks.map((t) => ({
      name: t.name,
      metric: t.metric,
      higherIsBetter: METRICS[t.metric].higherIsBetter,
      label: METRICS[t.metric].label,
      teacher: t.teacher,
      ...(t.description ? { description: t.description } : {}),
    })),
    methods: exp.methods.map((m) => ({ name: m.name, description: m.description, teacher: m.teacher })),
    seeds: exp.seeds,
    jobs,
  };
}
