/**
 * Running model-written Python programs (HumanEval). THIS IS NOT A SECURITY SANDBOX. It keeps honest
 * mistakes (infinite loops, runaway allocation, stray files, accidental network calls) from hurting
 * the machine; it does not contain deliberately malicious code, which can still read and write
 * whatever the user running nuggets can. Run untrusted models' code inside a VM or container.
 *
 * What each program gets:
 * - its own /usr/bin/python3 process, started in isolated mode (-I: no user site, no PYTHON* env,
 *   script folder not on sys.path) with a minimal environment, in a fresh temporary folder that is
 *   its working directory, HOME and TMPDIR, deleted afterwards;
 * - its own process group (session), killed as a whole with SIGKILL when the wall-clock timeout
 *   expires, and again after a normal exit, so children it forked do not outlive it;
 * - resource limits set by a small Python preamble before the program runs (setrlimit): address
 *   space (RLIMIT_AS), CPU seconds (RLIMIT_CPU), size of files written (RLIMIT_FSIZE), no core files;
 *   if a limit cannot be set the run fails rather than running unlimited;
 * - no network when `unshare -rn` works on this system (a new user + network namespace with only a
 *   down loopback device); otherwise it runs with the network and the result says so;
 * - stdout and stderr captured up to a cap each (the rest is read and dropped).
 * A program passes when it exits with status 0 before the timeout.
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface ExecLimits {
  /** Wall-clock limit; the process group is killed when it expires. */
  timeoutMs: number;
  /** RLIMIT_AS in bytes. */
  memoryBytes: number;
  /** RLIMIT_CPU in seconds. */
  cpuSeconds: number;
  /** RLIMIT_FSIZE in bytes. */
  fileSizeBytes: number;
  /** Bytes kept of stdout and of stderr each. */
  maxOutputBytes: number;
}

export const DEFAULT_EXEC_LIMITS: ExecLimits = {
  timeoutMs: 10_000,
  memoryBytes: 1024 * 1024 * 1024,
  cpuSeconds: 10,
  fileSizeBytes: 16 * 1024 * 1024,
  maxOutputBytes: 64 * 1024,
};

export interface ExecOptions extends Partial<ExecLimits> {
  pythonPath?: string;
  /** Try to cut the network off with `unshare -rn` (default true). */
  isolateNetwork?: boolean;
}

export type ExecStatus = 'passed' | 'failed' | 'timeout';

export interface ExecResult {
  status: ExecStatus;
  exitCode: number | null;
  signal: string | null;
  stdout: string;
  stderr: string;
  /** True when stdout or stderr went past the cap. */
  truncated: boolean;
  wallMs: number;
  /** 'unshare' when the program ran without network, 'none' when it could not be cut off. */
  network: 'unshare' | 'none';
}

let unshareWorks: boolean | null = null;

/** Whether `unshare -rn` can create a user + network namespace here (checked once). */
export function networkIsolationAvailable(): boolean {
  if (unshareWorks === null) {
    const r = spawnSync('unshare', ['-rn', '/bin/true'], { stdio: 'ignore', timeout: 5000 });
    unshareWorks = r.status === 0;
  }
  return unshareWorks;
}

/** The preamble that applies the limits and then runs program.py as __main__. */
function runnerSource(l: ExecLimits): string {
  const mem = Math.floor(l.memoryBytes);
  const cpu = Math.max(1, Math.ceil(l.cpuSeconds));
  const fsize = Math.floor(l.fileSizeBytes);
  return `import resource, sys
def _limit(which, soft, hard, name):
    cur_hard = resource.getrlimit(which)[1]
    if cur_hard != resource.RLIM_INFINITY:
        hard = min(hard, cur_hard)
        soft = min(soft, hard)
    try:
        resource.setrlimit(which, (soft, hard))
    except (ValueError, OSError) as e:
        sys.stderr.write("nuggets exec: cannot set %s: %s\\n" % (name, e))
        sys.exit(97)
_limit(resource.RLIMIT_AS, ${mem}, ${mem}, "RLIMIT_AS")
_limit(resource.RLIMIT_CPU, ${cpu}, ${cpu} + 1, "RLIMIT_CPU")
_limit(resource.RLIMIT_FSIZE, ${fsize}, ${fsize}, "RLIMIT_FSIZE")
_limit(resource.RLIMIT_CORE, 0, 0, "RLIMIT_CORE")
del _limit
with open("program.py", encoding="utf-8") as _f:
    _src = _f.read()
_globals = {"__name__": "__main__", "__file__": "program.py", "__builtins__": __builtins__}
del _f
exec(compile(_src, "program.py", "exec"), _globals)
`;
}

class CappedBuffer {
  private chunks: Buffer[] = [];
  private size = 0;
  truncated = false;
  constructor(private readonly cap: number) {}
  push(b: Buffer): void {
    const room = this.cap - this.size;
    if (room <= 0) {
      this.truncated = this.truncated || b.length > 0;
      return;
    }
    const part = b.length <= room ? b : b.subarray(0, room);
    if (part.length < b.length) this.truncated = true;
    this.chunks.push(part);
    this.size += part.length;
  }
  text(): string {
    return Buffer.concat(this.chunks).toString('utf8');
  }
}

