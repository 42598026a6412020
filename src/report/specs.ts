/**
 * Vega-Lite specifications of the report's plots, built from ReportData rows. Each function returns
 * a complete spec (data inlined) or null when the run has nothing to show for it.
 */
import { LAYER_KINDS, type LossPoint, type ReportData, type WindowRow } from './data.js';
import { SCALING_LEVEL } from '../study/table.js';

export type Spec = Record<string, unknown>;

const SCHEMA = 'https://vega.github.io/schema/vega-lite/v6.json';
const MODULE_ORDER = [...LAYER_KINDS, 'embed_tokens', 'lm_head'];

/** The panel of a row: its task, or "<size>: <task>" in a scale study. */
export const panelOf = (r: { size?: string; task: string }) => (r.size ? `${r.size}: ${r.task}` : r.task);
const withPanel = (ps: LossPoint[]) => ps.map((p) => ({ ...p, panel: panelOf(p) }));

/**
 * Per-layer sensitivity: teacher layers x module kinds, one panel per teacher x task. Panels are
 * concatenated, not faceted: teachers differ in depth and in scale, and vega-lite draws nothing for a
 * faceted rect chart with independent ordinal axes.
 */
export function sensitivityHeatmap(d: ReportData): Spec | null {
  const values = d.sensitivity.filter((c) => c.mean > 0);
  if (values.length === 0) return null;
  const sources = [...new Set(values.map((v) => v.source))];
  return {
    $schema: SCHEMA,
    description: 'Sensitivity per teacher layer and module kind (docs/method.md step 1)',
    hconcat: sources.map((source) => ({
      title: { text: source, fontSize: 11 },
      data: { values: values.filter((v) => v.source === source) },
      width: { step: 26 },
      height: { step: 16 },
      mark: 'rect',
      encoding: {
        x: {
          field: 'kind',
          type: 'nominal',
          sort: [...LAYER_KINDS],
          title: 'module',
          axis: { labelAngle: -45 },
        },
        y: { field: 'layer', type: 'ordinal', title: 'teacher layer' },
        color: {
          field: 'mean',
          type: 'quantitative',
          scale: { type: 'log', scheme: 'viridis' },
          title: 'mean |θ·g|',
        },
        tooltip: [
          { field: 'source', title: 'teacher -- task' },
          { field: 'layer' },
          { field: 'kind' },
          { field: 'sum', format: '.4g', title: 'Σ |θ·g|' },
          { field: 'mean', format: '.4g', title: 'mean per element' },
        ],
      },
    })),
    resolve: { scale: { color: 'independent' } },
  };
}

/** Layer scores (docs/method.md step 2) with the layers kept for the student highlighted. */
export function layerScores(d: ReportData): Spec | null {
  if (d.layerScores.length === 0) return null;
  return {
    $schema: SCHEMA,
    description: 'Layer scores and the selected teacher layers (docs/method.md step 2)',
    data: {
      values: d.layerScores.map((s) => ({
        ...s,
        kept: s.selected ? 'selected for the student' : 'not selected',
      })),
    },
    facet: { column: { field: 'source', type: 'nominal', title: 'teacher -- task' } },
    spec: {
      width: { step: 22 },
      height: 160,
      mark: 'bar',
      encoding: {
        x: { field: 'layer', type: 'ordinal', title: 'teacher layer' },
        y: { field: 'score', type: 'quantitative', title: 'layer score Σ S' },
        color: {
          field: 'kept',
          type: 'nominal',
          scale: { domain: ['selected for the student', 'not selected'], range: ['#d95f02', '#bbbbbb'] },
          title: null,
        },
        tooltip: [{ field: 'layer' }, { field: 'score', format: '.4g' }, { field: 'kept' }],
      },
    },
    resolve: { scale: { y: 'independent', x: 'independent' } },
  };
}

/**
 * Where each window sits in its teacher matrix (rectangles over the matrix extent), one task x method:
 * a grid of small panels, one row per student layer (plus the embedding / head row), one column per
 * module kind. Built with concat rather than facet: every panel has its own scales (the matrices
 * differ in shape), which vega-lite's facet layout does not align reliably.
 */
