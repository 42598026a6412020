/**
 * `nuggets report <run-dir> -o report.html`: one self-contained HTML file with the run's plots
 * (sensitivity heat map, selected layers, windows, loss curves, results with error bars) and the
 * paper's table beside ours (src/report/).
 */
import type { Command } from 'commander';
import { report } from '../api/steps.js';

export function makeReport(runDir: string, out?: string): { path: string; plots: number } {
  return report({ run: runDir, out });
}

export function registerReport(program: Command): void {
  program
    .command('report')
    .description('write one self-contained HTML report (plots and tables) of a "nuggets run" folder')
    .argument('<run-dir>', 'run folder written by "nuggets run"')
    .option('-o, --out <file>', 'HTML file to write (default: <run-dir>/report.html)')
    .action((runDir: string, o: { out?: string }) => {
      const r = makeReport(runDir, o.out);
      process.stdout.write(`report: ${r.path} (${r.plots} plots)\n`);
    });
}
