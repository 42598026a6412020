/** lm-eval's summary table of a results JSON, as `nuggets eval` prints it. */
import type { ResultsJson } from './results.js';

function fmt(v: unknown): string {
  if (typeof v !== 'number') return String(v);
  return Number.isInteger(v) ? String(v) : v.toFixed(4);
}

/** lm-eval's summary table: one row per task and metric. */
export function summaryTable(results: ResultsJson): string {
  const rows: string[][] = [['Tasks', 'Version', 'Filter', 'n-shot', 'Metric', 'Value', 'Stderr']];
  for (const [task, r] of Object.entries(results.results)) {
    for (const [k, v] of Object.entries(r)) {
      if (k === 'alias' || k.includes('_stderr,')) continue;
      const [metric, filter] = k.split(',');
      const se = r[`${metric}_stderr,${filter}`];
      rows.push([
        task,
        String(results.versions[task] ?? ''),
        filter,
        String(results['n-shot'][task] ?? ''),
        metric,
        fmt(v),
        se === undefined || se === 'N/A' ? 'N/A' : `± ${fmt(se)}`,
      ]);
    }
  }
  const w = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)));
  const line = (r: string[]) => `|${r.map((c, i) => ` ${c.padEnd(w[i])} `).join('|')}|`;
  return [line(rows[0]), `|${w.map((n) => '-'.repeat(n + 2)).join('|')}|`, ...rows.slice(1).map(line)].join(
    '\n',
  );
}
