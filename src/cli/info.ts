/** `nuggets info`: which backend runs, why, and what the machine offers. */
import type { Command } from 'commander';
import { cpus, totalmem } from 'node:os';
import { loadNative } from '../engine/native.js';
import { kernels } from '../engine/backend.js';
import { version } from './version.js';

export function registerInfo(program: Command): void {
  program
    .command('info')
    .description('show the compute backend, the native addon status and the machine')
    .option('--json', 'print JSON')
    .action((opts: { json?: boolean }) => {
      const native = loadNative();
      const info = {
        nuggets: version(),
        node: process.version,
        backend: kernels().name,
        nativeAddon: native.kernels ? 'loaded' : `unavailable: ${native.error}`,
        cpus: cpus().length,
        cpuModel: cpus()[0]?.model ?? 'unknown',
        memoryGiB: Math.round((totalmem() / 2 ** 30) * 10) / 10,
      };
      if (opts.json) console.log(JSON.stringify(info, null, 2));
      else for (const [k, v] of Object.entries(info)) console.log(`${k.padEnd(12)} ${v}`);
    });
}