function killGroup(pid: number | undefined): void {
  if (pid === undefined) return;
  try {
    process.kill(-pid, 'SIGKILL');
  } catch {
    /* the group is already gone */
  }
}

/** Runs one Python program under the limits above. */
export async function runPythonProgram(program: string, opts: ExecOptions = {}): Promise<ExecResult> {
  const limits: ExecLimits = {
    timeoutMs: opts.timeoutMs ?? DEFAULT_EXEC_LIMITS.timeoutMs,
    memoryBytes: opts.memoryBytes ?? DEFAULT_EXEC_LIMITS.memoryBytes,
    cpuSeconds:
      opts.cpuSeconds ?? Math.max(1, Math.ceil((opts.timeoutMs ?? DEFAULT_EXEC_LIMITS.timeoutMs) / 1000)),
    fileSizeBytes: opts.fileSizeBytes ?? DEFAULT_EXEC_LIMITS.fileSizeBytes,
    maxOutputBytes: opts.maxOutputBytes ?? DEFAULT_EXEC_LIMITS.maxOutputBytes,
  };
  const python = opts.pythonPath ?? '/usr/bin/python3';
  const dir = mkdtempSync(join(tmpdir(), 'nuggets-exec-'));
  try {
    writeFileSync(join(dir, 'program.py'), program);
    writeFileSync(join(dir, 'nuggets_runner.py'), runnerSource(limits));
    const isolate = (opts.isolateNetwork ?? true) && networkIsolationAvailable();
    const [cmd, args] = isolate
      ? ['unshare', ['-rn', '--', python, '-I', '-B', 'nuggets_runner.py']]
      : [python, ['-I', '-B', 'nuggets_runner.py']];
    const started = Date.now();
    const out = new CappedBuffer(limits.maxOutputBytes);
    const err = new CappedBuffer(limits.maxOutputBytes);
    return await new Promise<ExecResult>((resolve, reject) => {
      const child = spawn(cmd, args as string[], {
        cwd: dir,
        detached: true, // own session and process group, so the whole group can be killed
        stdio: ['ignore', 'pipe', 'pipe'],
        env: { PATH: '/usr/bin:/bin', HOME: dir, TMPDIR: dir, LANG: 'C.UTF-8', LC_ALL: 'C.UTF-8' },
      });
      let timedOut = false;
      const timer = setTimeout(() => {
        timedOut = true;
        killGroup(child.pid);
      }, limits.timeoutMs);
      child.stdout!.on('data', (b: Buffer) => out.push(b));
      child.stderr!.on('data', (b: Buffer) => err.push(b));
      child.on('error', (e) => {
        clearTimeout(timer);
        reject(new Error(`cannot start ${cmd}: ${e.message}`));
      });
      // 'exit' comes when python itself ends; 'close' only once every holder of its pipes is gone,
      // which a forked child could delay: kill the group at 'exit', resolve at 'close'.
      let exit: { code: number | null; signal: NodeJS.Signals | null } | null = null;
      child.on('exit', (code, signal) => {
        clearTimeout(timer);
        exit = { code, signal };
        killGroup(child.pid);
      });
      child.on('close', (code, signal) => {
        clearTimeout(timer);
        killGroup(child.pid);
        const e = exit ?? { code, signal };
        resolve({
          status: timedOut ? 'timeout' : e.code === 0 ? 'passed' : 'failed',
          exitCode: e.code,
          signal: e.signal ?? null,
          stdout: out.text(),
          stderr: err.text(),
          truncated: out.truncated || err.truncated,
          wallMs: Date.now() - started,
          network: isolate ? 'unshare' : 'none',
        });
      });
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * Runs a trivial program under the same settings and throws when it does not pass, so that a missing
 * interpreter or limits that cannot be applied fail loudly instead of marking every sample failed.
 */
export async function checkExecutionWorks(opts: ExecOptions = {}): Promise<void> {
  const r = await runPythonProgram('print("nuggets-exec-ok")\n', {
    ...opts,
    timeoutMs: Math.max(opts.timeoutMs ?? 0, 30_000),
  });
  if (r.status !== 'passed' || r.stdout.trim() !== 'nuggets-exec-ok') {
    throw new Error(
      `cannot execute Python programs with ${opts.pythonPath ?? '/usr/bin/python3'} (status ${r.status}, exit ${r.exitCode}, signal ${r.signal}): ${r.stderr.slice(-500)}`,
    );
  }
}

/** Maps `fn` over `items` with at most `concurrency` calls in flight; results in input order. */
export async function mapPool<T, R>(
  items: readonly T[],
  concurrency: number,
  fn: (item: T, index: number) => Promise<R>,
  onDone?: (done: number) => void,
): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  let done = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i], i);
      onDone?.(++done);
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(concurrency, items.length)) }, worker));
  return out;
}
