/**
 * `nuggets report`: ONE self-contained HTML file — vega, vega-lite and vega-embed inlined from
 * node_modules, the data inlined in each spec — so it opens offline, from an e-mail, anywhere.
 * Every plot container gets `data-rendered="true"` when vega-embed has drawn it (or "error" with the
 * message), which the headless-Chromium test reads back from the DOM.
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { writeFileAtomic } from '../io/atomic.js';
import {
  REFERENCE_NOTE,
  referenceLabel,
  SCALING_LEVEL,
  sizeHeading,
  type ReferenceRow,
  type TableRow,
} from '../study/table.js';
import { METRICS, sizeRunsTask, type MetricName } from '../study/config.js';
import type { ReportData, WindowRow } from './data.js';
import { PAPER_ABLATIONS, PAPER_ABLATION_LORA, PAPER_MAIN, PAPER_METRICS } from './paper.js';
import {
  heldOutLoss,
  layerScores,
  resultsPlot,
  scalePlot,
  sensitivityHeatmap,
  trainingLoss,
  windowPlot,
  type Spec,
} from './specs.js';

const LIBS = [
  ['vega', 'vega.min.js'],
  ['vega-lite', 'vega-lite.min.js'],
  ['vega-embed', 'vega-embed.min.js'],
] as const;

/** The minified UMD build of a package, found in the nearest node_modules above this module. */
export function libraryScript(pkg: string, file: string): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const p = join(dir, 'node_modules', pkg, 'build', file);
    if (existsSync(p)) return readFileSync(p, 'utf8');
    const up = dirname(dir);
    if (up === dir)
      throw new Error(`report: cannot find node_modules/${pkg}/build/${file} (is ${pkg} installed?)`);
    dir = up;
  }
}

const esc = (s: string) =>
  s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
/** JSON safe inside <script>: no "</script", no U+2028/2029 line breaks. */
const scriptJson = (v: unknown) =>
  JSON.stringify(v)
    .replace(/</g, '\\u003c')
    .replace(/\u2028/g, '\\u2028')
    .replace(/\u2029/g, '\\u2029');
/** A library's source inside <script>: only "</script" needs breaking. */
const scriptText = (s: string) => s.replace(/<\/(script)/gi, '<\\/$1');

const num = (v: number | null | undefined, d = 4) =>
  v === null || v === undefined || !Number.isFinite(v) ? '—' : v.toFixed(d);
const sgn = (v: number | null | undefined, d = 4) =>
  v === null || v === undefined || !Number.isFinite(v) ? '—' : `${v >= 0 ? '+' : ''}${v.toFixed(d)}`;
const pv = (p: number | null | undefined) =>
  p === null || p === undefined ? '—' : p < 0.001 ? '&lt;0.001' : p.toFixed(3);

interface Plot {
  id: string;
  title: string;
  caption: string;
  spec: Spec;
}

function tableHtml(rows: TableRow[], baseline: string, refs: ReferenceRow[] = []): string {
  const out = [
    '<table class="num"><thead><tr><th>method</th><th>mean</th><th>std</th><th>n</th>' +
      `<th>diff vs ${esc(baseline)}</th><th>std err</th><th>t</th><th>p</th><th>W/L/T</th></tr></thead><tbody>`,
  ];
  for (const r of rows) {
    const c = r.vsBaseline;
    const better =
      c && c.meanDiff !== null && c.p !== null && c.p < 0.05
        ? c.meanDiff > 0 === r.higherIsBetter
          ? ' class="better"'
          : ' class="worse"'
        : '';
    out.push(
      `<tr${better}><td>${esc(r.method)}</td><td>${num(r.mean)}</td><td>${num(r.std)}</td><td>${r.n}</td>` +
        `<td>${c ? sgn(c.meanDiff) : '—'}</td><td>${c ? num(c.stdErr) : '—'}</td><td>${c ? num(c.t, 2) : '—'}</td><td>${c ? pv(c.p) : '—'}</td>` +
        `<td>${c ? `${c.wins}/${c.losses}/${c.ties}` : '—'}</td></tr>`,
    );
  }
  for (const r of refs)
    out.push(
      `<tr class="reference"><td>${esc(referenceLabel(r))}</td><td>${num(r.value)}</td><td>—</td><td>${r.value === null ? 0 : 1}</td>` +
        '<td>—</td><td>—</td><td>—</td><td>—</td><td>—</td></tr>',
    );
  out.push('</tbody></table>');
  return out.join('\n');
}

