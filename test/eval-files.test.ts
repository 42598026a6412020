/** RFC 4180 CSV and JSON Lines as the eval tasks read them: quoting rules, line numbers, and errors naming file and line. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { InputError } from '../src/errors.js';
import { parseCsv, readCsv } from '../src/eval/files.js';
import { readJsonl } from '../src/data/jsonl.js';
import { readText } from '../src/io/text.js';

const tmp = mkdtempSync(join(tmpdir(), 'eval-files-'));

test('CSV: quoted commas, doubled quotes, embedded LF and CRLF newlines, empty fields', () => {
  const text = 'a,"b,c","say ""hi""",\r\n"multi\nline\r\nfield",x,,""\nlast,row';
  const recs = parseCsv(text, 'mem.csv');
  assert.deepEqual(
    recs.map((r) => r.fields),
    [
      ['a', 'b,c', 'say "hi"', ''],
      ['multi\nline\r\nfield', 'x', '', ''],
      ['last', 'row'],
    ],
  );
  // record start lines count the newlines inside quoted fields
  assert.deepEqual(
    recs.map((r) => r.line),
    [1, 2, 5],
  );
});

test('CSV: a quote inside an unquoted field is literal (as Python csv), blank lines are skipped', () => {
  assert.deepEqual(
    parseCsv('5" pipe,b\n\n\nc,d\n', 'mem.csv').map((r) => [r.line, r.fields]),
    [
      [1, ['5" pipe', 'b']],
      [4, ['c', 'd']],
    ],
  );
});

test('CSV: unterminated quote and junk after a closing quote are errors naming the line', () => {
  assert.throws(
    () => parseCsv('a,b\n"open,c\nd', 'f.csv'),
    (e: Error) => e instanceof InputError && /f\.csv line 2: unterminated quoted field/.test(e.message),
  );
  assert.throws(
    () => parseCsv('a,b\nc,"d"x\n', 'f.csv'),
    (e: Error) => e instanceof InputError && /f\.csv line 2: unexpected character "x"/.test(e.message),
  );
});

test('readCsv: wrong column count and missing files are InputErrors naming file and line', () => {
  const p = join(tmp, 'cols.csv');
  writeFileSync(p, 'q,A,B,C,D,A\n"q2\nmore",A,B,C,D\n');
  assert.throws(
    () => readCsv(p, 6),
    (e: Error) => e instanceof InputError && e.message === `${p} line 2: expected 6 columns, found 5`,
  );
  writeFileSync(join(tmp, 'empty.csv'), '\n');
  assert.throws(
    () => readCsv(join(tmp, 'empty.csv'), 6),
    (e: Error) => e instanceof InputError && /empty\.csv: CSV file has no rows/.test(e.message),
  );
  assert.throws(
    () => readCsv(join(tmp, 'nope.csv'), 6),
    (e: Error) => e instanceof InputError && /nope\.csv: CSV file not found/.test(e.message),
  );
});

test('JSONL: malformed line, non-object line and empty file name the file and line', () => {
  const p = join(tmp, 'bad.jsonl');
  const opts = { what: 'GSM8K file', nonEmpty: true };
  writeFileSync(p, '{"a":1}\n\n{"a":2\n');
  assert.throws(
    () => readJsonl(p, opts),
    (e: Error) => e instanceof InputError && e.message.startsWith(`${p}:3: not valid JSON`),
  );
  writeFileSync(p, '{"a":1}\n[1,2]\n');
  assert.throws(
    () => readJsonl(p, opts),
    (e: Error) =>
      e instanceof InputError && e.message === `${p}:2: expected a JSON object per line, got an array`,
  );
  writeFileSync(p, '\n \n');
  assert.throws(
    () => readJsonl(p, opts),
    (e: Error) => e instanceof InputError && e.message === `${p}: GSM8K file has no rows`,
  );
  assert.throws(
    () => readJsonl(join(tmp, 'nope.jsonl'), opts),
    (e: Error) => e instanceof InputError && /nope\.jsonl: GSM8K file not found/.test(e.message),
  );
});

test('JSONL: blank lines skipped, CRLF tolerated, gzip read, bad gzip reported', () => {
  const p = join(tmp, 'ok.jsonl.gz');
  writeFileSync(p, gzipSync('{"a":1}\r\n\r\n{"a":"x"}\r\n'));
  assert.deepEqual(
    readJsonl(p).map((r) => [r.line, r.value]),
    [
      [1, { a: 1 }],
      [3, { a: 'x' }],
    ],
  );
  const bad = join(tmp, 'bad.gz');
  writeFileSync(bad, 'not gzip');
  assert.throws(
    () => readText(bad),
    (e: Error) => e instanceof InputError && /not a valid gzip file/.test(e.message),
  );
});
