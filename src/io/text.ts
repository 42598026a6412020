/** Reading a whole text file given by the user (data sets, benchmark files), gzip included. */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';
import { InputError } from '../errors.js';

/**
 * Reads a whole text file as UTF-8, gunzipping a `.gz` one (HumanEval ships `.jsonl.gz`). `what`
 * names the file in the errors: not found, not a regular file, unreadable, or a corrupt gzip. With
 * `warn`, invalid UTF-8 gets one warning naming its first line.
 */
export function readText(path: string, what = 'file', warn?: (line: string) => void): string {
  if (!existsSync(path)) throw new InputError(path, `${what} not found`);
  if (!statSync(path).isFile()) throw new InputError(path, `${what} is not a regular file`);
  let bytes: Buffer;
  try {
    bytes = readFileSync(path);
  } catch (e) {
    throw new InputError(path, `cannot read ${what} (${(e as NodeJS.ErrnoException).code ?? String(e)})`);
  }
  if (path.endsWith('.gz')) {
    try {
      bytes = gunzipSync(bytes);
    } catch (e) {
      throw new InputError(path, `not a valid gzip file (${e instanceof Error ? e.message : String(e)})`);
    }
  }
  if (warn) {
    const bad = firstInvalidUtf8Line(bytes);
    if (bad !== null)
      warn(
        `warning: ${path}:${bad}: invalid UTF-8 (here and maybe later lines); such bytes are read as U+FFFD`,
      );
  }
  return bytes.toString('utf8');
}

/**
 * The 1-based line of the first invalid UTF-8 sequence in `bytes`, or null when it is all valid.
 * Decoding replaces invalid bytes with U+FFFD silently; this finds them so the user hears of it once.
 */
export function firstInvalidUtf8Line(bytes: Uint8Array): number | null {
  try {
    new TextDecoder('utf-8', { fatal: true }).decode(bytes);
    return null;
  } catch {
    /* find the line below */
  }
  const fatal = new TextDecoder('utf-8', { fatal: true });
  let start = 0;
  let line = 1;
  while (start <= bytes.length) {
    let end = bytes.indexOf(0x0a, start);
    if (end < 0) end = bytes.length;
    try {
      fatal.decode(bytes.subarray(start, end));
    } catch {
      return line;
    }
    start = end + 1;
    line++;
  }
  return null;
}
