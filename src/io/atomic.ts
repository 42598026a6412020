/**
 * Atomic file output: write to a temporary name in the same folder, fsync, then rename, so an
 * interrupted run never leaves a half-written file under the real name.
 */
import { closeSync, fsyncSync, openSync, renameSync, rmSync, writeSync, mkdirSync } from 'node:fs';
import { dirname, basename, join } from 'node:path';
import { InputError } from '../errors.js';

export function tempNameFor(path: string): string {
  return join(
    dirname(path),
    `.${basename(path)}.tmp-${process.pid}-${Math.random().toString(36).slice(2, 8)}`,
  );
}

/** System errors that are the machine's state, not a bug: reported in one line naming the file. */
const SYSTEM_WRITE_ERRORS: Record<string, string> = {
  ENOSPC: 'no space left on the device',
  EDQUOT: 'disk quota exceeded',
  EROFS: 'read-only file system',
  EACCES: 'permission denied',
  EPERM: 'operation not permitted',
  EMFILE: 'too many open files',
  ENFILE: 'too many open files in the system',
  EIO: 'input/output error',
  EFBIG: 'file too large for this file system',
  ENOTDIR: 'a part of the path is a file, not a folder',
  EISDIR: 'is a folder',
  EEXIST: 'a file stands where a folder is needed',
};

/** The one-line description of a system error code, or null for codes that are not one of those. */
export function systemErrorText(e: unknown): string | null {
  const code = (e as NodeJS.ErrnoException | null)?.code;
  return code !== undefined && code in SYSTEM_WRITE_ERRORS ? `${SYSTEM_WRITE_ERRORS[code]} (${code})` : null;
}

/** Writes chunks (strings or byte views) to `path` atomically. */
export function writeFileAtomic(path: string, chunks: Iterable<string | ArrayBufferView>): void {
  try {
    writeFileAtomicRaw(path, chunks);
  } catch (e) {
    const text = systemErrorText(e);
    if (text !== null) throw new InputError(path, `cannot write: ${text}`);
    throw e;
  }
}

function writeFileAtomicRaw(path: string, chunks: Iterable<string | ArrayBufferView>): void {
  mkdirSync(dirname(path), { recursive: true });
  const tmp = tempNameFor(path);
  const fd = openSync(tmp, 'w');
  try {
    for (const c of chunks) {
      if (typeof c === 'string') writeSync(fd, c);
      else writeSync(fd, new Uint8Array(c.buffer, c.byteOffset, c.byteLength));
    }
    fsyncSync(fd);
    closeSync(fd);
    renameSync(tmp, path);
  } catch (e) {
    try {
      closeSync(fd);
    } catch {
      /* already closed */
    }
    rmSync(tmp, { force: true });
    throw e;
  }
}

export function writeJsonAtomic(path: string, value: unknown): void {
  writeFileAtomic(path, [JSON.stringify(value, null, 2) + '\n']);
}
