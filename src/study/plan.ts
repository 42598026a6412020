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
 *   reference/<model>--<task>/        the task's teacher (<model> = its name) and the untouched student
 *                                     (<model> = "student"), scored without training: the table's
 *                                     reference rows (reference.ts)
 *
 * A scale study (`sizes`) puts each size's jobs in the same layout under sizes/<size>/.
 *
 * A job's `spec` is everything that determines its output (the argv of its steps and the metric);
 * a finished job whose recorded spec differs from the plan's is refused instead of silently mixed
 * into the table (see runner.ts).
 */
import { SENSITIVITY_FILE } from '../transfer/sense/output.js';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { toFlags } from '../config/cli.js';
import { trainSchema } from '../config/schemas.js';
import {
  METRICS,
  sizeRunsTask,
  type Experiment,
  type MetricName,
  type SizeConfig,
  type TaskConfig,
} from './config.js';
import { BASELINE, type MethodSpec } from './methods.js';
import { answerLossArgv, type AnswerLossOptions } from './reference.js';

export const PLAN_FILE = 'plan.json';
export const RESULT_FILE = 'result.json';
/** Placeholder in the eval options (and argv), replaced by the trained adapter folder once training has run. */
export const ADAPTER_PLACEHOLDER = '{trained-adapter}';

export type StepName = 'sense' | 'distill-data' | 'extract' | 'train' | 'eval' | 'answer-loss';
/** The file the answer-loss step of a reference job writes, inside the job folder. */
export const ANSWER_LOSS_FILE = 'answer-loss.json';

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
  if (name === 'answer-loss')
    return { name, options, argv: answerLossArgv(options as unknown as AnswerLossOptions) };
  return { name, options, argv: [name, ...toFlags(name, options)] };
}

interface JobBase {
  id: string;
  /** The student size of a scale study (absent in a single-student run). */
  size?: string;
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

/** The task's teacher or the untouched student, scored without training (a reference row). */
export interface ReferenceJob extends JobBase {
  kind: 'reference';
  task: string;
  /** "teacher": the task's teacher; "student": the untouched student. */
  role: 'teacher' | 'student';
  /** The teacher's name, or "student". */
  model: string;
  metric: MetricName;
  higherIsBetter: boolean;
  evalDir: string;
}

export type Job = SenseJob | CellJob | ReferenceJob;

/** A student size in the plan: what the scale plot's x axis needs. */
export interface PlanSize {
  name: string;
  description?: string;
  student: string;
  teachers: Record<string, string>;
  /** Parameters of the student (null when it was not counted, e.g. the student is missing). */
  params: number | null;
  learningRate: number | null;
  learningRateFrom?: SizeConfig['learningRateFrom'];
  /** The tasks this size runs (absent: all of the plan's). */
  tasks?: string[];
}

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
  methods: Array<{
    name: string;
    description: string;
    teacher: MethodSpec['teacher'];
    /** The method's own learning rate, when it sets one (a learning-rate sweep's methods). */
    learningRate?: number;
  }>;
  seeds: number[];
  /** The student sizes of a scale study, in file order (absent: one student). */
  sizes?: PlanSize[];
  jobs: Job[];
}

export { SENSITIVITY_FILE };

const sizePrefix = (size?: string | null) => (size ? `sizes/${size}/` : '');

export function senseId(teacher: string, task: string, size?: string | null): string {
  return `${sizePrefix(size)}sense/${teacher}--${task}`;
}

export function cellId(task: string, method: string, seed: number, size?: string | null): string {
  return `${sizePrefix(size)}cells/${task}/${method}/seed-${seed}`;
}

export function referenceId(model: string, task: string, size?: string | null): string {
  return `${sizePrefix(size)}reference/${model}--${task}`;
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

/** The trainer's defaults, for the options the answer-loss step shares with `nuggets train`. */
const TRAIN_DEFAULTS = trainSchema.parse({ student: '-', data: '-', out: '-' });

interface SizeUnit {
  /** null: the single student of a plain study (no sizes/ folder level). */
  name: string | null;
  student: string;
  teachers: Record<string, string>;
  train: Record<string, unknown>;
  /** null: every task. */
  tasks: string[] | null;
}

/**
 * Expands the grid in table order: size, then task, then method, then seed. `params` gives the
 * student parameter count per size (the runner counts them; the plan only records them).
 */
export function buildPlan(exp: Experiment, out: string, params: Record<string, number> = {}): Plan {
  const jobs: Job[] = [];
  const references: ReferenceJob[] = [];
  const cells: CellJob[] = [];
  const prints = new Map<string, string>();
  const print = (p: string) => {
    if (!prints.has(p)) prints.set(p, fingerprint(p));
    return prints.get(p)!;
  };
  const units: SizeUnit[] = exp.sizes
    ? exp.sizes.map((s) => ({
        name: s.name,
        student: s.student,
        teachers: s.teachers,
        train: s.learningRate === undefined ? exp.train : { ...exp.train, learningRate: s.learningRate },
        tasks: s.tasks ?? null,
      }))
    : [{ name: null, student: exp.student, teachers: exp.teachers, train: exp.train, tasks: null }];
  for (const unit of units) {
    const { senses, refs, cells: c } = planSize(exp, unit, out, print);
    jobs.push(...senses);
    references.push(...refs);
    cells.push(...c);
  }
  jobs.push(...references, ...cells);
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
    methods: exp.methods.map((m) => ({
      name: m.name,
      description: m.description,
      teacher: m.teacher,
      ...(typeof m.train.learningRate === 'number' ? { learningRate: m.train.learningRate } : {}),
    })),
    seeds: exp.seeds,
    ...(exp.sizes
      ? {
          sizes: exp.sizes.map((s) => ({
            name: s.name,
            ...(s.description ? { description: s.description } : {}),
            student: s.student,
            teachers: s.teachers,
            params: params[s.name] ?? null,
            learningRate:
              s.learningRate ?? (typeof exp.train.learningRate === 'number' ? exp.train.learningRate : null),
            ...(s.learningRateFrom ? { learningRateFrom: s.learningRateFrom } : {}),
            ...(s.tasks ? { tasks: s.tasks } : {}),
          })),
        }
      : {}),
    jobs,
  };
}

