import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { answerOf, readExamples, toExample } from '../src/data/examples.js';
import { InputError } from '../src/errors.js';

const dir = mkdtempSync(join(tmpdir(), 'nuggets-examples-'));
const ex = (value: unknown, line = 7) => toExample('f.jsonl', { line, value });
const fails = (value: unknown, re: RegExp) =>
  assert.throws(
    () => ex(value),
    (e: unknown) => e instanceof InputError && e.source === 'f.jsonl:7' && re.test(e.problem),
  );

test("the paper's messages rows keep dataset, id and all turns", () => {
  const e = ex({
    dataset: 'gsm',
    id: 'gsm_1',
    messages: [
      { role: 'user', content: 'Q?' },
      { role: 'assistant', content: 'A.' },
    ],
  });
  assert.deepEqual(e, {
    source: 'f.jsonl:7',
    line: 7,
    id: 'gsm_1',
    dataset: 'gsm',
    kind: 'chat',
    messages: [
      { role: 'user', content: 'Q?' },
      { role: 'assistant', content: 'A.' },
    ],
  });
  assert.equal(answerOf(e), 'A.');
});

test('pairs become a user turn and an assistant answer', () => {
  for (const [row, user, answer] of [
    [{ prompt: 'p', answer: 'a' }, 'p', 'a'],
    [{ question: 'q', answer: 'x #### 4' }, 'q', 'x #### 4'],
    [{ instruction: 'Do it.', input: 'data', output: 'done' }, 'Do it.\n\ndata', 'done'],
    [{ instruction: 'Do it.', input: '', output: 'done' }, 'Do it.', 'done'],
    [{ instruction: 'Do it.', output: 'done' }, 'Do it.', 'done'],
  ] as const) {
    const e = ex(row);
    assert.equal(e.kind, 'chat');
    if (e.kind !== 'chat') continue;
    assert.deepEqual(e.messages, [
      { role: 'user', content: user },
      { role: 'assistant', content: answer },
    ]);
  }
  assert.equal(ex({ id: 12, prompt: 'p', answer: 'a' }).id, '12');
});

test('plain text rows are LM examples', () => {
  const e = ex({ text: 'Once upon a time.' });
  assert.equal(e.kind, 'text');
  assert.equal(answerOf(e), 'Once upon a time.');
});

test('bad rows are refused by line with the reason', () => {
  fails({ foo: 1 }, /expected one of .*this row has keys "foo"/);
  fails({ messages: [] }, /"messages" is empty/);
  fails({ messages: 'hi' }, /must be an array/);
  fails(
    { messages: [{ role: 'bot', content: 'x' }] },
    /messages\[0\]\.role must be one of system, user, assistant, got "bot"/,
  );
  fails({ messages: [{ role: 'user', content: 3 }] }, /messages\[0\]\.content must be a string, got number/);
  fails(
    { messages: [{ role: 'user', content: 'q' }] },
    /last message must be the assistant's answer, got role "user"/,
  );
  fails(
    {
      messages: [
        { role: 'user', content: 'q' },
        { role: 'assistant', content: '  \n' },
      ],
    },
    /answer .* is empty/,
  );
  fails({ prompt: 'q', answer: '' }, /the answer is empty/);
  fails({ question: 'q', answer: 5 }, /field "answer" must be a string, got number/);
  fails({ instruction: 'q', input: null, output: 'x' }, /field "input" must be a string, got null/);
  fails({ text: '' }, /"text" is empty/);
});

// The paper's seed files have no licence: they are read from ../shared, and the test skips without it.
const paperSeeds = fileURLToPath(
  new URL('../../shared/data/paraknowtransfer/gsm/sample_gsm.jsonl', import.meta.url),
);
const noPaperSeeds = existsSync(paperSeeds)
  ? false
  : `${paperSeeds} not present: the paper's seed files have no licence, so they are not bundled and are read from ../shared (beside the checkout) when it is there`;

test("readExamples: the paper's seed file reads as 32 chat examples", { skip: noPaperSeeds }, () => {
  const seeds = readExamples(paperSeeds);
  assert.equal(seeds.length, 32);
  assert.ok(seeds.every((s) => s.kind === 'chat' && s.dataset === 'gsm' && s.messages.length === 2));
  assert.equal(seeds[0].id, 'gsm_4234');
  assert.match(answerOf(seeds[0]), /So the answer is 10\.$/);
  assert.equal(readExamples(paperSeeds, { limit: 4 }).length, 4);
});

test('readExamples: errors name file:line', () => {
  const p = join(dir, 'mixed.jsonl');
  writeFileSync(p, '{"prompt":"a","answer":"b"}\n\n{"prompt":"a","answer":""}\n');
  assert.throws(
    () => readExamples(p),
    (e: unknown) => e instanceof InputError && e.source === `${p}:3`,
  );
  const empty = join(dir, 'empty.jsonl');
  writeFileSync(empty, '\n\n');
  assert.throws(() => readExamples(empty), /no examples/);
});
