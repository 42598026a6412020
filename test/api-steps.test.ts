/**
 * The library API (src/index.ts) in this process: options are validated by the command schemas with
 * the defaults applied, mistakes are InputErrors in the words of an options object (keys, not flags),
 * and a step called through the library gives what the command gives.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  DEFAULT_SEED,
  InputError,
  evaluate,
  generate,
  generateTokens,
  loadModel,
  parseOptions,
  train,
  type GenerateInput,
} from '../src/index.js';
import { cliBatch } from './helpers/cli.js';

const tmp = mkdtempSync(join(tmpdir(), 'nuggets-api-'));
const STUDENT = 'zoo/student-tiny';

/** Asserts that fn throws an InputError with this source and a problem matching `problem`. */
function refuses(fn: () => unknown, source: string, problem: RegExp): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof InputError, String(e));
    assert.equal(e.source, source);
    assert.match(e.problem, problem);
    return true;
  });
}

test('options: defaults applied by the schema; mistakes named by key, with the closest valid key', () => {
  const o = parseOptions('train', { student: 's', data: 'd', out: 'o' });
  assert.equal(o.epochs, 3);
  assert.equal(o.learningRate, 3e-4);
  assert.deepEqual(o.modules, ['all']);
  assert.equal(o.seed, DEFAULT_SEED);
  refuses(
    () => train({ student: 's', data: 'd', out: 'o', rank: 0 }),
    'train options',
    /^rank: must be >=1$/,
  );
  refuses(() => train({ data: 'd', out: 'o' } as never), 'train', /^student is required \(student model/);
  refuses(
    () => generate({ model: STUDENT, temprature: 1 } as never),
    'generate',
    /^unknown option\(s\) temprature \(did you mean "temperature"\?\)$/,
  );
  refuses(
    () => parseOptions('eval', { model: 'm', tasks: [], out: 'o' }),
    'eval options',
    /^tasks: needs at least 1 value\(s\)$/,
  );
  refuses(() => generate({ model: join(tmp, 'missing') }), join(tmp, 'missing'), /no such file or folder/);
});

test('generate through the library == the command == generateTokens on a loaded model', async () => {
  const input: GenerateInput = { model: STUDENT, prompt: 'Once upon a time', maxNewTokens: 12 };
  let streamed = '';
  const r = generate({ ...input, onText: (t) => (streamed += t) });
  assert.equal(streamed, r.text);
  assert.ok(r.tokens > 0 && r.tokens <= 12);
  assert.ok(r.promptTokens > 1);

  const [cli] = cliBatch([['generate', STUDENT, '--prompt', 'Once upon a time', '--max-new-tokens', '12']]);
  assert.equal(cli.code, 0, cli.err);
  assert.equal(cli.out, r.text + '\n');

  const { model, tokenizer, info } = loadModel(STUDENT);
  assert.equal(info.format, 'hf');
  assert.equal(info.adapter, null);
  const ids = tokenizer.encode('Once upon a time', { addBos: true });
  const [low] = generateTokens(model, [ids], { maxNewTokens: 12, seed: DEFAULT_SEED });
  assert.equal(low.tokens.length, r.tokens);
  assert.equal(tokenizer.decode(low.tokens).trim(), r.text.trim());
});

test('evaluate writes the results file it returns, and prints nothing unless asked', async () => {
  const out = join(tmp, 'results.json');
  let printed = '';
  const res = await evaluate(
    {
      model: STUDENT,
      tasks: ['super_ni:tasks/facts/test.jsonl'],
      limit: 3,
      maxNewTokens: 4,
      out,
      progress: false,
    },
    { err: { write: (s: string) => (printed += s) } },
  );
  assert.deepEqual(JSON.parse(readFileSync(out, 'utf8')), JSON.parse(JSON.stringify(res)));
  assert.equal(res['n-samples'].super_ni.effective, 3);
  assert.equal(res.config.seed, DEFAULT_SEED);
  assert.match(printed, /^results: /);
});
