/**
 * The results table of a run: per task x method the mean, sample std and n over training seeds, and
 * the paired comparison against plain LoRA over the seeds both ran (mean difference, its standard
 * error, paired t, two-sided p, wins/losses). Written as results.json and results.md in the run
 * folder. Only finished cells (result.json) count; a missing cell lowers n, it never becomes a zero.
 *
 * Every table also has reference rows: the task's teacher and the untouched student, scored without
 * training on the same test set and metric (reference.ts). A scale study (`sizes`) has one table per
 * size x task, and the scaling points: each method's paired difference from plain LoRA per size with
 * its 95% paired t interval, against the student's parameter count.
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { writeFileAtomic, writeJsonAtomic } from '../io/atomic.js';
import { InputError } from '../errors.js';
import type { CellResult, ReferenceResult } from './job.js';
import { METRICS, sizeRunsTask, type MetricName } from './config.js';
import { RESULT_FILE, type CellJob, type Plan, type PlanSize, type ReferenceJob } from './plan.js';
import { mean, sampleStd } from '../eval/stats.js';
import { pairedComparison, pairedInterval, type PairedComparison } from './stats.js';

/** The confidence level of the scaling points' intervals. */
export const SCALING_LEVEL = 0.95;

export const TABLE_JSON = 'results.json';
export const TABLE_MD = 'results.md';

export interface TableRow {
  /** The student size (scale studies only). */
  size?: string;
  task: string;
  method: string;
  metric: string;
  higherIsBetter: boolean;
  n: number;
  mean: number | null;
  std: number | null;
  /** Value per training seed. */
  values: Record<string, number>;
  /** Against the baseline; null for the baseline itself or when it has no results. */
  vsBaseline: PairedComparison | null;
}

/** A reference row: the task's teacher or the untouched student, scored once without training. */
export interface ReferenceRow {
  size?: string;
  task: string;
  /** "teacher": the task's teacher; "student": the untouched student. */
  role: ReferenceJob['role'];
  /** The teacher's name, or "student". */
  model: string;
  metric: string;
  higherIsBetter: boolean;
  /** null while its job has not finished. */
  value: number | null;
}

/** One method's paired difference from the baseline at one size (the scale plot's points). */
export interface ScalingPoint {
  task: string;
  method: string;
  size: string;
  /** Student parameters (null when not counted). */
  params: number | null;
  /** Seeds paired with the baseline. */
  n: number;
  meanDiff: number | null;
  stdErr: number | null;
  /** The SCALING_LEVEL paired t interval of meanDiff; null below two pairs. */
  ciLow: number | null;
  ciHigh: number | null;
}

export interface ResultsTable {
  name: string;
  baseline: string;
  seeds: number[];
  tasks: Plan['tasks'];
  methods: Plan['methods'];
  /** The student sizes of a scale study (absent: one student). */
  sizes?: PlanSize[];
  rows: TableRow[];
  /** The other numbers the cells measured (e.g. the held-out answer loss of an exact-match task), same layout. */
  secondary: TableRow[];
  /** Teacher and untouched-student rows, per (size,) task and every metric measured. */
  references: ReferenceRow[];
  /** Scale studies: per task x method (not the baseline) x size, the difference from the baseline. */
  scaling?: ScalingPoint[];
  /** Cells (and reference jobs) of the plan without a result (failed or not run yet). */
  missing: string[];
}

export function readCellResult(job: CellJob): CellResult | null {
  return readResultFile<CellResult>(job.dir);
}

function readReferenceResult(job: ReferenceJob): ReferenceResult | null {
  return readResultFile<ReferenceResult>(job.dir);
}

function readResultFile<T>(dir: string): T | null {
  const path = join(dir, RESULT_FILE);
  if (!existsSync(path)) return null;
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as T;
  } catch (e) {
    throw new InputError(path, `not valid JSON: ${(e as Error).message}`);
  }
}

