/** Reading a whole text file given by the user (data sets, benchmark files), gzip included. */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';
import { InputError } from '../errors.js';

/**
 * Reads a whole text file as UTF-8, gunzipping a `.gz` one (HumanEval ships `.jsonl.gz`). `what`
 * names the file in the errors: not found, not a regular file, unreadable, or a corrupt gzip.
 */
export function readText(path: string, what = 'file'): string {
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
  return bytes.toString('utf8');
}
