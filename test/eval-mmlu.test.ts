/** MMLU: every row of the real CSV release parses; prompts in the standard format; letter scoring and averages. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, mkdirSync, writeFileSync, cpSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { InputError } from '../src/errors.js';
import { loadMmlu, mmluContext, mmluSubjects, runMmlu, type MmluDoc } from '../src/eval/tasks/mmlu.js';
import { DATA, ScriptedLM, ctxFor } from './eval-helpers.js';

const DIR = join(DATA, 'mmlu');

test('all 14042 MMLU test rows parse (57 subjects), plus 285 dev and 1531 val rows', () => {
  const subjects = mmluSubjects(DIR);
  assert.equal(subjects.length, 57);
  const count = (split: 'dev' | 'val' | 'test') =>
    subjects.reduce((n, s) => n + loadMmlu(DIR, split, s).length, 0);
  assert.equal(count('test'), 14042);
  assert.equal(count('dev'), 285);
  assert.equal(count('val'), 1531);
});

test('spot values: first/last rows, an embedded newline, quoted commas and doubled quotes', () => {
  const aa = loadMmlu(DIR, 'test', 'abstract_algebra');
  assert.equal(aa.length, 100);
  assert.deepEqual(aa[0].choices, ['0', '4', '2', '6']);
  assert.equal(
    aa[0].question,
    'Find the degree for the given field extension Q(sqrt(2), sqrt(3), sqrt(18)) over Q.',
  );
  assert.equal(aa[0].answer, 'B');
  assert.equal(aa[99].answer, 'C');
  assert.deepEqual(aa[99].choices, ['True, True', 'False, False', 'True, False', 'False, True']);

  const bio = loadMmlu(DIR, 'test', 'college_biology');
  assert.equal(bio.length, 144);
  assert.equal(
    bio[13].question,
    'A cell nucleus contains which of the following?\nI. DNA\nII. Protein\nIII. RNA',
  );
  assert.deepEqual(bio[13].choices, ['I only', 'II only', 'III only', 'I, II, and III']);
  assert.equal(bio[13].answer, 'D');
  // the quoted question above spans file lines 14-17, so the next record starts on line 18
  assert.equal(bio[14].line, 18);

  const law = loadMmlu(DIR, 'test', 'professional_law');
  assert.equal(law.length, 1534);
  assert.ok(
    law[1].question.startsWith(
      'A state statute provides: "Whenever a person knows or should know that he (or she) is being arrested',
    ),
  );
  assert.equal(law[1].answer, 'B');
});

test('0-shot and 1-shot prompts are the standard format, letters scored after "Answer:"', () => {
  const doc = loadMmlu(DIR, 'test', 'anatomy')[0];
  const dev = loadMmlu(DIR, 'dev', 'anatomy');
  const q =
    'A lesion causing compression of the facial nerve at the stylomastoid foramen will cause ipsilateral\n' +
    'A. paralysis of the facial muscles.\n' +
    'B. paralysis of the facial muscles and loss of taste.\n' +
    'C. paralysis of the facial muscles, loss of taste and lacrimation.\n' +
    'D. paralysis of the facial muscles, loss of taste, lacrimation and decreased salivation.\n' +
    'Answer:';
  const head = 'The following are multiple choice questions (with answers) about anatomy.\n\n';
  assert.equal(mmluContext(doc, []), head + q);
  const shot =
    'What is the embryological origin of the hyoid bone?\n' +
    'A. The first pharyngeal arch\nB. The first and second pharyngeal arches\nC. The second pharyngeal arch\n' +
    'D. The second and third pharyngeal arches\nAnswer: D\n\n';
  assert.equal(mmluContext(doc, dev.slice(0, 1)), head + shot + q);
  // underscores become spaces in the subject
  const hs = loadMmlu(DIR, 'test', 'high_school_us_history')[0];
  assert.ok(
    mmluContext(hs, []).startsWith(
      'The following are multiple choice questions (with answers) about high school us history.\n\n',
    ),
  );
  // Tulu chat: the same text as the user turn, the assistant turn opened with "The answer is:"
  assert.equal(mmluContext(doc, [], 'tulu'), `<|user|>\n${head + q}\n\n<|assistant|>\nThe answer is:`);
  assert.equal(
    mmluContext(doc, [], (u) => `[INST] ${u} [/INST]`),
    `[INST] ${head + q} [/INST] The answer is:`,
  );
});

const anatomyAOf = (docs: MmluDoc[], n: number) => docs.filter((d) => d.answer === 'A').length / n;

test('scoring: per-subject accuracy, micro and macro averages, ties go to A', async () => {
  const limit = 30;
  const golds = new Map<string, MmluDoc>();
  const aa = loadMmlu(DIR, 'test', 'abstract_algebra').slice(0, limit);
  const an = loadMmlu(DIR, 'test', 'anatomy').slice(0, limit);
  const dev = (s: string) => loadMmlu(DIR, 'dev', s).slice(0, 2);
  for (const d of aa) golds.set(mmluContext(d, dev('abstract_algebra')), d);
  for (const d of an) golds.set(mmluContext(d, dev('anatomy')), d);
  // right on abstract algebra; on anatomy every letter ties (so A is chosen)
  const lm = new ScriptedLM('scripted', undefined, (r) => {
    const d = golds.get(r.context);
    assert.ok(d, 'context not built by the standard prompt');
    if (d.subject === 'anatomy') return { logprob: -2, greedy: false };
    return { logprob: r.continuation === ` ${d.answer}` ? -0.1 : -3, greedy: false };
  });
  const res = await runMmlu(ctxFor(lm, { limit, batchSize: 7 }), {
    dir: DIR,
    shots: 2,
    subjects: ['abstract_algebra', 'anatomy'],
  });
  const [group, stem, ra, rn] = res;
  // lm-eval's grouping: both subjects are tagged mmlu_stem_tasks
  assert.deepEqual(
    res.map((r) => [r.task, r.version]),
    [
      ['mmlu', 2],
      ['mmlu_stem', 2],
      ['mmlu_abstract_algebra', 1],
      ['mmlu_anatomy', 1],
    ],
  );
  assert.deepEqual(group.subtasks, ['mmlu_stem']);
  assert.deepEqual(stem.subtasks, ['mmlu_abstract_algebra', 'mmlu_anatomy']);
  assert.equal(stem.metrics[0].value, (limit + anatomyAOf(an, limit) * limit) / (2 * limit));
  // lm-eval's pooled_sample_stderr over the two subjects (sizes 30 and 30)
  const se = [ra, rn].map((r) => r.metrics[0].stderr as number);
  const pooled = Math.sqrt(
    ((limit - 1) * se[0] ** 2 * limit + (limit - 1) * se[1] ** 2 * limit) / (2 * limit - 2) / (2 * limit),
  );
  assert.ok(Math.abs((stem.metrics[0].stderr as number) - pooled) < 1e-15);
  assert.equal(group.metrics[0].stderr, stem.metrics[0].stderr);
  const anatomyA = an.filter((d) => d.answer === 'A').length / limit;
  assert.equal(ra.metrics[0].value, 1);
  assert.equal(rn.metrics[0].value, anatomyA);
  assert.ok(anatomyA > 0 && anatomyA < 1);
  assert.equal(group.metrics.find((m) => m.name === 'acc')!.value, (limit + anatomyA * limit) / (2 * limit));
  assert.equal(group.metrics.find((m) => m.name === 'acc_macro')!.value, (1 + anatomyA) / 2);
  // stderr of a 0/1 mean: sqrt(p(1-p) n/(n-1)) / sqrt(n)
  const p = anatomyA;
  assert.ok(
    Math.abs((rn.metrics[0].stderr as number) - Math.sqrt((p * (1 - p) * limit) / (limit - 1) / limit)) <
      1e-12,
  );
  assert.deepEqual(group.nSamples, { original: 100 + 135, effective: 60 });
  assert.equal(group.nShot, 2);
  // 4 continuations per question, batches of at most 7
  assert.equal(
    lm.calls.reduce((n, c) => n + c.size, 0),
    4 * 2 * limit,
  );
  assert.ok(lm.calls.every((c) => c.size <= 7));
  // lm-eval's multiple_choice record
  assert.deepEqual(rn.samples[0].filtered_resps, [
    [-2, false],
    [-2, false],
    [-2, false],
    [-2, false],
  ]);
  assert.deepEqual(rn.samples[0].resps, [[[-2, false]], [[-2, false]], [[-2, false]], [[-2, false]]]);
  assert.equal(rn.samples[0].target, ['A', 'B', 'C', 'D'].indexOf(an[0].answer));
  assert.deepEqual(
    (rn.samples[0].arguments as string[][]).map((a) => a[1]),
    [' A', ' B', ' C', ' D'],
  );
  assert.equal(rn.samples[0].filter, 'none');
  assert.deepEqual(rn.samples[0].metrics, ['acc']);
});

test('bad MMLU input: wrong answer letter, wrong column count, unknown subject, too many shots', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'eval-mmlu-'));
  mkdirSync(join(dir, 'test'));
  mkdirSync(join(dir, 'dev'));
  writeFileSync(join(dir, 'test', 'toy_test.csv'), 'q1,a,b,c,d,A\n"q2, long",a,b,c,d,E\n');
  assert.throws(
    () => loadMmlu(dir, 'test', 'toy'),
    (e: Error) =>
      e instanceof InputError &&
      /toy_test\.csv line 2: answer column must be A, B, C or D, got "E"/.test(e.message),
  );
  writeFileSync(join(dir, 'test', 'toy_test.csv'), 'q1,a,b,c,d,A\nq2,a,b,c,A\n');
  assert.throws(
    () => loadMmlu(dir, 'test', 'toy'),
    (e: Error) => e instanceof InputError && /line 2: expected 6 columns, found 5/.test(e.message),
  );
  writeFileSync(join(dir, 'test', 'toy_test.csv'), 'q1,a,b,c,d,A\n');
  writeFileSync(join(dir, 'dev', 'toy_dev.csv'), 'q1,a,b,c,d,A\n');
  const lm = new ScriptedLM('s');
  await assert.rejects(
    runMmlu(ctxFor(lm), { dir, shots: 0, subjects: ['nope'] }),
    (e: Error) => e instanceof InputError && /no MMLU subject "nope"; known: toy/.test(e.message),
  );
  await assert.rejects(
    runMmlu(ctxFor(lm), { dir, shots: 3 }),
    (e: Error) => e instanceof InputError && /3 shots requested but the dev file has 1 rows/.test(e.message),
  );
  const copy = mkdtempSync(join(tmpdir(), 'eval-mmlu-'));
  cpSync(join(DIR, 'test', 'anatomy_test.csv'), join(copy, 'test', 'anatomy_test.csv'));
  await assert.rejects(
    runMmlu(ctxFor(lm), { dir: copy, shots: 1 }),
    (e: Error) => e instanceof InputError && /anatomy_dev\.csv: MMLU CSV file not found/.test(e.message),
  );
});