/** Builds the table from the cells' (and reference jobs') result.json files. */
export function buildTable(plan: Plan): ResultsTable {
  const cells = plan.jobs.filter((j): j is CellJob => j.kind === 'cell');
  const refJobs = plan.jobs.filter((j): j is ReferenceJob => j.kind === 'reference');
  // size \0 task \0 method \0 metric -> seed -> value
  const byKey = new Map<string, Map<number, number>>();
  const metricsOf = new Map<string, Set<string>>();
  const missing: string[] = [];
  const at = (size: string | undefined, task: string) => `${size ?? ''}\u0000${task}`;
  const measured = (size: string | undefined, task: string, metric: string) => {
    const k = at(size, task);
    if (!metricsOf.has(k)) metricsOf.set(k, new Set());
    metricsOf.get(k)!.add(metric);
  };
  for (const c of cells) {
    const r = readCellResult(c);
    if (!r) {
      missing.push(c.id);
      continue;
    }
    const found = { ...r.metrics, [c.metric]: r.value };
    for (const [metric, v] of Object.entries(found)) {
      if (typeof v !== 'number' || !Number.isFinite(v)) continue;
      const key = `${at(c.size, c.task)}\u0000${c.method}\u0000${metric}`;
      if (!byKey.has(key)) byKey.set(key, new Map());
      byKey.get(key)!.set(c.seed, v);
      measured(c.size, c.task, metric);
    }
  }
  const refValues = new Map<string, Record<string, number>>();
  for (const j of refJobs) {
    const r = readReferenceResult(j);
    if (!r) {
      missing.push(j.id);
      continue;
    }
    const found: Record<string, number> = {};
    for (const [metric, v] of Object.entries({ ...r.metrics, [j.metric]: r.value }))
      if (typeof v === 'number' && Number.isFinite(v)) found[metric] = v;
    refValues.set(j.id, found);
  }
  const sizeNames: Array<string | undefined> = plan.sizes ? plan.sizes.map((s) => s.name) : [undefined];
  const rowsFor = (
    size: string | undefined,
    task: string,
    metric: string,
    higherIsBetter: boolean,
  ): TableRow[] => {
    const base =
      byKey.get(`${at(size, task)}\u0000${plan.baseline}\u0000${metric}`) ?? new Map<number, number>();
    return plan.methods.map((m) => {
      const vals = byKey.get(`${at(size, task)}\u0000${m.name}\u0000${metric}`) ?? new Map<number, number>();
      const xs = [...vals.entries()].sort((a, b) => a[0] - b[0]);
      const nums = xs.map(([, v]) => v);
      return {
        ...(size !== undefined ? { size } : {}),
        task,
        method: m.name,
        metric,
        higherIsBetter,
        n: nums.length,
        mean: nums.length > 0 ? mean(nums) : null,
        std: sampleStd(nums),
        values: Object.fromEntries(xs.map(([s, v]) => [String(s), v])),
        vsBaseline:
          m.name === plan.baseline || base.size === 0 ? null : pairedComparison(vals, base, higherIsBetter),
      };
    });
  };
  const referencesFor = (
    size: string | undefined,
    task: string,
    metric: string,
    higherIsBetter: boolean,
  ): ReferenceRow[] =>
    refJobs
      .filter((j) => j.size === size && j.task === task)
      .map((j) => ({
        ...(size !== undefined ? { size } : {}),
        task,
        role: j.role,
        model: j.model,
        metric,
        higherIsBetter,
        value: refValues.get(j.id)?.[metric] ?? null,
      }));
  const rows: TableRow[] = [];
  const secondary: TableRow[] = [];
  const references: ReferenceRow[] = [];
  for (const size of sizeNames) {
    const unit = plan.sizes?.find((s) => s.name === size);
    for (const t of plan.tasks.filter((x) => sizeRunsTask(unit, x.name))) {
      rows.push(...rowsFor(size, t.name, t.metric, t.higherIsBetter));
      references.push(...referencesFor(size, t.name, t.metric, t.higherIsBetter));
      for (const metric of Object.keys(METRICS) as MetricName[]) {
        if (metric === t.metric || !metricsOf.get(at(size, t.name))?.has(metric)) continue;
        secondary.push(...rowsFor(size, t.name, metric, METRICS[metric].higherIsBetter));
        references.push(...referencesFor(size, t.name, metric, METRICS[metric].higherIsBetter));
      }
    }
  }
  return {
    name: plan.name,
    baseline: plan.baseline,
    seeds: plan.seeds,
    tasks: plan.tasks,
    methods: plan.methods,
    ...(plan.sizes ? { sizes: plan.sizes.map((x) => portableSize(x, dirname(plan.experiment))) } : {}),
    rows,
    secondary,
    references,
    ...(plan.sizes ? { scaling: scalingPoints(plan, rows) } : {}),
    missing,
  };
}

