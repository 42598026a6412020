import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { InputError } from '../src/errors.js';
import { loadReportData } from '../src/report/data.js';
import { reportHtml, windowGroups } from '../src/report/html.js';
import { makeReport } from '../src/cli/report.js';
import { SYNTHETIC_SIZES, writeSyntheticRun } from './study-fixture.js';
import { pairedInterval } from '../src/study/stats.js';

const run = promisify(execFile);
const CHROMIUM = ['/usr/bin/chromium', '/usr/bin/chromium-browser', '/usr/bin/google-chrome'].find((p) =>
  existsSync(p),
);
const OUT = resolve('out/report-test');

function fixture(opts: { sizes?: boolean } = {}): string {
  const dir = mkdtempSync(join(tmpdir(), 'nuggets-report-'));
  writeSyntheticRun(join(dir, 'run'), opts);
  return join(dir, 'run');
}

const FLAGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-dev-shm-usage',
  '--no-first-run',
  '--virtual-time-budget=20000',
];
const CHROME_ENV = { ...process.env, DBUS_SESSION_BUS_ADDRESS: 'disabled:' };

/** The DOM after headless Chromium has run the page's scripts, and each plot container's body. */
async function renderedPlots(
  page: string,
): Promise<Array<{ id: string; title: string; attrs: string; body: string }>> {
  const { stdout: dom } = await run(CHROMIUM!, [...FLAGS, '--dump-dom', pathToFileURL(page).href], {
    env: CHROME_ENV,
    maxBuffer: 64 << 20,
    timeout: 120_000,
  });
  return [...dom.matchAll(/<div class="plot[^"]*" id="(plot-\d+)" data-plot="([^"]*)"([^>]*)>/g)].map(
    ([, id, title, attrs]) => {
      const start = dom.indexOf(`id="${id}"`);
      const next = dom.indexOf('class="plot', start + 1);
      return { id, title, attrs, body: dom.slice(start, next < 0 ? dom.indexOf('<script', start) : next) };
    },
  );
}

const items = (body: string, role: string) =>
  (body.match(new RegExp(`aria-roledescription="${role}"`, 'g')) ?? []).length;

test('report data: sensitivity cells, selected layers, block windows only, loss points, table', () => {
  const dir = fixture();
  try {
    const d = loadReportData(dir);
    // 2 tasks x (teacher 6 layers + student 3 layers) x 9 tensors per layer.
    assert.equal(d.sensitivity.length, 2 * (6 + 3) * 9);
    assert.deepEqual(d.selected['big--facts'], [1, 3, 4]);
    assert.deepEqual(
      d.layerScores.filter((s) => s.source === 'big--facts' && s.selected).map((s) => s.layer),
      [1, 3, 4],
    );
    // rowcol has no contiguous window: nothing from it; transfer and self have 3 x 7 + embedding each per task.
    assert.ok(d.windows.every((w) => w.method !== 'rowcol'));
    assert.equal(d.windows.filter((w) => w.task === 'facts' && w.method === 'transfer').length, 22);
    // Self-teacher windows cover their whole matrix and are left out of the plots.
    assert.deepEqual(
      windowGroups(d.windows)
        .map(([k]) => k)
        .sort(),
      ['facts / transfer', 'stories / transfer'],
    );
    // 30 cells x (12 training lines + 3 held-out lines).
    assert.equal(d.losses.length, 30 * 15);
    assert.equal(d.table.rows.length, 10);
    assert.equal(d.table.missing.length, 0);
  } finally {
    rmSync(resolve(dir, '..'), { recursive: true, force: true });
  }
});

test('report HTML is self-contained: libraries and data inline, no external resources', () => {
  const dir = fixture();
  try {
    const html = reportHtml(loadReportData(dir));
    assert.equal((html.match(/<script>/g) ?? []).length, 4, 'vega, vega-lite, vega-embed and the specs');
    assert.ok(!/<script[^>]+src=/i.test(html), 'no external scripts');
    assert.ok(!/<link[^>]+href=/i.test(html), 'no external stylesheets');
    assert.ok(html.includes('vegaEmbed'), 'vega-embed inlined');
    // Only the closing tags of our own 4 scripts: the inlined code cannot end its script early.
    assert.equal((html.match(/<\/script/gi) ?? []).length, 4);
    // results, heat map, layer scores, 2 window plots, training loss, held-out loss.
    assert.equal((html.match(/class="plot"/g) ?? []).length, 7);
    // The paper's numbers are beside ours.
    for (const v of ['27.00', '28.22', '28.63', '33.89', '35.54', '32.28', '34.47'])
      assert.ok(html.includes(`<td>${v}</td>`), v);
  } finally {
    rmSync(resolve(dir, '..'), { recursive: true, force: true });
  }
});

test('report refuses folders that are not runs, and broken summaries, naming the file', () => {
  const dir = mkdtempSync(join(tmpdir(), 'nuggets-report-bad-'));
  try {
    assert.throws(
      () => loadReportData(dir),
      (e: unknown) => e instanceof InputError && e.source === dir && /plan\.json/.test(e.problem),
    );
    const runDir = join(dir, 'run');
    writeSyntheticRun(runDir);
    const summary = join(runDir, 'sense', 'big--facts', 'sensitivity.summary.json');
    writeFileSync(summary, '{"tensors": ');
    assert.throws(
      () => loadReportData(runDir),
      (e: unknown) => e instanceof InputError && e.source === summary,
    );
    writeFileSync(summary, '{"something": 1}');
    assert.throws(
      () => loadReportData(runDir),
      (e: unknown) => e instanceof InputError && /not a sensitivity summary/.test(e.problem),
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test(
  'headless Chromium renders every plot of the report and takes a screenshot',
  { skip: CHROMIUM ? false : 'chromium is not installed (apt-get install chromium)' },
  async () => {
    const dir = fixture();
    try {
      mkdirSync(OUT, { recursive: true });
      const page = join(OUT, 'report.html');
      const { plots } = makeReport(dir, page);
      assert.equal(plots, 7);
      const url = pathToFileURL(page).href;
      const flags = FLAGS;
      const env = CHROME_ENV;
      const containers = await renderedPlots(page);
      assert.equal(containers.length, plots, 'every plot container is in the DOM');
      // How many mark items each plot must draw, from the data (an embed can "succeed" and draw nothing).
      const d = loadReportData(dir);
      const cells = new Set(d.losses.map((p) => `${p.task}/${p.method}/${p.seed}`)).size;
      const expected: Record<string, Record<string, number>> = {
        'Results per method': {
          point: d.table.rows.filter((r) => r.n > 0).length,
          tick: d.table.rows.reduce((a, r) => a + r.n, 0),
        },
        'Per-layer sensitivity': { 'rect mark': d.sensitivity.length },
        'Selected layers': { bar: d.layerScores.length },
        'Windows: facts / transfer': {
          'rect mark': 2 * d.windows.filter((w) => w.task === 'facts' && w.method === 'transfer').length,
        },
        'Windows: stories / transfer': {
          'rect mark': 2 * d.windows.filter((w) => w.task === 'stories' && w.method === 'transfer').length,
        },
        'Training loss': { 'line mark': cells },
        'Held-out loss': { 'line mark': cells, point: d.losses.filter((p) => p.kind === 'held-out').length },
      };
      for (const { id, title, attrs, body } of containers) {
        const err = /data-error="([^"]*)"/.exec(attrs)?.[1];
        assert.match(attrs, /data-rendered="true"/, `${id} did not render${err ? `: ${err}` : ''}`);
        // The container holds vega's output (an svg) right after the opening tag.
        assert.match(body, /<svg[^>]*class="marks"/, `${id} has no vega svg`);
        const want = expected[title];
        assert.ok(want, `unexpected plot "${title}"`);
        for (const [role, n] of Object.entries(want)) {
          const got = items(body, role);
          assert.equal(got, n, `${title}: ${n} "${role}" items expected, ${got} drawn`);
        }
      }
      const png = join(OUT, 'report.png');
      rmSync(png, { force: true });
      await run(
        CHROMIUM!,
        [...flags, '--hide-scrollbars', '--window-size=1400,4800', `--screenshot=${png}`, url],
        { env, timeout: 120_000 },
      );
      const bytes = readFileSync(png);
      assert.deepEqual(
        [...bytes.subarray(0, 8)],
        [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a],
        'a PNG file',
      );
      assert.ok(statSync(png).size > 50_000, 'the screenshot has content');
    } finally {
      rmSync(resolve(dir, '..'), { recursive: true, force: true });
    }
  },
);

test('scale study report: reference rows in every table, and the difference from LoRA per size', () => {
  const dir = fixture({ sizes: true });
  try {
    const d = loadReportData(dir);
    const t = d.table;
    assert.deepEqual(
      t.sizes!.map((s) => [s.name, s.params]),
      Object.entries(SYNTHETIC_SIZES),
    );
    // 2 sizes x 2 tasks x 5 methods; teacher + student per size x task (one metric each here).
    assert.equal(t.rows.length, 20);
    assert.equal(t.references.length, 8);
    // 4 methods besides lora x 2 sizes x 2 tasks, each the paired mean of the cells' differences.
    assert.equal(t.scaling!.length, 16);
    for (const p of t.scaling!) {
      const r = (m: string) => t.rows.find((x) => x.size === p.size && x.task === p.task && x.method === m)!;
      const diffs = Object.keys(r('lora').values).map((s) => r(p.method).values[s] - r('lora').values[s]);
      const mean = diffs.reduce((a, b) => a + b, 0) / diffs.length;
      assert.ok(Math.abs(p.meanDiff! - mean) < 1e-12, `${p.size}/${p.task}/${p.method}`);
      assert.deepEqual([p.ciLow, p.ciHigh], pairedInterval(r(p.method).vsBaseline!));
      assert.equal(p.params, SYNTHETIC_SIZES[p.size as keyof typeof SYNTHETIC_SIZES]);
    }
    const html = reportHtml(d);
    // Every table of the page ends with its two reference rows: 2 sizes x 2 tasks, one table each.
    assert.equal((html.match(/<tr class="reference"><td>teacher big, no training<\/td>/g) ?? []).length, 4);
    assert.equal(
      (html.match(/<tr class="reference"><td>student, no training<\/td><td>0\.0000<\/td>/g) ?? []).length,
      2,
    );
    assert.match(html, /size m: student student-m, 1,200,000 parameters, learning rate 0\.0015/);
    assert.match(html, /data-plot="Difference from lora against student size"/);
  } finally {
    rmSync(resolve(dir, '..'), { recursive: true, force: true });
  }
});

test(
  'headless Chromium renders the scale plot: one point and one interval per method x size x task',
  { skip: CHROMIUM ? false : 'chromium is not installed (apt-get install chromium)' },
  async () => {
    const dir = fixture({ sizes: true });
    try {
      mkdirSync(OUT, { recursive: true });
      const page = join(OUT, 'report-scale.html');
      const { plots } = makeReport(dir, page);
      const containers = await renderedPlots(page);
      assert.equal(containers.length, plots);
      for (const { id, attrs } of containers) {
        const err = /data-error="([^"]*)"/.exec(attrs)?.[1];
        assert.match(attrs, /data-rendered="true"/, `${id} did not render${err ? `: ${err}` : ''}`);
      }
      const scale = containers.find((c) => c.title === 'Difference from lora against student size');
      assert.ok(scale, 'the scale plot is on the page');
      const points = loadReportData(dir).table.scaling!;
      assert.equal(items(scale.body, 'point'), points.length);
      // an interval per point, and the dashed zero line once per task panel
      assert.equal(items(scale.body, 'rule mark'), points.filter((p) => p.ciLow !== null).length);
      assert.equal((scale.body.match(/<line [^>]*stroke-dasharray="4,3"/g) ?? []).length, 2);
      // one line per method and task, through its sizes
      assert.equal(items(scale.body, 'line mark'), 4 * 2);
      // The x axis is the parameter count: both sizes are labelled on a log axis.
      assert.match(scale.body, /student parameters \(log scale\)/);
    } finally {
      rmSync(resolve(dir, '..'), { recursive: true, force: true });
    }
  },
);
