/**
 * `npm run bench [-- --only <substr>]`: runs the bench modules (all, or those whose name contains
 * substr), prints a table, and merges the figures into bench/results.json by name.
 */
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Recorder, formatTable, mergeResults, machineDescription, type BenchModule } from './lib.js';

/** Bench modules in run order; a new module is appended here. */
const MODULES: Array<[string, () => Promise<BenchModule>]> = [
  ['gemm', () => import('./gemm.js')],
  ['window', () => import('./window.js')],
  ['svd', () => import('./svd.js')],
  ['sense', () => import('./sense.js')],
  ['sensemem', () => import('./sensemem.js')],
  ['eval', () => import('./eval.js')],
  ['model', () => import('./model.js')],
  ['train', () => import('./train.js')],
  ['scale', () => import('./scale.js')],
  ['halfgemm', () => import('./halfgemm.js')],
  ['halfload', () => import('./halfload.js')],
  ['gguf', () => import('./gguf.js')],
];

function parseOnly(argv: string[]): string | null {
  const i = argv.indexOf('--only');
  if (i < 0) return null;
  const v = argv[i + 1];
  if (!v || v.startsWith('--')) {
    console.error('bench: --only needs a substring of a module name: ' + MODULES.map(([n]) => n).join(', '));
    process.exit(2);
  }
  return v;
}

async function main(): Promise<void> {
  const only = parseOnly(process.argv.slice(2));
  const chosen = MODULES.filter(([name]) => only === null || name.includes(only));
  if (chosen.length === 0) {
    console.error(`bench: no module matches --only ${only}; modules: ${MODULES.map(([n]) => n).join(', ')}`);
    process.exit(2);
  }
  console.log(`bench on ${machineDescription()}`);
  const rec = new Recorder();
  let failed = 0;
  for (const [name, load] of chosen) {
    console.log(`\n[${name}]`);
    try {
      await (await load()).run(rec);
    } catch (e) {
      failed++;
      console.error(`  ${name} failed: ${(e as Error).stack ?? e}`);
    }
  }
  const path = join(dirname(fileURLToPath(import.meta.url)), 'results.json');
  if (rec.entries.length > 0) mergeResults(path, rec.entries);
  console.log('\n' + formatTable(rec.entries));
  console.log(`\n${rec.entries.length} figures merged into ${path}`);
  if (failed) process.exitCode = 1;
}

await main();
