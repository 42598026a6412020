/**
 * Running model-written Python programs (HumanEval) inside a sandbox made for the job: bubblewrap.
 * docs/security.md says what it isolates and what it does not.
 *
 * What each program gets (the default, `sandbox: true`):
 * - `bwrap --unshare-all --die-with-parent`: new user, PID, network, IPC, UTS and cgroup namespaces.
 *   The network namespace has only a down loopback device (no TCP to 127.0.0.1, no abstract Unix
 *   sockets); the PID namespace hides every other process (nothing to read, signal or kill) and, as
 *   its init dies with the program's end or with bwrap, takes every child the program started with it,
 *   detached or not;
 * - a filesystem of its own: /usr (+ the /bin, /lib symlinks) bound read-only, a fresh /proc and
 *   /dev, and a size-capped private tmpfs /work as working folder, HOME and TMPDIR; no home, no /etc,
 *   no /tmp, no host files, no filesystem sockets; it runs as uid 65534 with a clean environment;
 * - the program text on stdin (nothing is written to the host disk);
 * - rlimits set by a small Python preamble before the program runs, inherited by its children:
 *   address space, CPU seconds, file size, processes, open files, no core files; a limit that cannot
 *   be set fails the run instead of running unlimited;
 * - a hard wall-clock deadline: when it expires the sandbox is killed and the result returned at
 *   once, whether or not something still holds its output pipes;
 * - stdout and stderr captured up to a cap each (the rest is read and dropped).
 * When bubblewrap cannot run here, execution is refused (SandboxUnavailableError) unless the caller
 * passes `sandbox: false` (CLI `--no-sandbox`): then the program runs as a plain process of the user
 * in a temporary folder, network cut with `unshare -rn` where that works, same limits and deadline.
 * A program passes when it exits with status 0 before the deadline.
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { constants, tmpdir } from 'node:os';
import { join } from 'node:path';
import { InputError } from '../errors.js';

export interface ExecLimits {
  /** Wall-clock deadline; the sandbox (or process group) is killed and the result returned when it expires. */
  timeoutMs: number;
  /** RLIMIT_AS in bytes. */
  memoryBytes: number;
  /** RLIMIT_CPU in seconds. */
  cpuSeconds: number;
  /** RLIMIT_FSIZE in bytes; also the size of the sandbox's private tmpfs working folder (x4). */
  fileSizeBytes: number;
  /** RLIMIT_NPROC (processes of the user; not enforced for root, where the PID namespace still contains them). */
  processes: number;
  /** Bytes kept of stdout and of stderr each. */
  maxOutputBytes: number;
}

export const DEFAULT_EXEC_LIMITS: ExecLimits = {
  timeoutMs: 10_000,
  memoryBytes: 1024 * 1024 * 1024,
  cpuSeconds: 10,
  fileSizeBytes: 16 * 1024 * 1024,
  processes: 64,
  maxOutputBytes: 64 * 1024,
};

export interface ExecOptions extends Partial<ExecLimits> {
  pythonPath?: string;
  /**
   * Run inside bubblewrap (default true). false is the explicit, unsafe opt-out: a plain process of
   * the user, which model-written code can use to read, change or delete the user's files.
   */
  sandbox?: boolean;
  /** Without the sandbox only: try to cut the network off with `unshare -rn` (default true). */
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
  /** 'bwrap' when it ran in the sandbox, 'none' with the opt-out. */
  sandbox: 'bwrap' | 'none';
  /** 'bwrap' or 'unshare' when the program ran without network, 'none' when it could not be cut off. */
  network: 'bwrap' | 'unshare' | 'none';
}

