/**
 * Reading the benchmark files in their original formats: RFC 4180 CSV (MMLU) here, JSON Lines
 * (optionally gzip-compressed, as HumanEval ships) through data/jsonl.ts, plus the field check the
 * JSONL tasks share. Every problem is reported as an InputError naming the file and the line.
 */
import type { JsonlObjectRecord } from '../data/jsonl.js';
import { InputError } from '../errors.js';
import { readText } from '../io/text.js';

/** A string field of a JSONL row, or an InputError naming file, line and field. */
export function stringField(path: string, row: JsonlObjectRecord, key: string): string {
  const v = row.value[key];
  if (typeof v !== 'string') {
    throw new InputError(
      `${path} line ${row.line}`,
      v === undefined ? `missing field "${key}"` : `field "${key}" must be a string, got ${typeof v}`,
    );
  }
  return v;
}

export interface CsvRecord {
  /** 1-based line on which the record starts. */
  line: number;
  fields: string[];
}

/**
 * RFC 4180 CSV: fields separated by commas, records by CRLF or LF; a field that starts with a double
 * quote runs to the matching closing quote and may hold commas, newlines and doubled quotes ("" for
 * one "). A quote inside an unquoted field is kept literally (as Python's csv module does); text after
 * a closing quote other than a separator is an error. Blank lines between records are skipped.
 */
export function parseCsv(text: string, source: string): CsvRecord[] {
  const records: CsvRecord[] = [];
  let i = 0;
  let line = 1;
  const n = text.length;
  if (text.charCodeAt(0) === 0xfeff) i = 1; // byte-order mark
  while (i < n) {
    // Skip blank lines between records.
    if (text[i] === '\n') {
      i++;
      line++;
      continue;
    }
    if (text[i] === '\r' && text[i + 1] === '\n') {
      i += 2;
      line++;
      continue;
    }
    const startLine = line;
    const fields: string[] = [];
    for (;;) {
      let field = '';
      if (text[i] === '"') {
        const quoteLine = line;
        i++;
        for (;;) {
          if (i >= n) throw new InputError(`${source} line ${quoteLine}`, 'unterminated quoted field');
          const c = text[i];
          if (c === '"') {
            if (text[i + 1] === '"') {
              field += '"';
              i += 2;
              continue;
            }
            i++;
            break;
          }
          if (c === '\n') line++;
          field += c;
          i++;
        }
        const after = text[i];
        if (i < n && after !== ',' && after !== '\n' && !(after === '\r' && text[i + 1] === '\n')) {
          throw new InputError(
            `${source} line ${line}`,
            `unexpected character ${JSON.stringify(after)} after a closing quote`,
          );
        }
      } else {
        const start = i;
        while (i < n && text[i] !== ',' && text[i] !== '\n' && !(text[i] === '\r' && text[i + 1] === '\n'))
          i++;
        field = text.slice(start, i);
      }
      fields.push(field);
      if (i >= n) break;
      if (text[i] === ',') {
        i++;
        continue;
      }
      // End of record.
      i += text[i] === '\r' ? 2 : 1;
      line++;
      break;
    }
    records.push({ line: startLine, fields });
  }
  return records;
}

/** Reads a headerless CSV file with a fixed number of columns. */
export function readCsv(path: string, columns: number, what = 'CSV file'): CsvRecord[] {
  const records = parseCsv(readText(path, what), path);
  if (records.length === 0) throw new InputError(path, `${what} has no rows`);
  for (const r of records) {
    if (r.fields.length !== columns) {
      throw new InputError(`${path} line ${r.line}`, `expected ${columns} columns, found ${r.fields.length}`);
    }
  }
  return records;
}
