/**
 * The experiment file of `nuggets run` (YAML): a grid of methods x training seeds x tasks over one
 * student and named teachers, plus shared options for each pipeline step (`sense`, `extract`,
 * `train`, `eval` sections, checked against those commands' own schemas so a typo is caught before
 * any cell runs). Relative paths are resolved against the file's folder, as in every nuggets config.
 *
 *   student: ../zoo/student-tiny
 *   teachers: { facts: ../zoo/teacher-facts }
 *   tasks:
 *     facts: { teacher: facts, seeds: ../tasks/facts/seeds.jsonl, train: ..., test: ..., metric: exact_match }
 *   methods: [lora, transfer, rowcol, elements, random, pissa, self]
 *   seeds: [1, 2, 3]
 *   train: { epochs: 3, batch-size: 64 }
 *
 * A scale study runs the same grid on several student sizes: `sizes` replaces `student`, each size
 * naming its student, its teachers (merged over the top-level `teachers`) and its plain-LoRA learning
 * rate, given as a number or read from a learning-rate sweep's results.json (the best rate of the
 * sweep's methods for that size on one task):
 *
 *   sizes:
 *     s: { student: ../zoo/student-tiny, teachers: { facts: ../zoo/teacher-facts }, learning-rate: 3.0e-3 }
 *     m: { student: ../zoo/student-m, teachers: { facts: ../zoo/teacher-m },
 *          learning-rate: { sweep: ../results/scale-lr-sweep.json, task: facts } }
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';
import { z } from 'zod';
import { InputError } from '../errors.js';
import { closestKey, configValues, readConfigFile } from '../config/file.js';
import { toCamel } from '../config/fields.js';
import { METHOD_NAME, resolveMethod, type CustomMethod, type MethodSpec } from './methods.js';

/** How a task is scored: the trainer's held-out answer loss, or `nuggets eval` on the test file. */
export const METRICS = {
  answer_loss: { higherIsBetter: false, label: 'held-out answer loss (nats/token)', needsEval: false },
  exact_match: { higherIsBetter: true, label: 'exact-match accuracy', needsEval: true },
  rouge_l: { higherIsBetter: true, label: 'ROUGE-L', needsEval: true },
} as const;
export type MetricName = keyof typeof METRICS;

const NAME = z.string().regex(METHOD_NAME, 'must be lower-case letters, digits, "-" or "_"');

const taskSchema = z
  .object({
    teacher: z.string().describe('name of the teacher (a key of "teachers") whose knowledge this task needs'),
    seeds: z.string().min(1).describe('seed examples for sensitivity (JSONL)'),
    train: z.string().min(1).describe('training examples (JSONL)'),
    test: z.string().min(1).describe('held-out examples (JSONL)'),
    metric: z.enum(Object.keys(METRICS) as [MetricName, ...MetricName[]]),
    description: z.string().optional(),
  })
  .strict();

const customMethodSchema = z
  .object({
    name: NAME,
    like: z.string(),
    description: z.string().optional(),
    extract: z.record(z.string(), z.unknown()).optional(),
    train: z.record(z.string(), z.unknown()).optional(),
  })
  .strict();

const section = z.record(z.string(), z.unknown()).nullable().default({});

const sweepRateSchema = z
  .object({
    sweep: z.string().min(1).describe("a learning-rate sweep's results.json (nuggets run, with sizes)"),
    task: NAME.describe('the task whose metric picks the best rate'),
  })
  .strict();

const sizeSchema = z
  .object({
    description: z.string().optional(),
    student: z.string().min(1),
    teachers: z.record(NAME, z.string().min(1)).default({}),
    'learning-rate': z.union([z.number().positive(), sweepRateSchema]).optional(),
    tasks: z
      .array(NAME)
      .min(1)
      .optional()
      .describe('the tasks this size runs (default: all); e.g. only those its teacher knows more of'),
  })
  .strict();

export const experimentSchema = z
  .object({
    name: z.string().optional(),
    description: z.string().optional(),
    out: z.string().min(1).optional(),
    student: z.string().min(1).optional(),
    sizes: z
      .record(NAME, sizeSchema)
      .refine((t) => Object.keys(t).length > 0, 'needs at least one size')
      .optional(),
    teachers: z.record(NAME, z.string().min(1)).default({}),
    tasks: z.record(NAME, taskSchema).refine((t) => Object.keys(t).length > 0, 'needs at least one task'),
    methods: z.array(z.union([z.string(), customMethodSchema])).min(1),
    seeds: z.array(z.number().int().min(0)).min(1),
    threads: z.number().int().min(1).default(1),
    sense: section,
    extract: section,
    train: section,
    eval: section,
    'distill-data': section,
  })
  .strict();