/** No sandbox here and no explicit opt-out: refuse to run model-written code. */
export class SandboxUnavailableError extends InputError {
  constructor(reason: string) {
    super(
      'code execution',
      `no sandbox for model-written code: bubblewrap does not work here (${reason}); install bubblewrap (apt-get install bubblewrap) and allow user namespaces, or pass --no-sandbox to run the code unconfined as your user (unsafe)`,
    );
    this.name = 'SandboxUnavailableError';
  }
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

/** Where bwrap is looked up: the user's PATH (nothing else of the environment goes to the sandbox). */
const hostPath = (): string => process.env.PATH ?? '/usr/bin:/bin';

const BWRAP_PROBE = ['--unshare-all', '--die-with-parent', '--ro-bind', '/', '/', 'true'];
let bwrapProblem: string | null | undefined;

/** Why bubblewrap cannot run here, or null when it can (checked once). */
export function sandboxProblem(): string | null {
  if (bwrapProblem === undefined) {
    const r = spawnSync('bwrap', BWRAP_PROBE, {
      encoding: 'utf8',
      timeout: 10_000,
      env: { PATH: hostPath() },
    });
    if (r.error)
      bwrapProblem =
        (r.error as NodeJS.ErrnoException).code === 'ENOENT' ? 'bwrap is not installed' : r.error.message;
    else if (r.status !== 0) bwrapProblem = (r.stderr || `exit ${r.status}`).trim().split('\n')[0];
    else bwrapProblem = null;
  }
  return bwrapProblem;
}

export function sandboxAvailable(): boolean {
  return sandboxProblem() === null;
}

/** The sandbox's working folder (a private tmpfs). */
const WORK = '/work';

/** bwrap arguments: namespaces, read-only system, private tmpfs, clean environment. */
function bwrapArgs(l: ExecLimits): string[] {
  const tmpfsBytes = Math.max(4 * l.fileSizeBytes, 1 << 20);
  return [
    '--unshare-all',
    '--die-with-parent',
    '--new-session',
    '--uid',
    '65534',
    '--gid',
    '65534',
    '--hostname',
    'sandbox',
    '--clearenv',
    '--setenv',
    'PATH',
    '/usr/bin:/bin',
    '--setenv',
    'HOME',
    WORK,
    '--setenv',
    'TMPDIR',
    WORK,
    '--setenv',
    'LANG',
    'C.UTF-8',
    '--setenv',
    'LC_ALL',
    'C.UTF-8',
    '--ro-bind',
    '/usr',
    '/usr',
    '--symlink',
    'usr/bin',
    '/bin',
    '--symlink',
    'usr/lib',
    '/lib',
    '--symlink',
    'usr/lib64',
    '/lib64',
    '--symlink',
    'usr/sbin',
    '/sbin',
    '--proc',
    '/proc',
    '--dev',
    '/dev',
    '--size',
    String(tmpfsBytes),
    '--tmpfs',
    WORK,
    '--chdir',
    WORK,
  ];
}

/** The preamble (python -c) that applies the limits and then runs the program read from stdin as __main__. */
function runnerSource(l: ExecLimits): string {
  const mem = Math.floor(l.memoryBytes);
  const cpu = Math.max(1, Math.ceil(l.cpuSeconds));
  const fsize = Math.floor(l.fileSizeBytes);
  const nproc = Math.max(1, Math.floor(l.processes));
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
_limit(resource.RLIMIT_NPROC, ${nproc}, ${nproc}, "RLIMIT_NPROC")
_limit(resource.RLIMIT_NOFILE, 256, 256, "RLIMIT_NOFILE")
_limit(resource.RLIMIT_CORE, 0, 0, "RLIMIT_CORE")
del _limit
_src = sys.stdin.read()
sys.stdin.close()
_globals = {"__name__": "__main__", "__file__": "program.py", "__builtins__": __builtins__}
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

type ExitStatus = { code: number | null; signal: NodeJS.Signals | null };

/** bwrap reports a program killed by signal N as exit status 128 + N: give back the signal. */
function unwrapBwrapStatus(e: ExitStatus | null): ExitStatus {
  if (e === null) return { code: null, signal: 'SIGKILL' };
  if (e.code !== null && e.code > 128) {
    const name = Object.entries(constants.signals).find(([, n]) => n === e.code! - 128)?.[0];
    if (name !== undefined) return { code: null, signal: name as NodeJS.Signals };
  }
  return e;
}

/** Output that may still arrive after the program's end is awaited this long at most. */
const DRAIN_MS = 250;

/** Runs one Python program under the limits above. */
export async function runPythonProgram(program: string, opts: ExecOptions = {}): Promise<ExecResult> {
  const timeoutMs = opts.timeoutMs ?? DEFAULT_EXEC_LIMITS.timeoutMs;
  const limits: ExecLimits = {
    timeoutMs,
    memoryBytes: opts.memoryBytes ?? DEFAULT_EXEC_LIMITS.memoryBytes,
    cpuSeconds: opts.cpuSeconds ?? Math.max(1, Math.ceil(timeoutMs / 1000)),
    fileSizeBytes: opts.fileSizeBytes ?? DEFAULT_EXEC_LIMITS.fileSizeBytes,
    processes: opts.processes ?? DEFAULT_EXEC_LIMITS.processes,
    maxOutputBytes: opts.maxOutputBytes ?? DEFAULT_EXEC_LIMITS.maxOutputBytes,
  };
  const python = opts.pythonPath ?? '/usr/bin/python3';
  const sandboxed = opts.sandbox ?? true;
  if (sandboxed) {
    const problem = sandboxProblem();
    if (problem !== null) throw new SandboxUnavailableError(problem);
  }
  const pyArgs = [python, '-I', '-B', '-c', runnerSource(limits)];
  // the opt-out path works in a temporary folder of the host; the sandbox has its own tmpfs
  const dir = sandboxed ? null : mkdtempSync(join(tmpdir(), 'nuggets-exec-'));
  const isolateNet = !sandboxed && (opts.isolateNetwork ?? true) && networkIsolationAvailable();
  const [cmd, args] = sandboxed
    ? ['bwrap', [...bwrapArgs(limits), '--', ...pyArgs]]
    : isolateNet
      ? ['unshare', ['-rn', '--', ...pyArgs]]
      : [python, pyArgs.slice(1)];
  const env: Record<string, string> = sandboxed
    ? { PATH: hostPath() }
    : { PATH: '/usr/bin:/bin', HOME: dir!, TMPDIR: dir!, LANG: 'C.UTF-8', LC_ALL: 'C.UTF-8' };
  const started = Date.now();
  const out = new CappedBuffer(limits.maxOutputBytes);
  const err = new CappedBuffer(limits.maxOutputBytes);
  try {
    return await new Promise<ExecResult>((resolve, reject) => {
      const child = spawn(cmd, args as string[], {
        cwd: dir ?? '/',
        detached: true, // own session and process group, so the whole group can be killed
        stdio: ['pipe', 'pipe', 'pipe'],
        env,
      });
      let settled = false;
      let timedOut = false;
      let exit: { code: number | null; signal: NodeJS.Signals | null } | null = null;
      let drain: NodeJS.Timeout | undefined;
      const finish = () => {
        if (settled) return;
        settled = true;
        clearTimeout(deadline);
        clearTimeout(drain);
        killGroup(child.pid);
        // whatever still holds the pipes (an escaped child without the sandbox) is not waited for
        child.stdout!.destroy();
        child.stderr!.destroy();
        const e = sandboxed
          ? unwrapBwrapStatus(exit)
          : (exit ?? { code: null, signal: 'SIGKILL' as NodeJS.Signals });
        resolve({
          status: timedOut ? 'timeout' : e.code === 0 ? 'passed' : 'failed',
          exitCode: timedOut ? null : e.code,
          signal: timedOut ? 'SIGKILL' : (e.signal ?? null),
          stdout: out.text(),
          stderr: err.text(),
          truncated: out.truncated || err.truncated,
          wallMs: Date.now() - started,
          sandbox: sandboxed ? 'bwrap' : 'none',
          network: sandboxed ? 'bwrap' : isolateNet ? 'unshare' : 'none',
        });
      };
      // the hard deadline: kill and answer now, without waiting for 'exit' or 'close'
      const deadline = setTimeout(() => {
        timedOut = true;
        finish();
      }, limits.timeoutMs);
      child.stdout!.on('data', (b: Buffer) => out.push(b));
      child.stderr!.on('data', (b: Buffer) => err.push(b));
      child.stdin!.on('error', () => {
        /* the program ended before reading all of itself: its exit status tells */
      });
      child.stdin!.end(program);
      child.on('error', (e) => {
        if (settled) return;
        settled = true;
        clearTimeout(deadline);
        reject(new Error(`cannot start ${cmd}: ${e.message}`));
      });
      // 'exit' comes when the program (or bwrap, whose end takes the whole sandbox) ends; 'close' once
      // every holder of the pipes is gone: kill the group at 'exit', give the output a moment, answer.
      child.on('exit', (code, signal) => {
        exit = { code, signal };
        killGroup(child.pid);
        drain = setTimeout(finish, DRAIN_MS);
      });
      child.on('close', (code, signal) => {
        exit ??= { code, signal };
        finish();
      });
    });
  } finally {
    if (dir !== null) rmSync(dir, { recursive: true, force: true });
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