function ourTable(d: ReportData): string {
  const parts: string[] = [];
  const refs = d.table.references ?? [];
  for (const size of d.table.sizes ?? [undefined]) {
    const here = <T extends { size?: string; task: string }>(xs: T[], task: string) =>
      xs.filter((x) => x.size === size?.name && x.task === task);
    if (size) parts.push(`<h3 class="size">${esc(sizeHeading(size))}</h3>`);
    for (const t of d.plan.tasks.filter((x) => sizeRunsTask(size, x.name))) {
      parts.push(
        `<h4>${esc(t.name)} <small>${esc(t.label)}, ${t.higherIsBetter ? 'higher' : 'lower'} is better</small></h4>`,
      );
      parts.push(
        tableHtml(
          here(d.table.rows, t.name),
          d.table.baseline,
          here(refs, t.name).filter((r) => r.metric === t.metric),
        ),
      );
      for (const metric of Object.keys(METRICS) as MetricName[]) {
        const sec = here(d.table.secondary ?? [], t.name).filter((r) => r.metric === metric);
        if (sec.length === 0) continue;
        parts.push(
          `<p class="note"><b>${esc(t.name)}, also measured:</b> ${esc(METRICS[metric].label)} (${METRICS[metric].higherIsBetter ? 'higher' : 'lower'} is better)</p>`,
        );
        parts.push(
          tableHtml(
            sec,
            d.table.baseline,
            here(refs, t.name).filter((r) => r.metric === metric),
          ),
        );
      }
    }
  }
  if (refs.length > 0) parts.push(`<p class="note"><i>${esc(REFERENCE_NOTE)}</i></p>`);
  return parts.join('\n');
}

/** A method's row (the first size's in a scale study: the paper beside ours compares one setting). */
function row(d: ReportData, task: string, method: string): TableRow | undefined {
  const size = d.table.sizes?.[0]?.name;
  return d.table.rows.find((r) => r.task === task && r.method === method && r.size === size);
}

function paperBeside(d: ReportData): string {
  const paper =
    '<table class="num"><caption>The paper (Zhong et al., ICLR 2024): average of 7 metrics, no variance reported</caption>' +
    '<thead><tr><th>setting</th><th>LoRA</th><th>+ teacher parameters</th><th>diff</th></tr></thead><tbody>' +
    PAPER_MAIN.map(
      (p) =>
        `<tr><td>${esc(p.setting)}</td><td>${p.lora.toFixed(2)}</td><td>${p.transfer.toFixed(2)}</td><td>${sgn(p.transfer - p.lora, 2)}</td></tr>`,
    ).join('') +
    `</tbody></table><p class="note">Metrics: ${esc(PAPER_METRICS)}.</p>`;
  const oursRows = d.plan.tasks.map((t) => {
    const base = row(d, t.name, d.table.baseline);
    const tr = row(d, t.name, 'transfer');
    const c = tr?.vsBaseline ?? null;
    const ms = (r: TableRow | undefined) =>
      r && r.mean !== null ? `${num(r.mean)} ± ${num(r.std)} <small>(n=${r.n})</small>` : '—';
    return `<tr><td>${esc(t.name)}: ${esc(t.label)}</td><td>${ms(base)}</td><td>${ms(tr)}</td><td>${c ? `${sgn(c.meanDiff)} ± ${num(c.stdErr)}` : '—'}</td><td>${c ? pv(c.p) : '—'}</td></tr>`;
  });
  const ours =
    '<table class="num"><caption>Ours (this run): mean ± std over training seeds; diff ± its std error, paired over seeds</caption>' +
    `<thead><tr><th>task</th><th>LoRA</th><th>+ teacher parameters</th><th>diff</th><th>p</th></tr></thead><tbody>${oursRows.join('')}</tbody></table>`;
  const ablHead = `<thead><tr><th>axis</th><th>variant</th><th>paper</th><th>paper diff vs LoRA</th>${d.plan.tasks
    .map(
      (t) =>
        `<th>ours: ${esc(t.name)} diff vs LoRA (p)<br><small>${t.higherIsBetter ? 'higher' : 'lower'} is better</small></th>`,
    )
    .join('')}</tr></thead>`;
  const ablRows = PAPER_ABLATIONS.map((a) => {
    const ours = d.plan.tasks.map((t) => {
      const r = a.method ? row(d, t.name, a.method) : undefined;
      const c = r?.vsBaseline ?? null;
      if (!c) return `<td><span class="na">${a.method ? 'not in this run' : 'no method'}</span></td>`;
      const cls =
        c.meanDiff !== null && c.p !== null && c.p < 0.05
          ? c.meanDiff > 0 === t.higherIsBetter
            ? ' class="better"'
            : ' class="worse"'
          : '';
      return `<td${cls}>${sgn(c.meanDiff)} (${pv(c.p)})</td>`;
    });
    return `<tr><td>${a.axis}</td><td>${esc(a.variant)}${a.method ? ` <small>(${esc(a.method)})</small>` : ''}</td><td>${a.score.toFixed(2)}</td><td>${sgn(a.score - PAPER_ABLATION_LORA, 2)}</td>${ours.join('')}</tr>`;
  });
  const abl = `<table class="num wide"><caption>Ablations: the paper (LLaMA-1 13B → 7B, LoRA ${PAPER_ABLATION_LORA.toFixed(2)}) beside ours</caption>${ablHead}<tbody>${ablRows.join('')}</tbody></table>`;
  return `<div class="beside"><div>${paper}</div><div>${ours}</div></div>${abl}`;
}

