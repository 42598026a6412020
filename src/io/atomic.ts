/**
 * Atomic file output: write to a temporary name in the same folder, fsync, then rename, so an
 * interrupted run never leaves a half-written file under the real name.
 */
import { closeSync, fsyncSync, openSync, renameSync, rmSync, writeSync, mkdirSync } from 'node:fs';
import { dirname, basename, join } from 'node:path';

export function tempNameFor(path: string): string {
  return join(
    dirname(path),
    `.${basename(path)}.tmp-${process.pid}-${Math.random().toString(36).slice(2, 8)}`,
  );
}

/** Writes chunks (strings or byte views) to `path` atomically. */
export function writeFileAtomic(path: string, chunks: Iterable<string | ArrayBufferView>): void {
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