/**
 * A size with its paths relative to the experiment file's folder (as the file spells them): results
 * tables are committed, and the machine's folders are nobody else's.
 */
function portableSize(s: PlanSize, base: string): PlanSize {
  const rel = (p: string) => relative(base, p) || '.';
  return {
    ...s,
    student: rel(s.student),
    teachers: Object.fromEntries(Object.entries(s.teachers).map(([k, v]) => [k, rel(v)])),
    ...(s.learningRateFrom
      ? { learningRateFrom: { ...s.learningRateFrom, sweep: rel(s.learningRateFrom.sweep) } }
      : {}),
  };
}

/** Each method's paired difference from the baseline per size, with its interval (task metric only). */
export function scalingPoints(plan: Plan, rows: TableRow[]): ScalingPoint[] {
  const out: ScalingPoint[] = [];
  for (const t of plan.tasks) {
    for (const m of plan.methods) {
      if (m.name === plan.baseline) continue;
      for (const s of (plan.sizes ?? []).filter((x) => sizeRunsTask(x, t.name))) {
        const r = rows.find((x) => x.size === s.name && x.task === t.name && x.method === m.name);
        const c = r?.vsBaseline ?? null;
        const ci = c ? pairedInterval(c, SCALING_LEVEL) : null;
        out.push({
          task: t.name,
          method: m.name,
          size: s.name,
          params: s.params,
          n: c?.n ?? 0,
          meanDiff: c?.meanDiff ?? null,
          stdErr: c?.stdErr ?? null,
          ciLow: ci ? ci[0] : null,
          ciHigh: ci ? ci[1] : null,
        });
      }
    }
  }
  return out;
}

const f = (v: number | null | undefined, digits = 4) =>
  v === null || v === undefined || !Number.isFinite(v) ? '—' : v.toFixed(digits);
const signed = (v: number | null | undefined, digits = 4) =>
  v === null || v === undefined || !Number.isFinite(v) ? '—' : (v >= 0 ? '+' : '') + v.toFixed(digits);
function pText(p: number | null): string {
  if (p === null) return '—';
  return p < 0.001 ? '<0.001' : p.toFixed(3);
}

/** How a reference row is named in the tables. */
export function referenceLabel(r: Pick<ReferenceRow, 'role' | 'model'>): string {
  return r.role === 'teacher' ? `teacher ${r.model}, no training` : 'student, no training';
}

/** What the reference rows are (printed under every table that has them). */
export const REFERENCE_NOTE =
  "Reference rows: the task's teacher and the untouched student, scored without training on the same test set " +
  "and metric. The teacher is scored in the task's chat format (Tulu), which the zoo's plain language models " +
  'never saw, so its exact match measures the format as much as what it knows.';

function markdownRows(rows: TableRow[], baseline: string, refs: ReferenceRow[] = []): string[] {
  const lines = [
    '| method | mean | std | n | diff vs ' + baseline + ' | std err | t | p | W/L/T |',
    '| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | :---: |',
  ];
  for (const r of rows) {
    const c = r.vsBaseline;
    lines.push(
      `| ${r.method} | ${f(r.mean)} | ${f(r.std)} | ${r.n} | ${c ? signed(c.meanDiff) : '—'} | ${c ? f(c.stdErr) : '—'} | ${c ? f(c.t, 2) : '—'} | ${c ? pText(c.p) : '—'} | ${c ? `${c.wins}/${c.losses}/${c.ties}` : '—'} |`,
    );
  }
  for (const r of refs)
    lines.push(
      `| *${referenceLabel(r)}* | ${f(r.value)} | — | ${r.value === null ? 0 : 1} | — | — | — | — | — |`,
    );
  return lines;
}

/** "123,456" */
const count = (n: number | null) => (n === null ? '?' : n.toLocaleString('en-US'));

