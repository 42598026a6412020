/** GSM8K: gold and answer extraction on real rows, the standard CoT prompts, and scoring plumbing. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { InputError } from '../src/errors.js';
import {
  GSM8K_COT_EXEMPLARS,
  answersMatch,
  extractFlexible,
  extractStrict,
  gsm8kPrompt,
  loadGsm8k,
  normalizeNumber,
  runGsm8k,
} from '../src/eval/tasks/gsm8k.js';
import { DATA, ScriptedLM, ctxFor } from './eval-helpers.js';

const TEST = join(DATA, 'gsm8k', 'test.jsonl');
const docs = loadGsm8k(TEST);

test('GSM8K test split: 1319 rows; gold is the text after "#### ", normalised', () => {
  assert.equal(docs.length, 1319);
  assert.equal(docs[0].gold, '18');
  assert.equal(docs[2].gold, '70000');
  assert.ok(docs[146].answer.endsWith('\n#### 2,125')); // row 147 writes its gold with a comma
  assert.equal(docs[146].gold, '2125');
  assert.equal(docs[489].gold, '-10');
  assert.equal(loadGsm8k(join(DATA, 'gsm8k', 'train.jsonl')).length, 7473);
});

test('every real solution scores as correct under both strict ("#### N") and flexible (last number) extraction', () => {
  for (const d of docs) {
    assert.ok(answersMatch(extractStrict(d.answer), d.gold), `strict on ${d.answer.slice(-40)}`);
    assert.ok(answersMatch(extractFlexible(d.answer), d.gold), `flexible on ${d.answer.slice(-40)}`);
  }
});

test('strict extraction: "The answer is N", the paper\'s "So the answer is N.", $ and commas, first occurrence', () => {
  assert.equal(extractStrict('Janet sells 9 eggs. 9 * 2 = 18. The answer is 18.'), '18');
  assert.equal(extractStrict('Answer: ... 15-5=10 cats. So the answer is 10.'), '10');
  assert.equal(extractStrict('So the answer is $1,080.'), '1,080');
  assert.equal(extractStrict('The answer is: -10 degrees'), '-10');
  assert.equal(extractStrict('He made $70,000 profit\n#### 70000'), '70000');
  assert.equal(extractStrict('The answer is 5. Q: next... The answer is 6.'), '5');
  assert.equal(extractStrict('The answer is 18'), '18'); // at the very end (lm-eval's regex would cut it to "1")
  assert.equal(extractStrict('I think it is 18.'), null);
  assert.equal(extractStrict('The answer is unknown.'), null);
});

test('flexible extraction: the last number-like span (lm-eval regex), then normalised', () => {
  assert.equal(extractFlexible('16 - 3 - 4 = 9 eggs, 9 * 2 = $18 a day.'), '$18');
  assert.equal(normalizeNumber('$18'), '18');
  assert.equal(extractFlexible('profit of 200,000-130,000=70,000.'), '70,000.');
  assert.equal(normalizeNumber('70,000.'), '70000');
  assert.equal(extractFlexible('It is -30/3 = -10'), '-10');
  assert.equal(extractFlexible('no digits here'), null);
});

test('normalisation and matching: commas, $, trailing "." and ".0", numeric equality', () => {
  assert.equal(normalizeNumber(' $1,450,000. '), '1450000');
  assert.equal(normalizeNumber('18.00'), '18');
  assert.equal(normalizeNumber('#### 5,600'), '5600');
  assert.ok(answersMatch('18.0', '18'));
  assert.ok(answersMatch('18.50', '18.5'));
  assert.ok(!answersMatch('180', '18'));
  assert.ok(!answersMatch(null, '18'));
  assert.ok(!answersMatch('-18', '18'));
});

test('prompts: lm-eval gsm8k_cot 8-shot and gsm8k_cot_zeroshot, open-instruct style in chat mode', () => {
  const q = docs[0].question;
  assert.equal(GSM8K_COT_EXEMPLARS.length, 8);
  const p8 = gsm8kPrompt(q, 8);
  assert.ok(
    p8.prompt.startsWith(
      'Q: There are 15 trees in the grove. Grove workers will plant trees in the grove today. After they are done, there will be 21 trees. How many trees did the grove workers plant today?\n' +
        'A: There are 15 trees originally. Then there were 21 trees after some more were planted. So there must have been 21 - 15 = 6. The answer is 6.\n\n' +
        'Q: If there are 3 cars',
    ),
  );
  assert.ok(
    p8.prompt.endsWith(
      'A: Olivia had 23 dollars. 5 bagels for 3 dollars each will be 5 x 3 = 15 dollars. So she has 23 - 15 dollars left. 23 - 15 is 8. The answer is 8.\n\n' +
        `Q: ${q}\nA:`,
    ),
  );
  assert.equal(p8.prompt.split('\n\n').length, 9);
  assert.deepEqual(p8.stop, ['Q:', '</s>', '<|im_end|>']);
  assert.equal(gsm8kPrompt(q, 0).prompt, `Q: ${q}\nA: Let's think step by step.`);
  assert.equal(gsm8kPrompt(q, 2).prompt.split('\nA: ').length, 3);
  assert.equal(
    gsm8kPrompt(q, 0, 'tulu').prompt,
    `<|user|>\nAnswer the following question.\n\nQuestion: ${q}\n\n<|assistant|>\nAnswer:`,
  );
  const c1 = gsm8kPrompt(q, 1, 'tulu').prompt;
  assert.ok(c1.startsWith('<|user|>\nAnswer the following questions.\n\nQuestion: There are 15 trees'));
  assert.ok(c1.includes('The answer is 6.\n\nQuestion: Janet'));
  assert.throws(() => gsm8kPrompt(q, 9), /0 to 8 shots/);
});

/** The data's own solution rewritten as a model would write it: calculator marks dropped, "The answer is N." */
function cot(answer: string): string {
  const body = answer
    .replace(/<<[^>]*>>/g, '')
    .replace(/\n#### (.*)$/, (_m, g: string) => ` The answer is ${g}.`);
  return ' ' + body.replace(/\n/g, ' ');
}

test('scoring plumbing: a model that writes the gold solution scores 1 on both filters; stderr and samples', async () => {
  const byQuestion = new Map(docs.map((d) => [d.question, d]));
  const lm = new ScriptedLM('gold', (r) => {
    const q = r.prompt.slice(r.prompt.lastIndexOf('Q: ') + 3, -'\nA:'.length);
    const d = byQuestion.get(q);
    assert.ok(d, 'prompt does not end with the test question');
    return cot(d.answer) + '\n\nQ: a follow-up question the stop string cuts off, The answer is 99.';
  });
  const r = await runGsm8k(ctxFor(lm, { limit: 20, batchSize: 8 }), { path: TEST, shots: 8 });
  assert.equal(r.task, 'gsm8k_cot');
  assert.equal(r.version, 3);
  assert.deepEqual(
    r.metrics.map((m) => [m.name, m.filter, m.value, m.stderr]),
    [
      ['exact_match', 'strict-match', 1, 0],
      ['exact_match', 'flexible-extract', 1, 0],
    ],
  );
  assert.deepEqual(r.nSamples, { original: 1319, effective: 20 });
  assert.deepEqual(
    lm.calls.map((c) => c.size),
    [8, 8, 4],
  );
  assert.equal(r.samples[0].target, '18');
  // lm-eval's records: one per document and filter, strict-match first; filtered responses raw
  assert.equal(r.samples.length, 40);
  assert.deepEqual(
    [r.samples[0].filter, r.samples[0].filtered_resps, r.samples[20].filter, r.samples[20].filtered_resps],
    ['strict-match', ['18'], 'flexible-extract', ['18.']],
  );
  assert.equal(r.samples[20].doc_id, 0);
  assert.deepEqual(r.samples[0].metrics, ['exact_match']);
  assert.equal(r.samples[0].exact_match, 1);
});

test('scoring plumbing: strict and flexible differ when the model never says "The answer is"', async () => {
  // answers "... so 18" for the first question only, and "42" everywhere else
  const lm = new ScriptedLM('half', (r) =>
    r.prompt.includes(docs[0].question) ? ' 16 - 3 - 4 = 9, 9 * 2 = 18' : ' 42',
  );
  const r = await runGsm8k(ctxFor(lm, { limit: 4 }), { path: TEST, shots: 0 });
  const strict = r.metrics.find((m) => m.filter === 'strict-match')!;
  const flex = r.metrics.find((m) => m.filter === 'flexible-extract')!;
  assert.equal(strict.value, 0);
  assert.equal(flex.value, 0.25);
  assert.equal(flex.stderr, 0.25); // sqrt(var 0.25 * 4/3 / 4) = 0.25 for [1,0,0,0]
  assert.deepEqual(r.samples[1].filtered_resps, ['[invalid]']);
  assert.equal(r.samples[1].filter, 'strict-match');
  assert.deepEqual(r.samples[4].filtered_resps, ['18']);
});

test('bad GSM8K files: missing gold marker, missing field, missing file', () => {
  const dir = mkdtempSync(join(tmpdir(), 'eval-gsm-'));
  const p = join(dir, 'g.jsonl');
  writeFileSync(p, '{"question":"q","answer":"x\\n#### 4"}\n{"question":"q","answer":"no gold"}\n');
  assert.throws(
    () => loadGsm8k(p),
    (e: Error) =>
      e instanceof InputError &&
      e.message === `${p} line 2: field "answer" has no "#### <number>" gold answer`,
  );
  writeFileSync(p, '{"question":"q"}\n');
  assert.throws(
    () => loadGsm8k(p),
    (e: Error) => e instanceof InputError && e.message === `${p} line 1: missing field "answer"`,
  );
  assert.throws(
    () => loadGsm8k(join(dir, 'none.jsonl')),
    (e: Error) => e instanceof InputError && /GSM8K file not found/.test(e.message),
  );
});
