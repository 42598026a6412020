/**
 * AlpacaEval proxy: reference NLL, ROUGE-L and judged win rate plumbing, the local judge, verdict
 * parsing and URL handling of the OpenAI-compatible judge client. The client itself is tested
 * against a real `nuggets serve` process in test/serve-http.test.ts (auth, request shape checked by
 * the server's strict validation, retries on 429, verdicts equal to the model's in-process replies).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { InputError } from '../src/errors.js';
import { LocalJudge, OpenAIJudge, chatCompletionsUrl, parseVerdict, type Judge } from '../src/eval/judge.js';
import { loadAlpacaEval, runAlpacaEval } from '../src/eval/tasks/alpaca.js';
import { FIXTURES, SHARED_DATA, ScriptedLM, ctxFor } from './eval-helpers.js';

const TOY = join(FIXTURES, 'alpaca_toy.jsonl');
const toy = loadAlpacaEval(TOY);

test('the AlpacaEval set loads: 805 instructions with davinci-003 outputs (skipped when absent)', (t) => {
  const p = join(SHARED_DATA, 'alpaca_eval', 'alpaca_eval.jsonl');
  if (!existsSync(p))
    return t.skip(
      `${p} not present: AlpacaEval is research-only data, not bundled; it is read from ../shared (beside the checkout) when it is there`,
    );
  const rows = loadAlpacaEval(p);
  assert.equal(rows.length, 805);
  assert.equal(
    rows[0].instruction,
    'What are the names of some famous actors that started their careers on Broadway?',
  );
  assert.ok(
    rows[0].reference.startsWith(
      'Some famous actors that started their careers on Broadway include: \n1. Hugh Jackman',
    ),
  );
  assert.ok(rows.every((r) => r.generator === 'text_davinci_003'));
});

/** The model repeats the reference on rows 0 and 1 and says "GOOD"; on rows 2 and 3 it says "no idea". */
function toyModel(): ScriptedLM {
  return new ScriptedLM(
    'toy',
    (r) => {
      const d = toy.find((x) => r.prompt === `${x.instruction}\n`)!;
      assert.ok(d, `unexpected prompt ${JSON.stringify(r.prompt)}`);
      return toy.indexOf(d) < 2 ? `${d.reference} GOOD` : 'no idea';
    },
    // reference NLL: 0.5 nats per character of the continuation
    (r) => ({ logprob: -0.5 * r.continuation.length, greedy: false }),
  );
}

/** A judge model that prefers the shown output containing "GOOD", else the one containing "." (the references). */
function goodJudgeLM(): ScriptedLM {
  return new ScriptedLM('judge', undefined, (r) => {
    const a = /# Output \(a\):\n([\s\S]*?)\n\n# Output \(b\)/.exec(r.context)![1];
    const b = /# Output \(b\):\n([\s\S]*?)\n\n# Which is best/.exec(r.context)![1];
    const pick = (mark: string) => (a.includes(mark) ? 'Output (a)' : b.includes(mark) ? 'Output (b)' : null);
    const want = pick('GOOD') ?? pick('.');
    return { logprob: want === null ? -1 : r.continuation === want ? -0.1 : -5, greedy: false };
  });
}

test('alpaca_eval_proxy: reference NLL (per row and per byte), ROUGE-L, local-judge win rate with random sides', async () => {
  const judge = new LocalJudge(goodJudgeLM());
  const r = await runAlpacaEval(ctxFor(toyModel(), { seed: 7 }), { path: TOY, judge });
  assert.equal(r.task, 'alpaca_eval_proxy');
  assert.match(r.config.note as string, /NOT the paper's AlpacaFarm win rate/);
  const m = Object.fromEntries(r.metrics.map((x) => [x.name, x.value]));
  const lens = toy.map((d) => d.reference.length); // ASCII: characters = bytes
  assert.equal(m.ref_nll, (0.5 * lens.reduce((a, b) => a + b, 0)) / 4);
  assert.equal(m.ref_nll_per_byte, 0.5);
  // rows 0-1: the reference plus one extra token; rows 2-3: nothing in common
  const f = (n: number) => (2 * (n / (n + 1)) * 1) / (n / (n + 1) + 1);
  const n0 = 6; // the capital of france is paris
  const n1 = 1; // joyful
  assert.ok(Math.abs((m.rougeL as number) - (f(n0) + f(n1)) / 4) < 1e-12);
  // the model wins rows 0-1 and loses rows 2-3 whichever side it was shown on
  assert.equal(m.win_rate, 0.5);
  const sides = r.samples.map((s) => (s.judge as { model_shown_as: string }).model_shown_as);
  assert.ok(sides.includes('a') && sides.includes('b'), `sides ${sides}`);
  assert.deepEqual(
    r.samples.map((s) => s.win_rate),
    [1, 1, 0, 0],
  );
  // the same seed gives the same sides; the judge name is recorded
  const again = await runAlpacaEval(ctxFor(toyModel(), { seed: 7 }), { path: TOY, judge });
  assert.deepEqual(
    again.samples.map((s) => (s.judge as { model_shown_as: string }).model_shown_as),
    sides,
  );
  assert.equal((r.config.judge as { name: string }).name, 'local:judge');
});

test('alpaca_eval_proxy without a judge reports no win rate; ties count one half', async () => {
  const r = await runAlpacaEval(ctxFor(toyModel()), { path: TOY });
  assert.deepEqual(
    r.metrics.map((x) => x.name),
    ['ref_nll', 'ref_nll_per_byte', 'rougeL'],
  );
  const tieJudge: Judge = { name: 'tie', judge: async (reqs) => reqs.map(() => 'tie') };
  const t = await runAlpacaEval(ctxFor(toyModel(), { limit: 2 }), { path: TOY, judge: tieJudge });
  assert.equal(t.metrics.find((x) => x.name === 'win_rate')!.value, 0.5);
});

test('verdict parsing', () => {
  assert.equal(parseVerdict('Output (a)'), 'A');
  assert.equal(parseVerdict('output(b).'), 'B');
  assert.equal(parseVerdict('  b '), 'B');
  assert.equal(parseVerdict('Output (a) is better than Output (b)'), null);
  assert.equal(parseVerdict('I cannot decide'), null);
  assert.equal(chatCompletionsUrl('http://127.0.0.1:8000/v1/'), 'http://127.0.0.1:8000/v1/chat/completions');
  assert.equal(
    chatCompletionsUrl('https://api.example.com/v1/chat/completions'),
    'https://api.example.com/v1/chat/completions',
  );
  assert.throws(() => chatCompletionsUrl('not a url'), InputError);
  assert.throws(() => chatCompletionsUrl('ftp://x/v1'), /only http and https/);
});

test('OpenAI-compatible judge: a missing key variable is a clear error before any request', () => {
  delete process.env.NUGGETS_TEST_MISSING_KEY;
  assert.throws(
    () =>
      new OpenAIJudge({ url: 'http://127.0.0.1:1/v1', model: 'm', apiKeyEnv: 'NUGGETS_TEST_MISSING_KEY' }),
    (e: Error) =>
      e instanceof InputError &&
      e.message ===
        'environment variable NUGGETS_TEST_MISSING_KEY: is not set; it must hold the judge API key',
  );
});