/** A size's heading: its student, parameter count and learning rate (and where that came from). */
export function sizeHeading(s: PlanSize): string {
  const from = s.learningRateFrom
    ? ` (best ${s.learningRateFrom.method} on ${s.learningRateFrom.task} in ${s.learningRateFrom.sweep.replace(/^.*\//, '')})`
    : '';
  return `size ${s.name}: student ${s.student.replace(/^.*\//, '')}, ${count(s.params)} parameters, learning rate ${s.learningRate ?? 'the train default'}${from}`;
}

/** The table as Markdown: one section per (size x) task (its metric, then any other numbers measured). */
export function tableMarkdown(t: ResultsTable): string {
  const lines: string[] = [];
  lines.push(
    `Seeds: ${t.seeds.join(', ')}. Paired columns compare each method with \`${t.baseline}\` over the seeds both finished`,
  );
  lines.push(
    '(difference = method - baseline; t and p: paired t test, two-sided; W/L/T: seeds where the method was better/worse/equal).',
  );
  lines.push(`${REFERENCE_NOTE} (In italics.)`);
  const refs = t.references ?? [];
  const sizes: Array<PlanSize | undefined> = t.sizes ?? [undefined];
  for (const size of sizes) {
    const here = <T extends { size?: string; task: string }>(xs: T[], task: string) =>
      xs.filter((x) => x.size === size?.name && x.task === task);
    if (size) {
      lines.push('');
      lines.push(`### ${sizeHeading(size)}`);
    }
    for (const task of t.tasks.filter((x) => sizeRunsTask(size, x.name))) {
      lines.push('');
      lines.push(`**${task.name}** — ${task.label} (${task.higherIsBetter ? 'higher' : 'lower'} is better)`);
      lines.push('');
      lines.push(
        ...markdownRows(
          here(t.rows, task.name),
          t.baseline,
          here(refs, task.name).filter((r) => r.metric === task.metric),
        ),
      );
      for (const metric of Object.keys(METRICS) as MetricName[]) {
        const sec = here(t.secondary ?? [], task.name).filter((x) => x.metric === metric);
        if (sec.length === 0) continue;
        lines.push('');
        lines.push(
          `*${task.name}, also measured:* ${METRICS[metric].label} (${METRICS[metric].higherIsBetter ? 'higher' : 'lower'} is better)`,
        );
        lines.push('');
        lines.push(
          ...markdownRows(
            sec,
            t.baseline,
            here(refs, task.name).filter((r) => r.metric === metric),
          ),
        );
      }
    }
  }
  if (t.scaling && t.scaling.length > 0) {
    lines.push('');
    lines.push(`### Difference from \`${t.baseline}\` against student size`);
    lines.push('');
    lines.push(
      `Paired over seeds per size; interval: ${Math.round(SCALING_LEVEL * 100)}% paired t interval (mean ± t(n-1) · std err).`,
    );
    for (const task of t.tasks) {
      lines.push('');
      lines.push(`**${task.name}** — ${task.label} (${task.higherIsBetter ? 'higher' : 'lower'} is better)`);
      lines.push('');
      lines.push(
        `| method | size | student parameters | n | diff vs ${t.baseline} | std err | ${Math.round(SCALING_LEVEL * 100)}% interval |`,
      );
      lines.push('| --- | --- | ---: | ---: | ---: | ---: | :---: |');
      for (const p of t.scaling.filter((x) => x.task === task.name)) {
        lines.push(
          `| ${p.method} | ${p.size} | ${count(p.params)} | ${p.n} | ${signed(p.meanDiff)} | ${f(p.stdErr)} | ${p.ciLow === null ? '—' : `[${signed(p.ciLow)}, ${signed(p.ciHigh)}]`} |`,
        );
      }
    }
  }
  if (t.missing.length > 0) {
    lines.push('');
    lines.push(`Missing cells (${t.missing.length}): ${t.missing.join(', ')}`);
  }
  return lines.join('\n') + '\n';
}

export function writeTable(dir: string, t: ResultsTable): { json: string; md: string } {
  const json = join(dir, TABLE_JSON);
  const md = join(dir, TABLE_MD);
  writeJsonAtomic(json, t);
  writeFileAtomic(md, [`# ${t.name}: results\n\n`, tableMarkdown(t)]);
  return { json, md };
}
