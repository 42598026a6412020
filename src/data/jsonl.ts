/**
 * JSON Lines input with line numbers. Every record keeps the 1-based line it came from so that later
 * stages (example validation, tokenisation, truncation reports) can point at "file:line". A malformed
 * line is an InputError naming "file:line" and what is wrong, never a crash with a bare SyntaxError.
 *
 * Two readers: `readJsonl` (whole file, synchronous: seed and training sets are at most a few MB) and
 * `streamJsonl` (async, line by line: constant memory for files of any size). Both accept gzip
 * (`.gz`, e.g. HumanEval.jsonl.gz), skip blank lines, strip a UTF-8 byte-order mark, refuse lines
 * over a length limit before parsing them, and warn once (with the line) about invalid UTF-8.
 */
import { createReadStream } from 'node:fs';
import { createInterface } from 'node:readline';
import { createGunzip } from 'node:zlib';
import { InputError } from '../errors.js';
import { firstInvalidUtf8Line, readText } from '../io/text.js';

export { firstInvalidUtf8Line };

export interface JsonlRecord<V = unknown> {
  /** 1-based line number in the (decompressed) file. */
  line: number;
  value: V;
}

/** A record of a file whose every line must be an object (the default). */
export type JsonlObjectRecord = JsonlRecord<Record<string, unknown>>;

export interface JsonlOptions {
  /** Require every record to be a JSON object (the default: all nuggets inputs are objects). */
  objects?: boolean;
  /** Stop after this many records (e.g. the first k seeds). */
  limit?: number;
  /** Names the file in read errors and the empty-file error ("GSM8K file not found"); default "JSONL file". */
  what?: string;
  /** Refuse a file with no records (readJsonl only). */
  nonEmpty?: boolean;
  /**
   * Longest line accepted, in characters (default DEFAULT_MAX_LINE_CHARS). Checked before parsing, so
   * one huge line costs a length comparison, not gigabytes of parsing and tokenising.
   */
  maxLineChars?: number;
  /** Where the one warning about invalid UTF-8 goes (default: stderr). */
  warn?: (line: string) => void;
}

/** 4 Mi characters: far above any real example or document line, far below what hurts. */
export const DEFAULT_MAX_LINE_CHARS = 4 * 1024 * 1024;

const defaultWarn = (line: string) => process.stderr.write(`${line}\n`);

function isGzip(path: string): boolean {
  return path.endsWith('.gz');
}

/** Parses one line; `null` for a blank line. */
export function parseJsonlLine(source: string, line: number, text: string, opts: JsonlOptions = {}): JsonlRecord | null {
  if (line === 1 && text.charCodeAt(0) === 0xfeff) text = text.slice(1);
  if (text.endsWith('\r')) text = text.slice(0, -1);
  const max = opts.maxLineChars ?? DEFAULT_MAX_LINE_CHARS;
  if (text.length > max) {
    throw new InputError(
      `${source}:${line}`,
      `line of ${text.length} characters is longer than the limit of ${max} (raise it with --max-line-kb if this line is meant)`,
    );
  }
  if (text.trim() === '') return null;
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    const why = e instanceof Error ? e.message : String(e);
    const shown = text.length > 80 ? `${text.slice(0, 77)}...` : text;
    throw new InputError(`${source}:${line}`, `not valid JSON (${why}): ${shown}`);
  }
  if ((opts.objects ?? true) && (value === null || typeof value !== 'object' || Array.isArray(value))) {
    const kind = value === null ? 'null' : Array.isArray(value) ? 'an array' : `a ${typeof value}`;
    throw new InputError(`${source}:${line}`, `expected a JSON object per line, got ${kind}`);
  }
  return { line, value };
}

/** Parses JSONL text already in memory; `source` names it in errors. */
export function parseJsonl(source: string, text: string, opts: JsonlOptions = {}): JsonlRecord[] {
  const out: JsonlRecord[] = [];
  const limit = opts.limit ?? Infinity;
  let start = 0;
  let line = 0;
  while (start <= text.length && out.length < limit) {
    let end = text.indexOf('\n', start);
    if (end < 0) end = text.length;
    line++;
    const rec = parseJsonlLine(source, line, text.slice(start, end), opts);
    if (rec) out.push(rec);
    start = end + 1;
  }
  return out;
}

/** Reads a whole JSONL (or .jsonl.gz) file. */
export function readJsonl(path: string, opts?: JsonlOptions & { objects?: true }): JsonlObjectRecord[];
export function readJsonl(path: string, opts: JsonlOptions): JsonlRecord[];
export function readJsonl(path: string, opts: JsonlOptions = {}): JsonlRecord[] {
  const what = opts.what ?? 'JSONL file';
  const records = parseJsonl(path, readText(path, what, opts.warn ?? defaultWarn), opts);
  if (opts.nonEmpty && records.length === 0) throw new InputError(path, `${what} has no rows`);
  return records;
}

/** Streams a JSONL (or .jsonl.gz) file record by record in constant memory. */
export async function* streamJsonl(path: string, opts: JsonlOptions = {}): AsyncGenerator<JsonlRecord> {
  const file = createReadStream(path);
  const opened = new Promise<void>((resolve, reject) => {
    file.once('open', () => resolve());
    file.once('error', (e) => reject(new InputError(path, `cannot read file (${(e as NodeJS.ErrnoException).code ?? e.message})`)));
  });
  await opened;
  let input: NodeJS.ReadableStream = file;
  if (isGzip(path)) {
    const gunzip = createGunzip();
    file.pipe(gunzip);
    input = gunzip;
  }
  // Stream errors (a corrupt gzip, a read error) must surface as InputErrors naming the file; readline
  // may either rethrow them from the iterator or just end, depending on timing, so both are handled.
  let streamError: Error | null = null;
  const rl = createInterface({ input, crlfDelay: Infinity });
  input.on('error', (e: Error) => {
    streamError = e;
    rl.close();
  });
  const limit = opts.limit ?? Infinity;
  let line = 0;
  let count = 0;
  let warned = false;
  try {
    for await (const text of rl) {
      line++;
      // the stream decoder replaces invalid UTF-8 with U+FFFD: warn once (a real U+FFFD reads the same)
      if (!warned && text.includes('\uFFFD')) {
        warned = true;
        (opts.warn ?? defaultWarn)(
          `warning: ${path}:${line}: U+FFFD in the text (invalid UTF-8 in the file?); such bytes are read as U+FFFD`,
        );
      }
      const rec = parseJsonlLine(path, line, text, opts);
      if (!rec) continue;
      yield rec;
      if (++count >= limit) break;
    }
  } catch (e) {
    if (e instanceof InputError) throw e;
    throw new InputError(path, `cannot read file (${e instanceof Error ? e.message : String(e)})`);
  } finally {
    rl.close();
    file.destroy();
  }
  if (streamError) {
    throw new InputError(path, `cannot read file (${(streamError as Error).message})`);
  }
}
