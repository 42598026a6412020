/**
 * Running the nuggets CLI from tests. Starting tsx costs about a second per process on a busy
 * machine, so cliBatch runs many invocations in ONE child process that calls the CLI's main(argv)
 * in turn and captures each one's stdout, stderr and exit code (the code path of bin/nuggets.js
 * minus process start-up); cliProcess is a real process, for what the shell sees.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const MAIN = pathToFileURL(join(ROOT, 'src', 'cli', 'main.ts')).href;
const RUN = join(ROOT, 'src', 'cli', 'run.ts');

export interface CliResult {
  code: number;
  out: string;
  err: string;
}

/** Runs each argv through main() in one child process, in order; returns stdout/stderr/code of each. */
export function cliBatch(runs: string[][]): CliResult[] {
  const script = `
    import { main } from ${JSON.stringify(MAIN)};
    const runs = JSON.parse(process.env.NUGGETS_CLI_RUNS);
    const write = process.stdout.write.bind(process.stdout);
    const results = [];
    for (const argv of runs) {
      let out = '', err = '';
      process.stdout.write = (c) => { out += String(c); return true; };
      process.stderr.write = (c) => { err += String(c); return true; };
      const code = await main(['node', 'nuggets', ...argv]);
      results.push({ code, out, err });
    }
    write(JSON.stringify(results));
  `;
  const stdout = execFileSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
    cwd: ROOT,
    env: { ...process.env, NUGGETS_CLI_RUNS: JSON.stringify(runs) },
    encoding: 'utf8',
    maxBuffer: 64 << 20,
  });
  return JSON.parse(stdout) as CliResult[];
}

/** A real `nuggets` process (tsx on src/cli/run.ts). */
export function cliProcess(args: string[]): CliResult {
  const r = spawnSync(process.execPath, ['--import', 'tsx', RUN, ...args], { cwd: ROOT, encoding: 'utf8' });
  return { code: r.status ?? -1, out: r.stdout, err: r.stderr };
}
