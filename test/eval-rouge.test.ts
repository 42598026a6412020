/** Super-NI style metrics: rouge_score tokenizer, LCS, ROUGE-L against hand-computed values, exact match. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { InputError } from '../src/errors.js';
import { porterStem } from '../src/eval/porter.js';
import {
  exactMatch,
  lcsLength,
  maxOverReferences,
  normalizeAnswer,
  rougeL,
  rougeTokenize,
} from '../src/eval/rouge.js';
import { loadInstructionPairs, runSuperNi } from '../src/eval/tasks/superni.js';
import { FIXTURES, SHARED_DATA, ScriptedLM, ctxFor } from './eval-helpers.js';

const close = (a: number, b: number) => assert.ok(Math.abs(a - b) < 1e-12, `${a} != ${b}`);

test('rouge_score default tokenizer: lowercase, non-[a-z0-9] runs split, non-ASCII letters dropped', () => {
  assert.deepEqual(rougeTokenize("A quick brown-fox!  It's 42."), [
    'a',
    'quick',
    'brown',
    'fox',
    'it',
    's',
    '42',
  ]);
  assert.deepEqual(rougeTokenize('Café naïve'), ['caf', 'na', 've']);
  assert.deepEqual(rougeTokenize(' \n!!! '), []);
});

test('LCS length', () => {
  assert.equal(lcsLength(['a', 'b', 'c', 'b', 'd', 'a', 'b'], ['b', 'd', 'c', 'a', 'b', 'a']), 4); // CLRS example
  assert.equal(lcsLength([], ['a']), 0);
  assert.equal(lcsLength(['x'], ['y']), 0);
});

test('ROUGE-L F-measure equals hand-computed values', () => {
  // 5 of 6 tokens in order on both sides: P = R = F = 5/6
  let s = rougeL('the cat sat on the mat', 'the cat is on the mat');
  close(s.precision, 5 / 6);
  close(s.recall, 5 / 6);
  close(s.fmeasure, 5 / 6);
  // LCS 3 (quick brown fox); P = 3/4, R = 3/5, F = 2PR/(P+R) = 2/3
  s = rougeL('A quick brown-fox!', 'the quick brown fox jumps');
  close(s.precision, 3 / 4);
  close(s.recall, 3 / 5);
  close(s.fmeasure, 2 / 3);
  // order matters: a reversed sentence keeps only "the on the"-like subsequences of length 3
  close(rougeL('mat the on sat cat the', 'the cat sat on the mat').fmeasure, 0.5);
  // case and punctuation do not matter
  close(rougeL('THE CAT.', 'the, cat').fmeasure, 1);
  assert.equal(rougeL('', 'the cat').fmeasure, 0);
  assert.equal(rougeL('!!!', '???').fmeasure, 0);
  // several references: the best counts
  close(
    maxOverReferences((p, r) => rougeL(p, r).fmeasure, 'good day', ['hello', 'a good day']),
    0.8,
  );
});

test('Porter stemmer equals NLTK 3.8 PorterStemmer() on 3140 real words (fixture made with NLTK)', () => {
  const rows = readFileSync(join(FIXTURES, 'porter_nltk.tsv'), 'utf8')
    .split('\n')
    .filter((l) => l !== '' && !l.startsWith('#'))
    .map((l) => l.split('\t'));
  assert.equal(rows.length, 3140);
  const wrong = rows
    .filter(([w, s]) => porterStem(w) !== s)
    .map(([w, s]) => `${w}: want ${s}, got ${porterStem(w)}`);
  assert.deepEqual(wrong, []);
  // a few from Porter (1980) and NLTK's extensions, spelled out
  assert.equal(porterStem('caresses'), 'caress');
  assert.equal(porterStem('ponies'), 'poni');
  assert.equal(porterStem('relational'), 'relat');
  assert.equal(porterStem('generalizations'), 'gener');
  assert.equal(porterStem('dying'), 'die');
  assert.equal(porterStem('dies'), 'die');
  assert.equal(porterStem('flies'), 'fli');
});

test('ROUGE-L with the stemmer (rouge_score use_stemmer=True: only tokens longer than 3 characters)', () => {
  // unstemmed: nothing in common; stemmed: [the, cat, were, run] vs [a, cat, run] -> LCS 2, P 1/2, R 2/3, F 4/7
  assert.equal(rougeL('the cats were running', 'a cat runs').fmeasure, 0);
  close(rougeL('the cats were running', 'a cat runs', { stem: true }).fmeasure, 4 / 7);
  assert.deepEqual(rougeTokenize('Cats ran, dogs running', true), ['cat', 'ran', 'dog', 'run']);
});

test('Super-NI task: the stemmer option reaches the metric and is recorded', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'eval-sni-'));
  const p = join(dir, 's.jsonl');
  writeFileSync(p, '{"input":"What do cats do?","references":["a cat runs"]}\n');
  const lm = new ScriptedLM('s', () => 'the cats were running');
  const plain = await runSuperNi(ctxFor(lm), { path: p });
  const stemmed = await runSuperNi(ctxFor(lm), { path: p, rougeStemmer: true });
  assert.equal(plain.metrics.find((m) => m.name === 'rougeL')!.value, 0);
  close(stemmed.metrics.find((m) => m.name === 'rougeL')!.value as number, 4 / 7);
  assert.match(stemmed.config.rouge_stemmer as string, /^Porter/);
});

test('Super-NI normalize_answer / exact match: case, punctuation, articles, whitespace', () => {
  assert.equal(normalizeAnswer('  The Cat, sat.  '), 'cat sat');
  assert.equal(normalizeAnswer('An apple a day'), 'apple day');
  assert.equal(normalizeAnswer('another theme'), 'another theme');
  assert.equal(normalizeAnswer('a-b'), 'ab'); // punctuation removed, not replaced by a space
  assert.equal(normalizeAnswer('café a la carte'), 'café la carte');
  assert.equal(normalizeAnswer('éa'), 'éa'); // Python's Unicode \\b: no boundary between é and a
  assert.equal(exactMatch('The answer: Yes!', 'answer yes'), 1);
  assert.equal(exactMatch('yes', 'no'), 0);
});

test('Super-NI task: {input, references}, string/"output" forms and paper {messages} rows; mean EM and ROUGE-L', async () => {
  const path = join(FIXTURES, 'superni_toy.jsonl');
  const pairs = loadInstructionPairs(path);
  assert.deepEqual(
    pairs.map((p) => p.references),
    [['hello', 'good day'], ['No'], ['The color red'], ['An answer.']],
  );
  const replies: Record<string, string> = {
    'Translate to English: bonjour': ' Good day!',
    'Is the sky green?': 'no, it is blue',
    'Name a color.': 'red\n',
    'Say it.': 'answer',
  };
  const lm = new ScriptedLM('scripted', (r) => {
    assert.ok(r.prompt.endsWith('\n'));
    return replies[r.prompt.slice(0, -1)] + '\n\nextra text after a blank line is cut';
  });
  const res = await runSuperNi(ctxFor(lm), { path });
  const em = res.metrics.find((m) => m.name === 'exact_match')!;
  const rl = res.metrics.find((m) => m.name === 'rougeL')!;
  // EM: [1, 0, 0, 1]; ROUGE-L: [1, 2(1/4)(1)/(5/4) = 0.4, 2(1)(1/3)/(4/3) = 0.5, 2(1)(1/2)/(3/2) = 2/3]
  assert.equal(em.value, 0.5);
  close(rl.value as number, (1 + 0.4 + 0.5 + 2 / 3) / 4);
  [1, 0.4, 0.5, 2 / 3].forEach((x, i) => close(res.samples[i].rougeL as number, x));
  assert.deepEqual(
    res.samples.map((s) => s.exact_match),
    [1, 0, 0, 1],
  );
  // chat mode wraps the input as a Tulu user turn
  const seen: string[] = [];
  await runSuperNi(
    ctxFor(new ScriptedLM('s', (r) => (seen.push(r.prompt), 'x')), { chatFormat: 'tulu', limit: 1 }),
    { path },
  );
  assert.deepEqual(seen, ['<|user|>\nTranslate to English: bonjour\n\n<|assistant|>\n']);
});

test('Super-NI loader errors name file and line', () => {
  const dir = mkdtempSync(join(tmpdir(), 'eval-sni-'));
  const p = join(dir, 's.jsonl');
  writeFileSync(p, '{"input":"a","references":["b"]}\n{"input":"a","references":[]}\n');
  assert.throws(
    () => loadInstructionPairs(p),
    (e: Error) =>
      e instanceof InputError &&
      e.message === `${p} line 2: field "references" must be a string or a non-empty array of strings`,
  );
  writeFileSync(
    p,
    '{"messages":[{"role":"user","content":"a"},{"role":"assistant","content":"b"},{"role":"user","content":"c"}]}\n',
  );
  assert.throws(
    () => loadInstructionPairs(p),
    (e: Error) =>
      e instanceof InputError &&
      /line 1: expected one user turn then one assistant turn, got roles \[user, assistant, user\]/.test(
        e.message,
      ),
  );
  writeFileSync(p, '{"prompt":"a"}\n');
  assert.throws(
    () => loadInstructionPairs(p),
    (e: Error) => e instanceof InputError && /line 1: missing string field "input"/.test(e.message),
  );
});

test("the paper's Super-NI rows load (skipped when ../shared/data is absent)", (t) => {
  const p = join(SHARED_DATA, 'paraknowtransfer', 'super_ni', 'super_ni_data_1000.jsonl');
  if (!existsSync(p))
    return t.skip(
      `${p} not present: the paper's Super-NI rows have no licence, so they are not bundled and are read from ../shared (beside the checkout) when it is there`,
    );
  const pairs = loadInstructionPairs(p);
  assert.equal(pairs.length, 1000);
  assert.equal(pairs[0].references[0], 'yakınlarda yemek yenebilecek kaç mekan var?');
  // the reference scores perfectly against itself
  for (const q of pairs.slice(0, 50)) {
    assert.equal(exactMatch(q.references[0], q.references[0]), 1);
    if (rougeTokenize(q.references[0]).length > 0)
      assert.equal(rougeL(q.references[0], q.references[0]).fmeasure, 1);
  }
});