export function windowPlot(rows: WindowRow[]): Spec | null {
  if (rows.length === 0) return null;
  const rowOrder = [...new Set(rows.map((r) => r.row))].sort((a, b) => rank(a) - rank(b));
  const panel = (r: WindowRow, first: boolean) => ({
    width: 80,
    height: 80,
    title: { text: r.kind, fontSize: 10 },
    data: {
      values: [
        {
          ...r,
          ex0: 0,
          ex1: r.tCols,
          ey0: 0,
          ey1: r.tRows,
          c1: r.c0 + r.cols,
          r1: r.r0 + r.rows,
          sharePct: r.share === null ? null : Math.round(r.share * 1000) / 10,
        },
      ],
    },
    layer: [
      {
        mark: { type: 'rect', fill: '#eeeeee', stroke: '#888888', strokeWidth: 0.5 },
        encoding: {
          x: {
            field: 'ex0',
            type: 'quantitative',
            title: null,
            scale: { domain: [0, r.tCols], nice: false },
            axis: { values: [0, r.tCols] },
          },
          x2: { field: 'ex1' },
          y: {
            field: 'ey0',
            type: 'quantitative',
            title: first ? r.row : null,
            scale: { domain: [0, r.tRows], reverse: true, nice: false },
            axis: { values: [0, r.tRows] },
          },
          y2: { field: 'ey1' },
        },
      },
      {
        mark: { type: 'rect', fill: '#d95f02', opacity: 0.8 },
        encoding: {
          x: { field: 'c0', type: 'quantitative' },
          x2: { field: 'c1' },
          y: { field: 'r0', type: 'quantitative' },
          y2: { field: 'r1' },
          tooltip: [
            { field: 'module' },
            { field: 'teacherLayer', title: 'teacher layer' },
            { field: 'tRows', title: 'teacher rows (out)' },
            { field: 'tCols', title: 'teacher cols (in)' },
            { field: 'r0', title: 'row offset' },
            { field: 'c0', title: 'col offset' },
            { field: 'rows', title: 'window rows' },
            { field: 'cols', title: 'window cols' },
            { field: 'sharePct', title: '% of sensitivity captured' },
          ],
        },
      },
    ],
  });
  return {
    $schema: SCHEMA,
    description: `Windows cut from the teacher matrices: ${rows[0].task} / ${rows[0].method} (docs/method.md step 3)`,
    vconcat: rowOrder.map((label) => ({
      hconcat: rows
        .filter((r) => r.row === label)
        .sort((a, b) => MODULE_ORDER.indexOf(a.kind) - MODULE_ORDER.indexOf(b.kind))
        .map((r, i) => panel(r, i === 0)),
    })),
    config: { concat: { spacing: 12 }, axis: { labelFontSize: 9, titleFontSize: 10 } },
  };
}

function rank(row: string): number {
  const m = /^student (\d+)/.exec(row);
  return m ? Number(m[1]) : 1e9;
}

/** Training loss per update, one line per method x seed, one panel per task. */
export function trainingLoss(d: ReportData): Spec | null {
  const methods = d.plan.methods.map((m) => m.name);
  const values = withPanel(d.losses.filter((p) => p.kind === 'train'));
  if (values.length === 0) return null;
  return {
    $schema: SCHEMA,
    description: 'Training loss (answer tokens, effective-batch mean) per update',
    data: { values },
    facet: { column: { field: 'panel', type: 'nominal', title: 'task' } },
    spec: {
      width: 320,
      height: 220,
      mark: { type: 'line', opacity: 0.7, strokeWidth: 1.2 },
      encoding: {
        x: { field: 'step', type: 'quantitative', title: 'update' },
        y: { field: 'loss', type: 'quantitative', title: 'training loss', scale: { zero: false } },
        color: { field: 'method', type: 'nominal', title: 'method', scale: { domain: methods } },
        detail: { field: 'seed', type: 'nominal' },
        tooltip: [
          { field: 'method' },
          { field: 'seed' },
          { field: 'step' },
          { field: 'loss', format: '.4f' },
        ],
      },
    },
    resolve: { scale: { y: 'independent', x: 'independent' } },
  };
}

