import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { parseJsonl, readJsonl, streamJsonl } from '../src/data/jsonl.js';
import { InputError } from '../src/errors.js';

const dir = mkdtempSync(join(tmpdir(), 'nuggets-jsonl-'));

test('line numbers count blank lines, CRLF and a BOM are tolerated', () => {
  const text = '\ufeff{"a":1}\r\n\n  \n{"a":2}\n{"a":3}';
  const recs = parseJsonl('x.jsonl', text);
  assert.deepEqual(
    recs.map((r) => [r.line, (r.value as { a: number }).a]),
    [
      [1, 1],
      [4, 2],
      [5, 3],
    ],
  );
});

test('a malformed line is an InputError naming file:line', () => {
  const p = join(dir, 'bad.jsonl');
  writeFileSync(p, '{"a":1}\n{"a":2}\n{"a": oops}\n');
  assert.throws(
    () => readJsonl(p),
    (e: unknown) => e instanceof InputError && e.source === `${p}:3` && /not valid JSON/.test(e.problem),
  );
});

test('non-object lines are refused by default, allowed with objects:false', () => {
  assert.throws(
    () => parseJsonl('f', '{"a":1}\n[1,2]\n'),
    (e: unknown) => e instanceof InputError && e.source === 'f:2' && /an array/.test(e.problem),
  );
  assert.throws(() => parseJsonl('f', '3\n'), /f:1: expected a JSON object per line, got a number/);
  assert.deepEqual(
    parseJsonl('f', '3\n"x"\n', { objects: false }).map((r) => r.value),
    [3, 'x'],
  );
});

test('limit stops after k records', () => {
  const recs = parseJsonl('f', '{"i":0}\n\n{"i":1}\n{"i":2}\n', { limit: 2 });
  assert.deepEqual(
    recs.map((r) => r.line),
    [1, 3],
  );
});

test('a missing file is an InputError naming it', () => {
  const p = join(dir, 'nope.jsonl');
  assert.throws(
    () => readJsonl(p),
    (e: unknown) => e instanceof InputError && e.source === p && e.problem === 'JSONL file not found',
  );
});

test('gzip files are read (sync and streamed), corrupt gzip is refused', async () => {
  const p = join(dir, 'z.jsonl.gz');
  writeFileSync(p, gzipSync('{"i":1}\n{"i":2}\n'));
  assert.deepEqual(
    readJsonl(p).map((r) => r.value),
    [{ i: 1 }, { i: 2 }],
  );
  const streamed = [];
  for await (const r of streamJsonl(p)) streamed.push(r.value);
  assert.deepEqual(streamed, [{ i: 1 }, { i: 2 }]);
  const bad = join(dir, 'bad.jsonl.gz');
  writeFileSync(bad, 'not gzip at all');
  assert.throws(
    () => readJsonl(bad),
    (e: unknown) => e instanceof InputError && /gzip/.test(e.problem),
  );
  await assert.rejects(async () => {
    for await (const _ of streamJsonl(bad)) void _;
  }, InputError);
});

test('streaming gives the same records as reading, and the same error line', async () => {
  const p = join(dir, 's.jsonl');
  const lines = [];
  for (let i = 0; i < 1000; i++) lines.push(i % 7 === 3 ? '' : JSON.stringify({ i, s: 'x'.repeat(i % 50) }));
  writeFileSync(p, lines.join('\n') + '\n');
  const streamed = [];
  for await (const r of streamJsonl(p)) streamed.push(r);
  assert.deepEqual(streamed, readJsonl(p));
  const limited = [];
  for await (const r of streamJsonl(p, { limit: 5 })) limited.push(r.line);
  assert.deepEqual(limited, [1, 2, 3, 5, 6]);

  const q = join(dir, 's-bad.jsonl');
  writeFileSync(q, '{"a":1}\n{"a":2}\n{"a":\n');
  await assert.rejects(
    async () => {
      for await (const _ of streamJsonl(q)) void _;
    },
    (e: unknown) => e instanceof InputError && e.source === `${q}:3`,
  );
  await assert.rejects(
    async () => {
      for await (const _ of streamJsonl(join(dir, 'missing.jsonl'))) void _;
    },
    (e: unknown) => e instanceof InputError && /ENOENT/.test(e.problem),
  );
});
