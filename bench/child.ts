/**
 * Bench programs in child processes: each program (a nuggets child or a PyTorch script) runs in its
 * own process, so the peak RSS it reports (getrusage maxrss) is its alone, and it prints its result
 * as the last line of stdout, one JSON object. Both sides get the same OpenMP thread count.
 */
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

/** The Python that has PyTorch on this machine (Debian's python3-torch). */
export const PYTHON = '/usr/bin/python3';

/** Runs `cmd args` with OMP_NUM_THREADS = threads and parses the last stdout line as JSON; throws with stderr's tail on failure. */
export function runChild<T>(cmd: string, args: string[], threads: number): T {
  const r = spawnSync(cmd, args, {
    encoding: 'utf8',
    maxBuffer: 1 << 20,
    env: { ...process.env, OMP_NUM_THREADS: String(threads) },
  });
  if (r.status !== 0)
    throw new Error(
      `${cmd} ${args[args.length - 2] ?? ''} failed (status ${r.status}): ${r.stderr.slice(-2000)}`,
    );
  return JSON.parse(r.stdout.trim().split('\n').pop() ?? '') as T;
}

/** Runs this bench module itself as the nuggets child: `node --import tsx <module> child '<spec json>'`. */
export function runSelfChild<T>(moduleUrl: string, spec: { threads: number }): T {
  return runChild<T>(
    process.execPath,
    ['--import', 'tsx', fileURLToPath(moduleUrl), 'child', JSON.stringify(spec)],
    spec.threads,
  );
}

/** The spec JSON when this process was started as `moduleUrl`'s child, else null. */
export function childSpec<S>(moduleUrl: string): S | null {
  const isMain = process.argv[1] !== undefined && fileURLToPath(moduleUrl) === process.argv[1];
  return isMain && process.argv[2] === 'child' ? (JSON.parse(process.argv[3]) as S) : null;
}

/** Why the PyTorch baseline cannot run (no python3, or torch not importable), or null when it can. */
export function torchUnavailable(): string | null {
  const r = spawnSync(PYTHON, ['-c', 'import torch'], { encoding: 'utf8' });
  if (r.error) return `${PYTHON} not found`;
  return r.status === 0 ? null : `torch not importable by ${PYTHON}: ${r.stderr.trim().split('\n').pop()}`;
}

/** This process's peak resident set size so far, in KiB (getrusage maxrss). */
export function maxRssKb(): number {
  return process.resourceUsage().maxRSS;
}
