/**
 * The results table of a run: per task x method the mean, sample std and n over training seeds, and
 * the paired comparison against plain LoRA over the seeds both ran (mean difference, its standard
 * error, paired t, two-sided p, wins/losses). Written as results.json and results.md in the run
 * folder. Only finished cells (result.json) count; a missing cell lowers n, it never becomes a zero.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomic, writeJsonAtomic } from '../io/atomic.js';
import { InputError } from '../errors.js';
import type { CellResult } from './job.js';
import { METRICS, type MetricName } from './config.js';
import { RESULT_FILE, type CellJob, type Plan } from './plan.js';
import { mean, sampleStd } from '../eval/stats.js';
import { pairedComparison, type PairedComparison } from './stats.js';

export const TABLE_JSON = 'results.json';
export const TABLE_MD = 'results.md';

export interface TableRow {
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

export interface ResultsTable {
  name: string;
  baseline: string;
  seeds: number[];
  tasks: Plan['tasks'];
  methods: Plan['methods'];
  rows: TableRow[];
  /** The other numbers the cells measured (e.g. the held-out answer loss of an exact-match task), same layout. */
  secondary: TableRow[];
  /** Cells of the plan without a result (failed or not run yet). */
  missing: string[];
}

export function readCellResult(job: CellJob): CellResult | null {
  const path = join(job.dir, RESULT_FILE);
  if (!existsSync(path)) return null;
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as CellResult;
  } catch (e) {
    throw new InputError(path, `not valid JSON: ${(e as Error).message}`);
  }
}

/** Builds the table from the cells' result.json files. */
export function buildTable(plan: Plan): ResultsTable {
  const cells = plan.jobs.filter((j): j is CellJob => j.kind === 'cell');
  // task \0 method \0 metric -> seed -> value
  const byKey = new Map<string, Map<number, number>>();
  const metricsOf = new Map<string, Set<string>>();
  const missing: string[] = [];
  for (const c of cells) {
    const r = readCellResult(c);
    if (!r) {
      missing.push(c.id);
      continue;
    }
    const found = { ...r.metrics, [c.metric]: r.value };
    for (const [metric, v] of Object.entries(found)) {
      if (typeof v !== 'number' || !Number.isFinite(v)) continue;
      const key = `${c.task}\u0000${c.method}\u0000${metric}`;
      if (!byKey.has(key)) byKey.set(key, new Map());
      byKey.get(key)!.set(c.seed, v);
      if (!metricsOf.has(c.task)) metricsOf.set(c.task, new Set());
      metricsOf.get(c.task)!.add(metric);
    }
  }
  const rowsFor = (task: string, metric: string, higherIsBetter: boolean): TableRow[] => {
    const base = byKey.get(`${task}\u0000${plan.baseline}\u0000${metric}`) ?? new Map<number, number>();
    return plan.methods.map((m) => {
      const vals = byKey.get(`${task}\u0000${m.name}\u0000${metric}`) ?? new Map<number, number>();
      const xs = [...vals.entries()].sort((a, b) => a[0] - b[0]);
      const nums = xs.map(([, v]) => v);
      return {
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
  const rows: TableRow[] = [];
  const secondary: TableRow[] = [];
  for (const t of plan.tasks) {
    rows.push(...rowsFor(t.name, t.metric, t.higherIsBetter));
    for (const metric of Object.keys(METRICS) as MetricName[]) {
      if (metric === t.metric || !metricsOf.get(t.name)?.has(metric)) continue;
      secondary.push(...rowsFor(t.name, metric, METRICS[metric].higherIsBetter));
    }
  }
  return {
    name: plan.name,
    baseline: plan.baseline,
    seeds: plan.seeds,
    tasks: plan.tasks,
    methods: plan.methods,
    rows,
    secondary,
    missing,
  };
}

const f = (v: number | null | undefined, digits = 4) =>
  v === null || v === undefined || !Number.isFinite(v) ? '—' : v.toFixed(digits);
const signed = (v: number | null | undefined, digits = 4) =>
  v === null || v === undefined || !Number.isFinite(v) ? '—' : (v >= 0 ? '+' : '') + v.toFixed(digits);
function pText(p: number | null): string {
  if (p === null) return '—';
  return p < 0.001 ? '<0.001' : p.toFixed(3);
}

function markdownRows(rows: TableRow[], baseline: string): string[] {
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
  return lines;
}

/** The table as Markdown: one section per task (its metric, then any other numbers measured). */
export function tableMarkdown(t: ResultsTable): string {
  const lines: string[] = [];
  lines.push(
    `Seeds: ${t.seeds.join(', ')}. Paired columns compare each method with \`${t.baseline}\` over the seeds both finished`,
  );
  lines.push(
    '(difference = method - baseline; t and p: paired t test, two-sided; W/L/T: seeds where the method was better/worse/equal).',
  );
  for (const task of t.tasks) {
    lines.push('');
    lines.push(`**${task.name}** — ${task.label} (${task.higherIsBetter ? 'higher' : 'lower'} is better)`);
    lines.push('');
    lines.push(
      ...markdownRows(
        t.rows.filter((x) => x.task === task.name),
        t.baseline,
      ),
    );
    for (const metric of Object.keys(METRICS) as MetricName[]) {
      const sec = (t.secondary ?? []).filter((x) => x.task === task.name && x.metric === metric);
      if (sec.length === 0) continue;
      lines.push('');
      lines.push(
        `*${task.name}, also measured:* ${METRICS[metric].label} (${METRICS[metric].higherIsBetter ? 'higher' : 'lower'} is better)`,
      );
      lines.push('');
      lines.push(...markdownRows(sec, t.baseline));
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