/** The experiment sections that hold one command's options. */
export type StepSection = 'sense' | 'extract' | 'train' | 'eval' | 'distill-data';

/** Options the runner sets itself per cell; an experiment file may not set them in a step section. */
export const RESERVED: Record<StepSection, readonly string[]> = {
  sense: ['teacher', 'seeds', 'out', 'shard', 'progress'],
  extract: [
    'teacher',
    'student',
    'sensitivity',
    'out',
    'init',
    'layers',
    'structure',
    'heads',
    'seed',
    'rank',
    'alpha',
  ],
  train: [
    'student',
    'data',
    'out',
    'init',
    'loraInit',
    'seed',
    'resume',
    'resumeFrom',
    'evalData',
    'valSize',
    'progress',
    'kdTeacher',
    'kdCache',
  ],
  eval: ['model', 'adapter', 'tasks', 'out', 'progress', 'samples'],
  'distill-data': ['teacher', 'data', 'out', 'seed'],
};

const RESERVED_WHY: Record<string, string> = {
  rank: 'set rank in the train section; the runner gives extract the same value',
  alpha: 'set alpha in the train section; the runner gives extract the same value',
  seed: 'each cell uses its training seed',
  init: 'the method decides it',
  layers: 'the method decides it (define a method with {name, like, extract: {layers}})',
  structure: 'the method decides it (define a method with {name, like, extract: {structure}})',
  heads: 'the method decides it (define a method with {name, like, extract: {heads}})',
  loraInit: 'the method decides it',
};

export interface TaskConfig {
  name: string;
  teacher: string;
  seeds: string;
  train: string;
  test: string;
  metric: MetricName;
  description?: string;
}

/** One student size of a scale study, with its own teachers and plain-LoRA learning rate. */
export interface SizeConfig {
  name: string;
  description?: string;
  /** Student path (absolute). */
  student: string;
  /** Teacher paths by name: the experiment's `teachers`, then the size's own. */
  teachers: Record<string, string>;
  /** The size's `learning-rate` (overrides the train section's; a method's own rate overrides it). */
  learningRate?: number;
  /** Where `learningRate` came from when it was read from a sweep. */
  learningRateFrom?: { sweep: string; task: string; method: string; value: number };
  /** The tasks this size runs (absent: all). */
  tasks?: string[];
}

export interface Experiment {
  /** The experiment file (absolute). */
  file: string;
  name: string;
  description?: string;
  /** Default run folder (absolute), when the file gives one. */
  out?: string;
  /** The student (absolute); with `sizes`, the first size's. */
  student: string;
  /** Teacher paths by name; with `sizes`, the first size's. */
  teachers: Record<string, string>;
  /** Student sizes of a scale study (absent: one student, the folder layout of a single study). */
  sizes?: SizeConfig[];
  tasks: TaskConfig[];
  methods: MethodSpec[];
  seeds: number[];
  threads: number;
  /** Validated step options (camelCase keys, absolute paths). */
  sense: Record<string, unknown>;
  extract: Record<string, unknown>;
  train: Record<string, unknown>;
  eval: Record<string, unknown>;
  /** `nuggets distill-data` options of the kd-sequence cells. */
  distillData: Record<string, unknown>;
}

function issueText(issue: z.core.$ZodIssue): string {
  const where = issue.path.map(String).join('.');
  if (issue.code === 'unrecognized_keys') {
    const valid =
      issue.path.length === 0
        ? Object.keys(experimentSchema.shape)
        : issue.path[0] === 'tasks'
          ? Object.keys(taskSchema.shape)
          : issue.path[0] === 'sizes'
            ? issue.path.length > 2
              ? Object.keys(sweepRateSchema.shape)
              : Object.keys(sizeSchema.shape)
            : Object.keys(customMethodSchema.shape);
    return issue.keys
      .map((k) => {
        const hint = closestKey(k, valid);
        return `${where ? where + ': ' : ''}unknown key "${k}"${hint ? ` (did you mean "${hint}"?)` : ''}`;
      })
      .join('; ');
  }
  return `${where || '(top level)'}: ${issue.message.replace(/^Invalid input: /, '')}`;
}