/**
 * Window plots worth drawing: per task x method, skipping sets where every window is the whole matrix
 * (the self-teacher: same shapes) and sets identical to one already shown (e.g. random-matched
 * cuts the same blocks as transfer). The reference method comes first.
 */
export function windowGroups(windows: WindowRow[]): Array<[string, WindowRow[]]> {
  const byKey = new Map<string, WindowRow[]>();
  for (const w of windows) {
    const k = `${w.size ? `${w.size}: ` : ''}${w.task} / ${w.method}`;
    if (!byKey.has(k)) byKey.set(k, []);
    byKey.get(k)!.push(w);
  }
  const out: Array<[string, WindowRow[]]> = [];
  const seen = new Set<string>();
  const entries = [...byKey].sort(
    (a, b) => Number(b[1][0].method === 'transfer') - Number(a[1][0].method === 'transfer'),
  );
  for (const [k, rows] of entries) {
    if (rows.every((r) => r.rows === r.tRows && r.cols === r.tCols)) continue;
    const sig =
      `${rows[0].size ?? ''}/${rows[0].task}` +
      JSON.stringify(rows.map((r) => [r.module, r.teacherLayer, r.r0, r.c0]));
    if (seen.has(sig)) continue;
    seen.add(sig);
    out.push([k, rows]);
  }
  return out;
}

function plotsFor(d: ReportData): { plots: Plot[]; sections: Record<string, string[]> } {
  const plots: Plot[] = [];
  const sections: Record<string, string[]> = {
    results: [],
    scale: [],
    sensitivity: [],
    windows: [],
    training: [],
  };
  const add = (section: string, title: string, caption: string, spec: Spec | null) => {
    if (!spec) return;
    const id = `plot-${plots.length + 1}`;
    plots.push({ id, title, caption, spec });
    sections[section].push(id);
  };
  add(
    'results',
    'Results per method',
    'Mean ± sample std over training seeds (bars), each seed as a tick; dashed line: the plain-LoRA mean.',
    resultsPlot(d),
  );
  add(
    'scale',
    `Difference from ${d.table.baseline} against student size`,
    `Per method, the mean over seeds of (method − ${d.table.baseline}), paired by seed within each size and task, against the student's parameter count (log scale); error bars: ${Math.round(SCALING_LEVEL * 100)}% paired t interval (mean ± t(n−1) · std err; none with fewer than two seeds). Dashed line: no difference.`,
    scalePlot(d),
  );
  add(
    'sensitivity',
    'Per-layer sensitivity',
    'Mean |θ·∂L/∂θ| per element over the seed examples, by teacher layer and module kind (docs/method.md step 1).',
    sensitivityHeatmap(d),
  );
  add(
    'sensitivity',
    'Selected layers',
    "Layer score = sum of S over the layer's tensors; the L_s highest feed the student, in depth order (step 2).",
    layerScores(d),
  );
  for (const [k, rows] of windowGroups(d.windows)) {
    add(
      'windows',
      `Windows: ${k}`,
      'Grey: the teacher matrix (rows = out, columns = in; embedding transposed to [d, V]); orange: the student-shaped block cut from it (step 3). Panels are not to scale with each other.',
      windowPlot(rows),
    );
  }
  add(
    'training',
    'Training loss',
    'Effective-batch mean answer-token loss per update, one line per method and seed.',
    trainingLoss(d),
  );
  add(
    'training',
    'Held-out loss',
    'Mean answer-token loss on the held-out test set after each epoch.',
    heldOutLoss(d),
  );
  return { plots, sections };
}