/** Held-out answer loss after each epoch, per method and seed. */
export function heldOutLoss(d: ReportData): Spec | null {
  const methods = d.plan.methods.map((m) => m.name);
  const values = withPanel(d.losses.filter((p) => p.kind === 'held-out'));
  if (values.length === 0) return null;
  return {
    $schema: SCHEMA,
    description: 'Held-out answer loss after each epoch',
    data: { values },
    facet: { column: { field: 'panel', type: 'nominal', title: 'task' } },
    spec: {
      width: 320,
      height: 220,
      mark: { type: 'line', point: true, opacity: 0.7 },
      encoding: {
        x: { field: 'epoch', type: 'quantitative', title: 'epoch' },
        y: { field: 'loss', type: 'quantitative', title: 'held-out answer loss', scale: { zero: false } },
        color: { field: 'method', type: 'nominal', title: 'method', scale: { domain: methods } },
        detail: { field: 'seed', type: 'nominal' },
        tooltip: [
          { field: 'method' },
          { field: 'seed' },
          { field: 'epoch' },
          { field: 'loss', format: '.4f' },
        ],
      },
    },
    resolve: { scale: { y: 'independent' } },
  };
}

/** Results: mean ± std over seeds per method (and each seed as a dot), one panel per task, baseline as a rule. */
export function resultsPlot(d: ReportData): Spec | null {
  const rows = d.table.rows.filter((r) => r.n > 0 && r.mean !== null);
  if (rows.length === 0) return null;
  const label = (r: { size?: string; task: string }) => {
    const t = d.plan.tasks.find((x) => x.name === r.task);
    const name = panelOf(r);
    return t ? `${name}: ${t.label} (${t.higherIsBetter ? 'higher' : 'lower'} is better)` : name;
  };
  const summaries = rows.map((r) => ({
    type: 'summary',
    panel: label(r),
    method: r.method,
    mean: r.mean,
    std: r.std ?? 0,
    lo: r.mean! - (r.std ?? 0),
    hi: r.mean! + (r.std ?? 0),
    n: r.n,
    baseline: r.method === d.table.baseline,
  }));
  const seeds = d.table.rows.flatMap((r) =>
    Object.entries(r.values).map(([seed, v]) => ({
      type: 'seed',
      panel: label(r),
      method: r.method,
      seed: Number(seed),
      value: v,
    })),
  );
  // One data set for every layer (a faceted spec shares its data), told apart by "type".
  const values = [...summaries, ...seeds];
  const order = d.plan.methods.map((m) => m.name);
  const panels = [...new Set(summaries.map((x) => x.panel))];
  return {
    $schema: SCHEMA,
    description: 'Results per method: mean ± std over training seeds',
    data: { values },
    facet: { column: { field: 'panel', type: 'nominal', title: null, sort: panels } },
    spec: {
      // Wide enough for the panel title even with few methods.
      width: Math.max(260, 40 * order.length),
      height: 240,
      layer: [
        {
          transform: [{ filter: "datum.type === 'summary' && datum.baseline" }],
          mark: { type: 'rule', strokeDash: [4, 3], color: '#888888' },
          encoding: { y: { field: 'mean', type: 'quantitative' } },
        },
        {
          transform: [{ filter: "datum.type === 'summary'" }],
          mark: { type: 'rule', strokeWidth: 2 },
          encoding: {
            x: { field: 'method', type: 'nominal', sort: order, title: 'method', axis: { labelAngle: -40 } },
            y: {
              field: 'lo',
              type: 'quantitative',
              title: 'metric (mean ± std over seeds)',
              scale: { zero: false },
            },
            y2: { field: 'hi' },
            color: { field: 'method', type: 'nominal', scale: { domain: order }, legend: null },
          },
        },
        {
          transform: [{ filter: "datum.type === 'summary'" }],
          mark: { type: 'point', filled: true, size: 70 },
          encoding: {
            x: { field: 'method', type: 'nominal', sort: order },
            y: { field: 'mean', type: 'quantitative' },
            color: { field: 'method', type: 'nominal', scale: { domain: order }, legend: null },
            tooltip: [
              { field: 'method' },
              { field: 'mean', format: '.4f' },
              { field: 'std', format: '.4f' },
              { field: 'n' },
            ],
          },
        },
        {
          transform: [{ filter: "datum.type === 'seed'" }],
          mark: { type: 'tick', color: '#555555', opacity: 0.6, thickness: 1 },
          encoding: {
            x: { field: 'method', type: 'nominal', sort: order },
            y: { field: 'value', type: 'quantitative' },
            tooltip: [{ field: 'method' }, { field: 'seed' }, { field: 'value', format: '.4f' }],
          },
        },
      ],
    },
    resolve: { scale: { y: 'independent' } },
  };
}