const abs = (base: string, p: string) => (isAbsolute(p) ? p : resolve(base, p));

/** Checks a step section: unknown keys (with suggestions) and types through the command's schema, reserved keys refused. */
function stepSection(
  file: string,
  step: StepSection,
  raw: Record<string, unknown> | null,
  base: string,
): Record<string, unknown> {
  const values = raw ?? {};
  for (const k of Object.keys(values)) {
    const key = toCamel(k);
    if (RESERVED[step].includes(key)) {
      throw new InputError(
        `${file} (section ${step})`,
        `option "${k}" is set by the runner for each cell${RESERVED_WHY[key] ? ` (${RESERVED_WHY[key]})` : ''}`,
      );
    }
  }
  const checked = configValues(file, { [step]: values }, step, base);
  return checked;
}

/** Reads, validates and resolves an experiment file. Every problem is an InputError naming the file. */
export function loadExperiment(path: string): Experiment {
  const file = resolve(path);
  const raw = readConfigFile(file);
  const parsed = experimentSchema.safeParse(raw);
  if (!parsed.success) throw new InputError(file, parsed.error.issues.slice(0, 5).map(issueText).join('; '));
  const e = parsed.data;
  const base = dirname(file);
  if ((e.student === undefined) === (e.sizes === undefined))
    throw new InputError(file, 'give either "student" (one student) or "sizes" (a scale study), not both');
  const teacherPaths = (raw: Record<string, string>): Record<string, string> => {
    const out: Record<string, string> = {};
    for (const [name, p] of Object.entries(raw)) {
      if (name === 'student')
        throw new InputError(
          file,
          'teacher name "student" is reserved (it means the student as its own teacher)',
        );
      out[name] = abs(base, p);
    }
    return out;
  };
  const shared = teacherPaths(e.teachers);
  const sizes: SizeConfig[] | undefined = e.sizes
    ? Object.entries(e.sizes).map(([name, s]) => {
        const rate = s['learning-rate'];
        return {
          name,
          ...(s.description ? { description: s.description } : {}),
          student: abs(base, s.student),
          teachers: { ...shared, ...teacherPaths(s.teachers) },
          ...(typeof rate === 'number' ? { learningRate: rate } : {}),
          ...(rate && typeof rate === 'object'
            ? sweptRate(file, name, abs(base, rate.sweep), rate.task)
            : {}),
          ...(s.tasks ? { tasks: sizeTasks(file, name, s.tasks, Object.keys(e.tasks)) } : {}),
        };
      })
    : undefined;
  const teachers = sizes ? sizes[0].teachers : shared;
  const tasks: TaskConfig[] = Object.entries(e.tasks).map(([name, t]) => {
    for (const s of (sizes ?? [{ name: null, teachers, tasks: null }]).filter((x) => sizeRunsTask(x, name))) {
      if (!(t.teacher in s.teachers) && t.teacher !== 'student') {
        throw new InputError(
          file,
          `task "${name}": teacher "${t.teacher}" is not defined under "teachers"${s.name ? ` of size "${s.name}"` : ''} (defined: ${Object.keys(s.teachers).join(', ') || 'none'})`,
        );
      }
    }
    return {
      name,
      teacher: t.teacher,
      seeds: abs(base, t.seeds),
      train: abs(base, t.train),
      test: abs(base, t.test),
      metric: t.metric,
      ...(t.description ? { description: t.description } : {}),
    };
  });
  // Method-level option overrides go through the same checks; they may set what the method owns
  // (structure/layers/heads/init for extract, loraInit and modules for train) but not the per-cell keys.
  const methods = e.methods.map((m) => {
    if (typeof m === 'string') return resolveMethod(m, file);
    const custom: CustomMethod = {
      name: m.name,
      like: m.like,
      ...(m.description ? { description: m.description } : {}),
    };
    for (const [step, own] of [
      ['extract', ['init', 'layers', 'structure', 'heads']],
      ['train', ['loraInit']],
    ] as const) {
      const vals = m[step];
      if (!vals) continue;
      const where = `${file} (method ${m.name}, ${step})`;
      for (const k of Object.keys(vals)) {
        const key = toCamel(k);
        if (RESERVED[step].includes(key) && !(own as readonly string[]).includes(key))
          throw new InputError(where, `option "${k}" is set by the runner for each cell`);
      }
      custom[step] = configValues(file, { [step]: vals }, step, base);
    }
    return resolveMethod(custom, file);
  });
  const names = methods.map((m) => m.name);
  const dupM = names.find((n, i) => names.indexOf(n) !== i);
  if (dupM) throw new InputError(file, `method "${dupM}" is listed twice`);
  const dupS = e.seeds.find((s, i) => e.seeds.indexOf(s) !== i);
  if (dupS !== undefined) throw new InputError(file, `seed ${dupS} is listed twice`);
  const sections = {
    sense: stepSection(file, 'sense', e.sense, base),
    extract: stepSection(file, 'extract', e.extract, base),
    train: stepSection(file, 'train', e.train, base),
    eval: stepSection(file, 'eval', e.eval, base),
    distillData: stepSection(file, 'distill-data', e['distill-data'], base),
  };
  return {
    file,
    name: e.name ?? file.replace(/^.*\//, '').replace(/\.ya?ml$/, ''),
    ...(e.description ? { description: e.description } : {}),
    ...(e.out ? { out: abs(base, e.out) } : {}),
    student: sizes ? sizes[0].student : abs(base, e.student!),
    teachers,
    ...(sizes ? { sizes } : {}),
    tasks,
    methods,
    seeds: e.seeds,
    threads: e.threads,
    ...sections,
  };
}

/**
 * The learning rate of one size, read from a learning-rate sweep's results table (results.json of a
 * `nuggets run` with sizes): among the sweep's methods that set a learning rate, the one with the best
 * mean on `task` for this size (first listed on a tie).
 */
function sweptRate(
  file: string,
  size: string,
  sweep: string,
  task: string,
): Pick<SizeConfig, 'learningRate' | 'learningRateFrom'> {
  const where = `${file} (size ${size}, learning-rate)`;
  if (!existsSync(sweep))
    throw new InputError(
      where,
      `${sweep} does not exist: run the learning-rate sweep first and copy its results.json there`,
    );
  let t: SweepTable;
  try {
    t = JSON.parse(readFileSync(sweep, 'utf8')) as SweepTable;
  } catch (e) {
    throw new InputError(sweep, `not valid JSON: ${(e as Error).message}`);
  }
  if (!Array.isArray(t.rows) || !Array.isArray(t.methods))
    throw new InputError(sweep, 'not a results table of "nuggets run" (no "rows" or "methods")');
  const rates = new Map<string, number>();
  for (const m of t.methods) if (typeof m.learningRate === 'number') rates.set(m.name, m.learningRate);
  const rows = t.rows.filter(
    (r) => r.size === size && r.task === task && rates.has(r.method) && typeof r.mean === 'number',
  );
  if (rows.length === 0)
    throw new InputError(
      where,
      `${sweep} has no results for size "${size}" on task "${task}" from methods that set a learning rate`,
    );
  let best = rows[0];
  for (const r of rows.slice(1)) if (r.higherIsBetter ? r.mean! > best.mean! : r.mean! < best.mean!) best = r;
  return {
    learningRate: rates.get(best.method)!,
    learningRateFrom: { sweep, task, method: best.method, value: best.mean! },
  };
}

interface SweepTable {
  methods: Array<{ name: string; learningRate?: number }>;
  rows: Array<{ size?: string; task: string; method: string; mean: number | null; higherIsBetter: boolean }>;
}

/** Whether a size runs a task: a size without a `tasks` list (or no size at all) runs every task. */
export function sizeRunsTask(
  size: { tasks?: readonly string[] | null } | null | undefined,
  task: string,
): boolean {
  return !size?.tasks || size.tasks.includes(task);
}

/** A size's task list: known task names, each once. */
function sizeTasks(file: string, size: string, names: string[], known: string[]): string[] {
  for (const n of names) {
    if (!known.includes(n))
      throw new InputError(
        file,
        `size "${size}": task "${n}" is not defined under "tasks" (defined: ${known.join(', ')})`,
      );
  }
  if (new Set(names).size !== names.length)
    throw new InputError(file, `size "${size}": a task is listed twice in its tasks (${names.join(', ')})`);
  return names;
}