/** The jobs of one student size. */
function planSize(
  exp: Experiment,
  unit: SizeUnit,
  out: string,
  print: (p: string) => string,
): { senses: SenseJob[]; refs: ReferenceJob[]; cells: CellJob[] } {
  const size = unit.name;
  const at = size ? { size } : {};
  const senses = new Map<string, SenseJob>();
  const refs: ReferenceJob[] = [];
  const cells: CellJob[] = [];
  const train = unit.train;
  const rank = train.rank ?? 16;
  const alpha = train.alpha ?? 16;
  const modelPath = (teacher: string) => (teacher === 'student' ? unit.student : unit.teachers[teacher]);

  const ensureSense = (teacher: string, task: TaskConfig): SenseJob => {
    const id = senseId(teacher, task.name, size);
    const have = senses.get(id);
    if (have) return have;
    const dir = join(out, id);
    const output = join(dir, SENSITIVITY_FILE);
    const teacherPath = modelPath(teacher);
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
      ...at,
      dir,
      teacher,
      task: task.name,
      output,
      steps: [step],
      spec: { steps: [step.argv], inputs },
    };
    senses.set(id, job);
    return job;
  };

  for (const task of exp.tasks.filter((t) => sizeRunsTask(unit, t.name))) {
    // Reference rows: the task's teacher and the untouched student, no training.
    const who: Array<['teacher' | 'student', string]> = [['student', 'student']];
    if (task.teacher !== 'student') who.unshift(['teacher', task.teacher]);
    for (const [role, model] of who) {
      const id = referenceId(model, task.name, size);
      const dir = join(out, id);
      const path = modelPath(model);
      // The train and eval sections' tokenizer is the student's: a teacher is read with its own.
      const own = (o: Record<string, unknown>) =>
        role === 'student' ? o : Object.fromEntries(Object.entries(o).filter(([k]) => k !== 'tokenizer'));
      const steps: StepPlan[] = [
        stepPlan('answer-loss', {
          model: path,
          data: task.test,
          out: join(dir, ANSWER_LOSS_FILE),
          ...own({ tokenizer: train.tokenizer }),
          chatFormat: train.chatFormat ?? TRAIN_DEFAULTS.chatFormat,
          maxLength: train.maxLength ?? TRAIN_DEFAULTS.maxLength,
          overflow: train.overflow ?? TRAIN_DEFAULTS.overflow,
          batchSize: train.microBatchSize ?? TRAIN_DEFAULTS.microBatchSize,
        }),
      ];
      const evalDir = join(dir, 'eval');
      if (METRICS[task.metric].needsEval) {
        steps.push(
          stepPlan('eval', {
            ...own(exp.eval),
            model: path,
            tasks: [`super_ni:${task.test}`],
            out: join(evalDir, 'results.json'),
            progress: false,
          }),
        );
      }
      refs.push({
        kind: 'reference',
        id,
        ...at,
        dir,
        task: task.name,
        role,
        model,
        metric: task.metric,
        higherIsBetter: METRICS[task.metric].higherIsBetter,
        evalDir,
        steps,
        spec: {
          metric: task.metric,
          steps: steps.map((s) => s.argv),
          inputs: { model: print(path), test: print(task.test) },
        },
      });
    }

    for (const m of exp.methods) {
      const teacher = m.teacher === 'task' ? task.teacher : m.teacher === 'student' ? 'student' : null;
      // distillation-only methods read the teacher but not its sensitivity
      const sense = teacher === null || !m.extract ? null : ensureSense(teacher, task);
      const teacherPath = teacher === null ? null : modelPath(teacher);
      for (const seed of exp.seeds) {
        const id = cellId(task.name, m.name, seed, size);
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
            ? {
                kdTeacher: teacherPath,
                kdCache: join(out, `${sizePrefix(size)}kd-cache`, `${teacher}--${task.name}`),
              }
            : {};
        if (m.extract) {
          const teacherArg = teacher === 'student' ? 'self' : unit.teachers[teacher!];
          steps.push(
            stepPlan('extract', {
              ...exp.extract,
              ...m.extract,
              teacher: teacherArg,
              student: unit.student,
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
            ...(m.distill === 'logits' ? train : withoutKd(train)),
            ...m.train,
            student: unit.student,
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
              model: unit.student,
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
          ...at,
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
              student: print(unit.student),
              ...(teacher && teacher !== 'student' ? { teacher: print(unit.teachers[teacher]) } : {}),
              ...(sense ? { seeds: print(task.seeds) } : {}),
              train: print(task.train),
              test: print(task.test),
            },
          },
        });
      }
    }
  }
  return { senses: [...senses.values()], refs, cells };
}
