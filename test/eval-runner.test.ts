/** runEval and the results files: task resolution and errors, lm-eval-shaped JSON, samples JSONL, perplexity. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { InputError } from '../src/errors.js';
import { buildResults, writeEvalOutputs } from '../src/eval/results.js';
import { runEval, type ProgressEvent } from '../src/eval/runner.js';
import { loadMmlu } from '../src/eval/tasks/mmlu.js';
import { DATA, FIXTURES, ScriptedLM } from './eval-helpers.js';

const SNI = join(FIXTURES, 'superni_toy.jsonl');

test('unknown task names fail before anything runs, listing the known tasks', async () => {
  const lm = new ScriptedLM('s');
  await assert.rejects(
    runEval(lm, { tasks: ['gsm8k', 'gsm8kk'] }),
    (e: Error) =>
      e instanceof InputError &&
      e.message.startsWith(
        'tasks: unknown task "gsm8kk"; known tasks: gsm8k, mmlu, mmlu_<subject>, super_ni, alpaca_eval_proxy, humaneval, perplexity',
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
  await assert.rejects(runEval(lm, { tasks: ['gsm8k', 'gsm8k_cot'] }), /task gsm8k is listed twice/);
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
      tasks: ['gsm8k', 'mmlu_anatomy', `super_ni:${SNI}`],
      shots: { gsm8k: [0, 8], mmlu: 1 },
      limit: 2,
      batchSize: 3,
      seed: 5,
    },
    (e) => events.push(e),
  );
  const R = run.results;
  assert.deepEqual(Object.keys(R.results), ['gsm8k_0shot', 'gsm8k_8shot', 'mmlu_anatomy', 'super_ni']);
  // first GSM8K question answered right, second wrong
  assert.equal(R.results.gsm8k_8shot['exact_match,strict-match'], 0.5);
  assert.equal(R.results.gsm8k_8shot['exact_match_stderr,strict-match'], 0.5);
  assert.equal(R.results.gsm8k_0shot['exact_match,flexible-extract'], 0.5);
  assert.equal(R.results.gsm8k_0shot.alias, 'gsm8k_0shot');
  assert.deepEqual(R['n-shot'], { gsm8k_0shot: 0, gsm8k_8shot: 8, mmlu_anatomy: 1, super_ni: 0 });
  assert.deepEqual(R['n-samples'].gsm8k_8shot, { original: 1319, effective: 2 });
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
  assert.equal(R.versions.gsm8k_8shot, 1);
  assert.equal(R.config.model, 'scripted');
  assert.equal(R.config.seed, 5);
  assert.equal(R.config.batch_size, 3);
  assert.equal(R.config.chat_format, 'plain');
  assert.ok(R.date >= before - 1 && R.date <= Date.now() / 1000 + 1);
  assert.equal(R.configs.super_ni.data, SNI);
  // progress: per task, done never decreases and ends at total
  for (const task of ['gsm8k_0shot', 'gsm8k_8shot', 'mmlu_anatomy', 'super_ni']) {
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
    'samples_gsm8k_0shot.jsonl',
    'samples_gsm8k_8shot.jsonl',
    'samples_mmlu_anatomy.jsonl',
    'samples_super_ni.jsonl',
  ]);
  assert.equal(paths.at(-1), join(dir, 'results.json'));
  assert.deepEqual(
    JSON.parse(readFileSync(join(dir, 'results.json'), 'utf8')),
    JSON.parse(JSON.stringify(R)),
  );
  const lines = readFileSync(join(dir, 'samples_gsm8k_8shot.jsonl'), 'utf8')
    .trimEnd()
    .split('\n')
    .map((l) => JSON.parse(l));
  assert.equal(lines.length, 2);
  assert.equal(lines[0].doc_id, 0);
  assert.equal(lines[0]['exact_match,strict-match'], 1);
  assert.ok(lines[0].arguments.prompt.endsWith('\nA:'));
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
  await runEval(lm, { tasks: ['gsm8k'], limit: 1, shots: 0, chatFormat: (u) => `<s>[INST] ${u} [/INST]` });
  assert.equal(prompts.length, 1);
  assert.ok(prompts[0].startsWith('<s>[INST] Answer the following question.\n\nQuestion: Janet'));
  assert.ok(prompts[0].endsWith(' [/INST] Answer:'));
});
