/**
 * One `nuggets run` per run folder: an exclusive lock file, created atomically (O_EXCL) and holding
 * the owner's PID. Two runs on one folder would rewrite plan.json under each other's jobs and mix
 * their configurations. A lock left by a process that no longer runs (killed with -9, machine
 * rebooted) is taken over, with a note.
 */
import { closeSync, openSync, readFileSync, rmSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { InputError } from '../errors.js';

export const LOCK_FILE = 'run.lock';

/** Whether a process with this PID is running (a zombie is not). */
export function processRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (e) {
    // EPERM: it exists but belongs to another user
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch {
    return true; // no /proc: kill(0) is the best answer there is
  }
}

function tryCreate(path: string): boolean {
  let fd: number;
  try {
    fd = openSync(path, 'wx');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw e;
  }
  try {
    writeSync(fd, `${process.pid}\n`);
  } finally {
    closeSync(fd);
  }
  return true;
}

function ownerOf(path: string): number | null {
  try {
    const pid = Number(readFileSync(path, 'utf8').trim().split('\n')[0]);
    return Number.isInteger(pid) && pid > 0 ? pid : null;
  } catch {
    return null;
  }
}

export interface RunLock {
  path: string;
  release(): void;
}

/**
 * Takes the lock of run folder `dir` or throws an InputError naming the process that holds it.
 * `note` hears about a stale lock taken over.
 */
export function lockRunFolder(dir: string, note: (line: string) => void): RunLock {
  const path = join(dir, LOCK_FILE);
  if (!tryCreate(path)) {
    const owner = ownerOf(path);
    if (owner !== null && processRunning(owner)) {
      throw new InputError(
        dir,
        `another nuggets run (PID ${owner}) is using this folder; wait for it to end or stop it (a second run would mix their configurations)`,
      );
    }
    // Stale. Two runs that both see it stale: only one of them creates the new lock after the removal.
    note(
      `note: taking over the stale lock ${path} of ${owner === null ? 'an unreadable owner' : `PID ${owner}, which no longer runs`}`,
    );
    rmSync(path, { force: true });
    if (!tryCreate(path)) {
      throw new InputError(
        dir,
        `another nuggets run (PID ${ownerOf(path) ?? '?'}) took this folder just now`,
      );
    }
  }
  return {
    path,
    release() {
      if (ownerOf(path) === process.pid) rmSync(path, { force: true });
    },
  };
}