/**
 * A scale study: each method's mean paired difference from plain LoRA (same size, same task, paired
 * by seed) against the student's parameter count (log axis), with the SCALING_LEVEL paired t
 * interval as error bars; one panel per task, a dashed rule at zero (= plain LoRA).
 */
export function scalePlot(d: ReportData): Spec | null {
  const points = (d.table.scaling ?? []).filter((p) => p.meanDiff !== null && p.params !== null);
  if (points.length === 0) return null;
  const methods = d.plan.methods.map((m) => m.name).filter((m) => m !== d.table.baseline);
  const label = (task: string) => {
    const t = d.plan.tasks.find((x) => x.name === task);
    return t ? `${task}: ${t.label} (${t.higherIsBetter ? 'higher' : 'lower'} is better)` : task;
  };
  const pct = Math.round(SCALING_LEVEL * 100);
  // "zero" marks one point per panel: the zero rule is drawn once there, not once per point.
  const seen = new Set<string>();
  const values = points.map((p) => {
    const panel = label(p.task);
    const zero = !seen.has(panel);
    seen.add(panel);
    return { ...p, panel, zero, hasInterval: p.ciLow !== null };
  });
  const x = {
    field: 'params',
    type: 'quantitative',
    scale: { type: 'log', nice: false, padding: 24 },
    title: 'student parameters (log scale)',
  };
  const color = { field: 'method', type: 'nominal', scale: { domain: methods }, title: 'method' };
  return {
    $schema: SCHEMA,
    description: `Difference from ${d.table.baseline} against student size, ${pct}% paired t intervals`,
    data: { values },
    facet: { column: { field: 'panel', type: 'nominal', title: null, sort: [...seen] } },
    spec: {
      width: 320,
      height: 240,
      layer: [
        {
          transform: [{ filter: 'datum.zero' }],
          mark: { type: 'rule', strokeDash: [4, 3], color: '#888888' },
          encoding: { y: { datum: 0, type: 'quantitative' } },
        },
        {
          mark: { type: 'line', opacity: 0.6 },
          encoding: { x, y: { field: 'meanDiff', type: 'quantitative' }, color },
        },
        {
          transform: [{ filter: 'datum.hasInterval' }],
          mark: { type: 'rule', strokeWidth: 1.5 },
          encoding: {
            x,
            y: { field: 'ciLow', type: 'quantitative' },
            y2: { field: 'ciHigh' },
            color,
          },
        },
        {
          mark: { type: 'point', filled: true, size: 60 },
          encoding: {
            x,
            y: {
              field: 'meanDiff',
              type: 'quantitative',
              title: `method − ${d.table.baseline} (mean over seeds, ${pct}% interval)`,
            },
            color,
            tooltip: [
              { field: 'method' },
              { field: 'size' },
              { field: 'params', title: 'student parameters', format: ',' },
              { field: 'n', title: 'seeds paired' },
              { field: 'meanDiff', format: '+.4f', title: 'mean difference' },
              { field: 'stdErr', format: '.4f', title: 'std err' },
              { field: 'ciLow', format: '+.4f', title: `${pct}% low` },
              { field: 'ciHigh', format: '+.4f', title: `${pct}% high` },
            ],
          },
        },
      ],
    },
    resolve: { scale: { y: 'independent' } },
  };
}
