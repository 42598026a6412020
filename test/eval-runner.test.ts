/** runEval and the results files: task resolution and errors, lm-eval-shaped JSON, samples JSONL, perplexity. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { InputError } from '../src/errors.js';
import { buildResults, pyStr, writeEvalOutputs } from '../src/eval/results.js';
import { runEval, type ProgressEvent } from '../src/eval/runner.js';
import { loadMmlu } from '../src/eval/tasks/mmlu.js';
import { loadGsm8k } from '../src/eval/tasks/gsm8k.js';
import {
  emNormalize,
  flexibleExtract,
  gsm8kExactMatch,
  gsm8kLmEvalPrompt,
  strictMatch,
} from '../src/eval/tasks/gsm8k-lmeval.js';
import { createHash } from 'node:crypto';
import { DATA, FIXTURES, ScriptedLM } from './eval-helpers.js';

const SNI = join(FIXTURES, 'superni_toy.jsonl');

test('unknown task names fail before anything runs, listing the known tasks', async () => {
  const lm = new ScriptedLM('s');
  await assert.rejects(
    runEval(lm, { tasks: ['gsm8k', 'gsm8kk'] }),
    (e: Error) =>
      e instanceof InputError &&
      e.message.startsWith(
        'tasks: unknown task "gsm8kk"; known tasks: gsm8k, gsm8k_cot, mmlu, mmlu_<subject>, super_ni, alpaca_eval_proxy, humaneval, perplexity',
      ),
  );
  assert.equal(lm.calls.length, 0);
  await assert.rejects(
    runEval(lm, { tasks: ['mmlu_astrology'] }),
    (e: Error) =>
      e instanceof InputError &&
      /unknown MMLU subject "astrology".*abstract_algebra, anatomy/.test(e.message),
  );
  await assert.rejects(runEval(lm, { tasks: [] }), /no tasks given; known tasks/);
  await assert.rejects(
    runEval(lm, { tasks: ['super_ni'] }),
    /task super_ni needs a data file: write "super_ni:<path>"/,
  );
  await assert.rejects(
    runEval(lm, { tasks: ['perplexity:/no/such.txt'] }),
    (e: Error) =>
      e instanceof InputError && /\/no\/such\.txt: data file for task perplexity not found/.test(e.message),
  );
  await assert.rejects(
    runEval(lm, { tasks: ['alpaca_eval'], dataDir: mkdtempSync(join(tmpdir(), 'eval-run-')) }),
    /AlpacaEval is research-only and not bundled/,
  );
  await assert.rejects(runEval(lm, { tasks: ['gsm8k'], shots: 9 }), /shots: gsm8k takes 0 to 8 shots, got 9/);
  await assert.rejects(
    runEval(lm, { tasks: ['mmlu'], shots: { mmlu: 6 } }),
    /mmlu takes 0 to 5 shots, got 6/,
  );
  await assert.rejects(
    runEval(lm, { tasks: ['humaneval'], shots: { humaneval: 1 } }),
    /humaneval takes 0 to 0 shots/,
  );
  await assert.rejects(
    runEval(lm, { tasks: ['gsm8k'], batchSize: 0 }),
    /batch size: must be a positive integer/,
  );
  await assert.rejects(runEval(lm, { tasks: ['gsm8k'], limit: 1.5 }), /limit: must be a positive integer/);
  await assert.rejects(runEval(lm, { tasks: ['gsm8k_cot', 'gsm8k_cot'] }), /task gsm8k_cot is listed twice/);
  await assert.rejects(runEval(lm, { tasks: ['mmlu', 'mmlu_stem'] }), /task mmlu_stem is listed twice/);
  await assert.rejects(runEval(lm, { tasks: ['mmlu', 'mmlu_anatomy'] }), /task mmlu_anatomy is listed twice/);
  assert.equal(lm.calls.length, 0);
});

test('runEval: several tasks and shot counts in one lm-eval-shaped results object, progress, samples files', async () => {
  const lm = new ScriptedLM(
    'scripted',
    (r) => (r.prompt.includes('Janet') ? ' The answer is 18.' : ' The answer is 0.'),
    (r) => ({ logprob: r.continuation === ' A' ? -0.5 : -2, greedy: false }),
  );
  const events: ProgressEvent[] = [];
  const before = Date.now() / 1000;
  const run = await runEval(
    lm,
    {
      tasks: ['gsm8k_cot', 'mmlu_anatomy', `super_ni:${SNI}`],
      shots: { gsm8k_cot: [0, 8], mmlu: 1 },
      limit: 2,
      batchSize: 3,
      seed: 5,
    },
    (e) => events.push(e),
  );
  const R = run.results;
  assert.deepEqual(Object.keys(R.results), [
    'gsm8k_cot_0shot',
    'gsm8k_cot_8shot',
    'mmlu_anatomy',
    'super_ni',
  ]);
  // first GSM8K question answered right, second wrong
  assert.equal(R.results.gsm8k_cot_8shot['exact_match,strict-match'], 0.5);
  assert.equal(R.results.gsm8k_cot_8shot['exact_match_stderr,strict-match'], 0.5);
  assert.equal(R.results.gsm8k_cot_0shot['exact_match,flexible-extract'], 0.5);
  assert.equal(R.results.gsm8k_cot_0shot.alias, 'gsm8k_cot_0shot');
  assert.deepEqual(R['n-shot'], { gsm8k_cot_0shot: 0, gsm8k_cot_8shot: 8, mmlu_anatomy: 1, super_ni: 0 });
  assert.deepEqual(R['n-samples'].gsm8k_cot_8shot, { original: 1319, effective: 2 });
  assert.deepEqual(R['n-samples'].mmlu_anatomy, { original: 135, effective: 2 });
  // the model always picks A (right on the first question, wrong on the second)
  const golds = loadMmlu(join(DATA, 'mmlu'), 'test', 'anatomy')
    .slice(0, 2)
    .map((d) => d.answer);
  assert.equal(R.results.mmlu_anatomy['acc,none'], golds.filter((g) => g === 'A').length / 2);
  assert.equal(R.results.mmlu_anatomy['acc,none'], 0.5);
  assert.ok(R.configs.mmlu_anatomy.subject === 'anatomy');
  assert.equal(R.results.super_ni['exact_match,none'], 0);
  assert.deepEqual(R.higher_is_better.super_ni, { exact_match: true, rougeL: true });
  assert.equal(R.versions.gsm8k_cot_8shot, 3);
  assert.equal(R.versions.mmlu_anatomy, 1);
  assert.equal(R.config.model, 'scripted');
  assert.equal(R.config.seed, 5);
  assert.equal(R.config.batch_size, 3);
  assert.equal(R.config.chat_format, 'plain');
  assert.ok(R.date >= before - 1 && R.date <= Date.now() / 1000 + 1);
  assert.equal(R.configs.super_ni.data, SNI);
  // progress: per task, done never decreases and ends at total
  for (const task of ['gsm8k_cot_0shot', 'gsm8k_cot_8shot', 'mmlu_anatomy', 'super_ni']) {
    const ev = events.filter((e) => e.task === task);
    assert.ok(ev.length > 0, task);
    for (let i = 1; i < ev.length; i++)
      if (ev[i].phase === ev[i - 1].phase) assert.ok(ev[i].done >= ev[i - 1].done);
    assert.equal(ev.at(-1)!.done, ev.at(-1)!.total);
  }
  assert.ok(lm.calls.every((c) => c.size <= 3));

  const dir = mkdtempSync(join(tmpdir(), 'eval-out-'));
  const paths = writeEvalOutputs(dir, R, run.tasks);
  assert.deepEqual(readdirSync(dir).sort(), [
    'results.json',
    'samples_gsm8k_cot_0shot.jsonl',
    'samples_gsm8k_cot_8shot.jsonl',
    'samples_mmlu_anatomy.jsonl',
    'samples_super_ni.jsonl',
  ]);
  assert.equal(paths.at(-1), join(dir, 'results.json'));
  assert.deepEqual(
    JSON.parse(readFileSync(join(dir, 'results.json'), 'utf8')),
    JSON.parse(JSON.stringify(R)),
  );
  const lines = readFileSync(join(dir, 'samples_gsm8k_cot_8shot.jsonl'), 'utf8')
    .trimEnd()
    .split('\n')
    .map((l) => JSON.parse(l));
  // lm-eval's saved records: one per document and filter
  assert.equal(lines.length, 4);
  assert.deepEqual(
    lines.map((l) => [l.doc_id, l.filter, l.exact_match]),
    [
      [0, 'strict-match', 1],
      [1, 'strict-match', 0],
      [0, 'flexible-extract', 1],
      [1, 'flexible-extract', 0],
    ],
  );
  assert.ok(lines[0].arguments.gen_args_0.arg_0.endsWith('\nA:'));
  assert.equal(lines[0].arguments.gen_args_0.arg_1.max_gen_toks, 256);
});

test('results: a stderr that cannot be computed is "N/A"; a duplicated task is refused', () => {
  const base = { version: 1, nShot: 0, nSamples: { original: 1, effective: 1 }, config: {}, samples: [] };
  const r = buildResults(
    [
      {
        ...base,
        task: 't',
        metrics: [{ name: 'acc', filter: 'none', value: 1, stderr: null, higherIsBetter: true }],
      },
    ],
    {},
  );
  assert.equal(r.results.t['acc,none'], 1);
  assert.equal(r.results.t['acc_stderr,none'], 'N/A');
  assert.throws(
    () =>
      buildResults(
        [
          { ...base, task: 't', metrics: [] },
          { ...base, task: 't', metrics: [] },
        ],
        {},
      ),
    /appears twice/,
  );
  assert.match(r.nuggets_version, /^\d+\.\d+\.\d+/);
});

test('perplexity: corpus-level token, word and byte figures from loglikelihoodRolling', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'eval-ppl-'));
  const p = join(dir, 't.txt');
  writeFileSync(p, 'one two three\n===\nfour five\n===\n  \n');
  // the scripted model: 2 nats per token, one token per word plus one
  const lm = new ScriptedLM('ppl', undefined, undefined, (r) => {
    const tokens = r.text.trim().split(/\s+/).length + 1;
    return { logprob: -2 * tokens, tokens };
  });
  const run = await runEval(lm, { tasks: [`perplexity:${p}`], perplexitySeparator: '\n===\n' });
  const res = run.results.results.perplexity;
  // documents "one two three" (4 tokens, 3 words, 13 bytes) and "four five" (3 tokens, 2 words, 9 bytes); the blank one is dropped
  const ll = -2 * (4 + 3);
  assert.equal(res['nll_per_token,none'], 2);
  assert.ok(Math.abs((res['token_perplexity,none'] as number) - Math.exp(2)) < 1e-12);
  assert.ok(Math.abs((res['word_perplexity,none'] as number) - Math.exp(-ll / 5)) < 1e-12);
  assert.ok(Math.abs((res['byte_perplexity,none'] as number) - Math.exp(-ll / 22)) < 1e-12);
  assert.ok(Math.abs((res['bits_per_byte,none'] as number) - -ll / 22 / Math.LN2) < 1e-12);
  assert.deepEqual(run.results['n-samples'].perplexity, { original: 2, effective: 2 });
  // a model without loglikelihoodRolling gets a clear error
  await assert.rejects(
    runEval(new ScriptedLM('plain'), { tasks: [`perplexity:${p}`] }),
    /model "plain" does not implement loglikelihoodRolling/,
  );
});

test('an adapter that answers the wrong number of requests is caught', async () => {
  const lm = new ScriptedLM('broken');
  lm.generate = async (reqs) => reqs.slice(1).map(() => 'x');
  await assert.rejects(
    runEval(lm, { tasks: ['gsm8k'], limit: 2 }),
    /model "broken": generate returned 1 results for 2 requests/,
  );
});

test('chat format: a template function is applied to every prompt', async () => {
  const prompts: string[] = [];
  const lm = new ScriptedLM('chat', (r) => (prompts.push(r.prompt), ' 1'));
  await runEval(lm, {
    tasks: ['gsm8k_cot'],
    limit: 1,
    shots: 0,
    chatFormat: (u) => `<s>[INST] ${u} [/INST]`,
  });
  assert.equal(prompts.length, 1);
  assert.ok(prompts[0].startsWith('<s>[INST] Answer the following question.\n\nQuestion: Janet'));
  assert.ok(prompts[0].endsWith(' [/INST] Answer:'));
});

test("gsm8k is lm-eval's: 5 train shots drawn as Python's Random(1234).sample draws them, #### scoring, lm-eval files", async () => {
  const train = loadGsm8k(join(DATA, 'gsm8k', 'train.jsonl'));
  const test = loadGsm8k(join(DATA, 'gsm8k', 'test.jsonl'));
  const prompts: string[] = [];
  // right on the first question (in lm-eval's "#### N" form), a bare number on the second
  const lm = new ScriptedLM('scripted', (r) => {
    prompts.push(r.prompt);
    return r.prompt.endsWith(`Question: ${test[0].question}\nAnswer:`)
      ? ' She makes 9 * 2 = $18.\n#### 18\n\nQuestion: more'
      : ' 4';
  });
  const run = await runEval(lm, { tasks: ['gsm8k'], limit: 2 });
  // python3: r = random.Random(1234); [r.sample(range(7473), 5) for _ in range(2)]
  const draws = [
    [6374, 3610, 957, 61, 742],
    [7462, 6610, 4769, 286, 5501],
  ];
  prompts.forEach((p, i) => {
    const shots = draws[i]
      .map((j) => `Question: ${train[j].question}\nAnswer: ${train[j].answer}\n\n`)
      .join('');
    assert.equal(p, shots + `Question: ${test[i].question}\nAnswer:`);
  });
  const R = run.results;
  assert.equal(R.results.gsm8k['exact_match,strict-match'], 0.5);
  // flexible-extract takes the last number: "4" is wrong (gold 3), "18" right
  assert.equal(R.results.gsm8k['exact_match,flexible-extract'], 0.5);
  assert.equal(R.versions.gsm8k, 3);
  assert.equal(R['n-shot'].gsm8k, 5);
  assert.deepEqual(R.configs.gsm8k.generation_kwargs, {
    until: ['Question:', '</s>', '<|im_end|>'],
    do_sample: false,
    temperature: 0,
    max_gen_toks: 256,
  });
  // lm-eval's top-level keys
  for (const k of [
    'results',
    'groups',
    'group_subtasks',
    'configs',
    'versions',
    'n-shot',
    'higher_is_better',
    'n-samples',
    'config',
    'git_hash',
    'date',
    'task_hashes',
    'model_name',
    'start_time',
    'end_time',
    'total_evaluation_time_seconds',
  ])
    assert.ok(k in R, k);
  assert.equal(typeof R.total_evaluation_time_seconds, 'string');
  assert.ok(R.end_time >= R.start_time);
  assert.match(R.task_hashes.gsm8k, /^[0-9a-f]{64}$/);

  const dir = mkdtempSync(join(tmpdir(), 'eval-lmeval-'));
  writeEvalOutputs(dir, R, run.tasks);
  const lines = readFileSync(join(dir, 'samples_gsm8k.jsonl'), 'utf8')
    .trimEnd()
    .split('\n')
    .map((l) => JSON.parse(l) as Record<string, unknown>);
  assert.deepEqual(Object.keys(lines[0]), [
    'doc_id',
    'doc',
    'target',
    'arguments',
    'resps',
    'filtered_resps',
    'filter',
    'metrics',
    'exact_match',
    'doc_hash',
    'prompt_hash',
    'target_hash',
  ]);
  // the text up to the stop string "Question:"
  assert.deepEqual(lines[0].resps, [[' She makes 9 * 2 = $18.\n#### 18\n\n']]);
  assert.deepEqual(lines[0].filtered_resps, ['18']);
  assert.deepEqual(lines[3].filtered_resps, ['4']);
  // python3: hashlib.sha256(json.dumps(doc, indent=2, ensure_ascii=False)) and of str(target)
  assert.equal(lines[0].doc_hash, '986c19252f3c7f6eaeff2229e9a5777f96a85c0ceea931a92d2289084dfd518c');
  assert.equal(lines[0].target_hash, '623a0fbdf774fcb55e485a3e6b012e6c3965616af5b8eb9b9aebd2f6712be2eb');
  assert.equal(lines[0].prompt_hash, createHash('sha256').update(prompts[0]).digest('hex'));
});

test('lm-eval exact_match normalisation and filters for gsm8k', () => {
  assert.equal(strictMatch('so 5.\n#### 1,234.\nmore #### 7'), '1,234.');
  assert.equal(strictMatch('The answer is 5.'), '[invalid]');
  assert.equal(flexibleExtract('it costs $1,200 then 7 apples'), '7');
  assert.equal(flexibleExtract('it costs $1,200.'), '$1,200.');
  assert.equal(flexibleExtract('no digits'), '[invalid]');
  assert.equal(gsm8kExactMatch('$1,200.', 'work <<a=b>>\n#### 1200'), 1);
  assert.equal(gsm8kExactMatch('1200.0', 'x\n#### 1200'), 0); // no numeric comparison in lm-eval's gsm8k
  assert.equal(emNormalize('A.\n'), 'a\n'); // Python's "$" matches before a final newline
  assert.equal(
    gsm8kLmEvalPrompt({ question: 'q?' }, [{ question: 'a?', answer: 'b\n#### 1' }]),
    'Question: a?\nAnswer: b\n#### 1\n\nQuestion: q?\nAnswer:',
  );
});

test('MMLU samples are written in lm-eval form, hashes as Python computes them; Python str() of floats', async () => {
  const lm = new ScriptedLM('s', undefined, (r) => ({
    logprob: r.continuation === ' A' ? -1.5e-5 : -2,
    greedy: r.continuation === ' A',
  }));
  const run = await runEval(lm, { tasks: ['mmlu_anatomy'], limit: 1 });
  const dir = mkdtempSync(join(tmpdir(), 'eval-mmlu-out-'));
  writeEvalOutputs(dir, run.results, run.tasks);
  const line = JSON.parse(readFileSync(join(dir, 'samples_mmlu_anatomy.jsonl'), 'utf8')) as Record<
    string,
    unknown
  >;
  assert.equal(line.doc_hash, 'db3e0248b1e7550821a198960ad9d303b6f810052e113cbb2f196ac2d26dda82');
  assert.equal(line.target, '0');
  assert.equal(line.target_hash, '5feceb66ffc86f38d952786c6d696c79c2dbc239dd4e91b46729d73a27fb57e9');
  assert.deepEqual(line.filtered_resps, [
    ['-1.5e-05', 'True'],
    ['-2.0', 'False'],
    ['-2.0', 'False'],
    ['-2.0', 'False'],
  ]);
  assert.deepEqual((line.arguments as Record<string, Record<string, string>>).gen_args_3.arg_1, ' D');
  assert.equal(pyStr(-12.345678901234567), '-12.345678901234567');
  assert.equal(pyStr(-0.5), '-0.5');
});
