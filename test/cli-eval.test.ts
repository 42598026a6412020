/**
 * `nuggets eval` through the CLI on the bundled stories260K (llama2.c checkpoint): GSM8K at two shot
 * counts, perplexity on a text file and a tiny Super-NI JSONL give the same numbers as the harness
 * called in-process with the same options; results JSON in lm-eval's shape, one samples JSONL naming
 * each record's task, plain progress lines on a non-terminal stderr, a summary table on stdout;
 * --adapter attaches a PEFT adapter unmerged and scores like the merged weights W + (alpha/r) B A;
 * a local model as the AlpacaEval judge; bad input (unknown task, missing files, no chat template)
 * is one line naming the culprit and exit code 2.
 *
 * The invocations run in ONE child process calling main(argv) in turn (tsx start-up is ~1 s each on
 * a busy machine; test/helpers/cli.ts), as test/cli-model.test.ts does.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readLlama2c, toHfLayout } from '../src/io/llama2c.js';
import { Llama2cTokenizer } from '../src/io/tokenizer-llama2c.js';
import { LlamaModel } from '../src/model/model.js';
import { Rng } from '../src/engine/rng.js';
import { ModelLM } from '../src/eval/model-lm.js';
import { lmEvalSampleLine } from '../src/eval/results.js';
import { runEval } from '../src/eval/runner.js';
import { DEFAULT_SEED } from '../src/config/schemas.js';
import { writeAdapter } from '../src/transfer/peft.js';
import { FIXTURES, ROOT } from './eval-helpers.js';
import { cliBatch, type CliResult } from './helpers/cli.js';
import { mergedWeights, randomAdapter } from './helpers/adapter.js';

const STORIES = join(ROOT, 'data', 'stories260k');
const CKPT = join(STORIES, 'checkpoint_legacy.bin');
const tmp = mkdtempSync(join(tmpdir(), 'nuggets-cli-eval-'));
const SUPERNI = join(FIXTURES, 'superni_toy.jsonl');
const ALPACA = join(FIXTURES, 'alpaca_toy.jsonl');

// ------------------------------------------------------------------ inputs

// in the HF layout, as the CLI imports llama2.c files
const src = toHfLayout(readLlama2c(CKPT));
const c = src.config;
const tok = Llama2cTokenizer.fromFile(join(STORIES, 'tokenizer.bin'), c.vocabSize);
const textFile = join(tmp, 'story.txt');
writeFileSync(
  textFile,
  'Once upon a time, there was a little girl named Lily. She loved to play outside in the park with her dog Max.\n' +
    'One day, Max saw a big red ball and ran after it. Lily laughed and ran after Max.\n',
);
// a random adapter on q_proj and down_proj of every layer, r 4, alpha 8
const adapterModules = randomAdapter(['q_proj', 'down_proj'], c, new Rng(5), { r: 4, alpha: 8, std: 0.05 });
const adapterDir = join(tmp, 'adapter');
writeAdapter(adapterDir, adapterModules, c, { baseModel: CKPT, loraDropout: 0 });

const out1 = join(tmp, 'run1', 'results.json');
const samples1 = join(tmp, 'run1', 'samples.jsonl');
const outAdapter = join(tmp, 'adapter-results.json');
const outJudge = join(tmp, 'judge-results.json');
const outHumaneval = join(tmp, 'humaneval-results.json');
const common = ['--limit', '3', '--max-new-tokens', '8', '--batch-size', '4', '--chat-format', 'plain'];

const runs: Record<string, string[]> = {
  main: [
    'eval',
    CKPT,
    '--tasks',
    `gsm8k,perplexity:${textFile},super_ni:${SUPERNI}`,
    '--shots',
    '0,1',
    ...common,
    '--output',
    out1,
    '--samples',
    samples1,
  ],
  adapter: [
    'eval',
    CKPT,
    '--adapter',
    adapterDir,
    '--tasks',
    `perplexity:${textFile}`,
    '--out',
    outAdapter,
    '--no-progress',
  ],
  judge: [
    'eval',
    CKPT,
    '--tasks',
    `alpaca_eval:${ALPACA}`,
    '--judge',
    CKPT,
    ...common,
    '--out',
    outJudge,
    '--no-progress',
  ],
  humaneval: [
    'eval',
    CKPT,
    '--tasks',
    'humaneval',
    '--limit',
    '1',
    '--humaneval-samples',
    '2',
    '--humaneval-temperature',
    '0.5',
    '--max-new-tokens',
    '6',
    '--chat-format',
    'plain',
    '--out',
    outHumaneval,
    '--no-progress',
  ],
  unknownTask: ['eval', CKPT, '--tasks', 'gsm8k,gsmk', '--out', join(tmp, 'x.json')],
  missingFile: ['eval', CKPT, '--tasks', `perplexity:${join(tmp, 'nope.txt')}`, '--out', join(tmp, 'x.json')],
  missingModel: ['eval', join(tmp, 'no-model.bin'), '--tasks', 'gsm8k', '--out', join(tmp, 'x.json')],
  noTemplate: ['eval', CKPT, '--tasks', 'gsm8k', '--chat-format', 'template', '--out', join(tmp, 'x.json')],
  tooManyShots: ['eval', CKPT, '--tasks', 'mmlu_anatomy', '--shots', '0,8', '--out', join(tmp, 'x.json')],
};
const names = Object.keys(runs);
const results = Object.fromEntries(cliBatch(Object.values(runs)).map((r, i) => [names[i], r])) as Record<
  string,
  CliResult
>;

function ok(name: string): CliResult {
  const r = results[name];
  assert.equal(r.code, 0, `${name} failed: ${r.err}`);
  return r;
}

const lm = new ModelLM(LlamaModel.load(src), tok, { name: 'ref' });
const close = (a: number, b: number, tol: number) =>
  assert.ok(Math.abs(a - b) <= tol * Math.max(1, Math.abs(b)), `${a} vs ${b}`);

// ------------------------------------------------------------------ tests

test('eval: results JSON equals the in-process harness; shot counts keyed per run; one samples JSONL', async () => {
  const r = ok('main');
  const res = JSON.parse(readFileSync(out1, 'utf8'));
  const ref = await runEval(lm, {
    tasks: ['gsm8k', `perplexity:${textFile}`, `super_ni:${SUPERNI}`],
    shots: { gsm8k: [0, 1] },
    limit: 3,
    maxNewTokens: 8,
    batchSize: 4,
    chatFormat: 'plain',
    seed: DEFAULT_SEED,
  });
  assert.deepEqual(Object.keys(res.results).sort(), ['gsm8k_0shot', 'gsm8k_1shot', 'perplexity', 'super_ni']);
  for (const task of Object.keys(ref.results.results)) {
    assert.deepEqual(res.results[task], ref.results.results[task], task);
    assert.deepEqual(res['n-samples'][task], ref.results['n-samples'][task]);
    assert.equal(res['n-shot'][task], ref.results['n-shot'][task]);
  }
  assert.equal(res['n-shot'].gsm8k_1shot, 1);
  assert.deepEqual(res['n-samples'].gsm8k_0shot, { original: 1319, effective: 3 });
  assert.equal(typeof res.results.perplexity['word_perplexity,none'], 'number');
  assert.equal(typeof res.results.super_ni['rougeL,none'], 'number');
  assert.equal(res.config.chat_format, 'plain');
  assert.equal(res.config.batch_size, 4);
  assert.deepEqual(res.config.model_info, {
    path: CKPT,
    format: 'llama2c',
    parameters: 512 * 64 + 5 * (64 * 64 * 2 + 2 * 32 * 64 + 3 * 64 * 172 + 2 * 64) + 64, // stories260K by hand (tied embeddings)
    adapter: null,
    adapter_modules: 0,
    adapter_applied: null,
    tokenizer: null,
  });
  assert.equal(typeof res.date, 'number');
  // every task's samples in one file, each record naming its task, in task order
  const lines: Array<Record<string, string>> = readFileSync(samples1, 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l));
  const expectTasks = ref.tasks.flatMap((t) => t.samples.map(() => t.task));
  assert.deepEqual(
    lines.map((l) => l.task),
    expectTasks,
  );
  assert.deepEqual(lines[0], { task: ref.tasks[0].task, ...lmEvalSampleLine(ref.tasks[0].samples[0]) });
  assert.match((lines[0] as Record<string, string>).doc_hash, /^[0-9a-f]{64}$/);
  // summary table on stdout; plain progress lines on the non-terminal stderr
  assert.match(r.out, /^\| Tasks +\| Version \| Filter +\| n-shot \| Metric +\| Value +\| Stderr +\|$/m);
  assert.match(
    r.out,
    /^\| gsm8k_1shot +\| \d+ +\| strict-match +\| 1 +\| exact_match +\| [0-9.]+ +\| ± [0-9.]+ +\|$/m,
  );
  assert.match(r.err, /^gsm8k_0shot generate 3\/3 \(100\.0%\)/m);
  assert.match(r.err, /^super_ni generate 3\/3 \(100\.0%\)/m);
  assert.match(r.err, new RegExp(`^results: ${out1.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`, 'm'));
});

test('eval --adapter: attached unmerged, scores like the merged weights W + (alpha/r) B A', async () => {
  ok('adapter');
  const res = JSON.parse(readFileSync(outAdapter, 'utf8'));
  const got = res.results.perplexity['nll_per_token,none'] as number;
  // independent reference: the adapter merged into a copy of the weights
  const merged = new ModelLM(
    LlamaModel.load({ config: c, weights: mergedWeights(src.weights, c, adapterModules) }),
    tok,
  );
  const want = (await runEval(merged, { tasks: [`perplexity:${textFile}`] })).results.results.perplexity[
    'nll_per_token,none'
  ] as number;
  close(got, want, 1e-4);
  const base = (await runEval(lm, { tasks: [`perplexity:${textFile}`] })).results.results.perplexity[
    'nll_per_token,none'
  ] as number;
  assert.ok(Math.abs(got - base) > 1e-3, `the adapter changes the score (${got} vs ${base})`);
  assert.equal(res.config.model_info.adapter, adapterDir);
  assert.equal(res.config.model_info.adapter_modules, 2 * c.numLayers);
  assert.equal(res.config.model, 'checkpoint_legacy.bin+adapter');
});

test('eval --judge with a local model: the AlpacaEval proxy runs and names its judge', () => {
  ok('judge');
  const res = JSON.parse(readFileSync(outJudge, 'utf8'));
  const r = res.results.alpaca_eval_proxy;
  assert.ok(r['win_rate,none'] >= 0 && r['win_rate,none'] <= 1);
  assert.equal(res.config.judge, `local:judge:${CKPT}`);
  assert.equal(res['n-samples'].alpaca_eval_proxy.effective, 3);
});

test('eval --humaneval-samples/--humaneval-temperature reach the task (generation only without --allow-code-execution)', () => {
  ok('humaneval');
  const res = JSON.parse(readFileSync(outHumaneval, 'utf8'));
  const gen = res.configs.humaneval.generation;
  assert.equal(gen.samples_per_problem, 2);
  assert.equal(gen.temperature, 0.5);
  assert.equal(gen.max_gen_toks, 6);
  assert.equal(res['n-samples'].humaneval.effective, 1);
  assert.equal(res.config.allow_code_execution, false);
});

test('eval: bad input is one line naming the culprit, exit code 2, nothing written', () => {
  const err = (name: string) => {
    const r = results[name];
    assert.equal(r.code, 2, `${name}: ${r.err}`);
    assert.equal(r.err.trim().split('\n').length, 1, r.err);
    return r.err;
  };
  assert.match(
    err('unknownTask'),
    /^nuggets: tasks: unknown task "gsmk"; known tasks: gsm8k, gsm8k_cot, mmlu, mmlu_<subject>, super_ni, alpaca_eval_proxy, humaneval, perplexity/,
  );
  assert.match(err('missingFile'), /nope\.txt: data file for task perplexity not found/);
  assert.match(err('missingModel'), /no-model\.bin: no such file or folder/);
  assert.match(
    err('noTemplate'),
    /checkpoint_legacy\.bin: the tokenizer has no chat template .*--chat-format tulu or plain/,
  );
  assert.match(err('tooManyShots'), /shots: mmlu_anatomy takes 0 to 5 shots, got 8/);
  assert.equal(existsSync(join(tmp, 'x.json')), false);
});