/** The whole page. */
export function reportHtml(d: ReportData, opts: { title?: string; generated?: Date } = {}): string {
  const { plots, sections } = plotsFor(d);
  const title = opts.title ?? `nuggets report: ${d.plan.name}`;
  const plotHtml = (id: string) => {
    const p = plots.find((x) => x.id === id)!;
    return `<figure><figcaption><b>${esc(p.title)}</b> — ${esc(p.caption)}</figcaption><div class="plot" id="${p.id}" data-plot="${esc(p.title)}"></div></figure>`;
  };
  const section = (name: string, heading: string, intro: string, empty: string) =>
    `<section id="${name}"><h2>${esc(heading)}</h2>${intro}${sections[name].length ? sections[name].map(plotHtml).join('\n') : `<p class="na">${esc(empty)}</p>`}</section>`;
  const cells = d.plan.jobs.filter((j) => j.kind === 'cell').length;
  const header =
    `<header><h1>${esc(title)}</h1><p>Run folder <code>${esc(d.runDir)}</code>; experiment <code>${esc(d.plan.experiment)}</code>; ` +
    `${d.plan.methods.length} methods × ${d.plan.seeds.length} seeds × ${d.plan.tasks.length} tasks${d.plan.sizes ? ` × ${d.plan.sizes.length} student sizes` : ''} = ${cells} cells, ${cells - d.table.missing.filter((id) => /(^|\/)cells\//.test(id)).length} finished. ` +
    `Generated ${(opts.generated ?? new Date()).toISOString()}.</p>` +
    `<p>Methods: ${d.plan.methods.map((m) => `<b>${esc(m.name)}</b> (${esc(m.description)})`).join('; ')}.</p></header>`;
  const missing = d.table.missing.length
    ? `<p class="warn">Missing cells (${d.table.missing.length}): ${esc(d.table.missing.join(', '))}</p>`
    : '';
  const notes = d.notes.length
    ? `<section><h2>Notes</h2><ul>${d.notes.map((n) => `<li>${esc(n)}</li>`).join('')}</ul></section>`
    : '';
  const libs = LIBS.map(
    ([pkg, file]) =>
      `<script>/* ${pkg} (inlined from node_modules) */\n${scriptText(libraryScript(pkg, file))}\n</script>`,
  ).join('\n');
  const specs = Object.fromEntries(plots.map((p) => [p.id, p.spec]));
  return `<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>${esc(title)}</title>
<style>
body{font-family:system-ui,sans-serif;margin:1.5em auto;max-width:1400px;padding:0 1em;color:#222}
h2{border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:1.6em}
table{border-collapse:collapse;margin:.6em 0;font-size:.9em}th,td{border:1px solid #ccc;padding:.25em .5em}
table.num td{text-align:right}table.num td:first-child,table.num td:nth-child(2):not(:last-child){text-align:left}
caption{caption-side:top;text-align:left;font-weight:bold;padding:.3em 0}
tr.better td,td.better{background:#e6f4ea}tr.reference td{font-style:italic;color:#555}tr.worse td,td.worse{background:#fce8e6}
.beside{display:flex;gap:2em;flex-wrap:wrap;align-items:flex-start}
.na{color:#888}.warn{color:#a50}.note{font-size:.85em;color:#555}
figure{margin:1em 0}figcaption{margin-bottom:.4em}
.plot{overflow-x:auto}
</style></head><body>
${header}
<section id="results-table"><h2>Results</h2>
<p>Paired comparisons are against <b>${esc(d.table.baseline)}</b> over the seeds both finished (difference = method − baseline; two-sided paired t test). Green/red rows: p &lt; 0.05 better/worse than the baseline.</p>
${ourTable(d)}${missing}</section>
${section('results', 'Results with error bars', '', 'No finished cells yet.')}
${d.table.sizes ? section('scale', 'Against student size', '', 'No size has paired results against the baseline yet.') : ''}
<section id="paper"><h2>The paper's table beside ours</h2>${paperBeside(d)}</section>
${section('sensitivity', 'Sensitivity and selected layers', '', 'No sensitivity summaries in this run (no method reads a teacher, or sense has not run).')}
${section('windows', 'Where each window sits in its teacher matrix', '', 'No extract manifests with block windows in this run.')}
${section('training', 'Training', '', 'No training logs yet.')}
${notes}
${libs}
<script>
const SPECS = ${scriptJson(specs)};
for (const [id, spec] of Object.entries(SPECS)) {
  const el = document.getElementById(id);
  vegaEmbed(el, spec, { actions: false, renderer: 'svg' })
    .then(() => el.setAttribute('data-rendered', 'true'))
    .catch((e) => { el.setAttribute('data-rendered', 'error'); el.setAttribute('data-error', String(e && e.message || e)); el.textContent = 'plot failed: ' + (e && e.message || e); });
}
</script>
</body></html>
`;
}

/** Writes the report atomically; returns the number of plots. */
export function writeReport(path: string, d: ReportData, opts: { title?: string } = {}): { plots: number } {
  const html = reportHtml(d, opts);
  writeFileAtomic(path, [html]);
  return { plots: (html.match(/class="plot"/g) ?? []).length };
}
