/**
 * The bounded job queue in front of the model worker (src/serve/scheduler.ts), with the real worker
 * thread on stories260K: one job runs, `maxQueue` wait, the next is a 429 at once; queued and
 * running jobs can be cancelled; a bad prompt fails only its own job; a crashed worker fails its
 * running job with a 500 and is restarted, after which jobs run again; a bad model path is an
 * InputError from start().
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { InputError } from '../src/errors.js';
import { Cancelled } from '../src/serve/engine.js';
import { ApiError, parseCompletionRequest } from '../src/serve/protocol.js';
import { Scheduler } from '../src/serve/scheduler.js';
import { ModelLM } from '../src/eval/model-lm.js';
import { readLlama2c } from '../src/io/llama2c.js';
import { Llama2cTokenizer } from '../src/io/tokenizer-llama2c.js';
import { LlamaModel } from '../src/model/model.js';
import { STORIES260K } from './model-helpers.js';

const CKPT = join(STORIES260K, 'checkpoint_legacy.bin');
const req = (prompt: string, maxTokens: number) =>
  parseCompletionRequest({ model: 'm', prompt, max_tokens: maxTokens, temperature: 0 });

test('queue bound, cancellation, per-job errors, crash recovery', async () => {
  const logs: string[] = [];
  const s = new Scheduler({ engine: { model: CKPT, name: 'm' }, maxQueue: 2, log: (l) => logs.push(l) });
  const info = await s.start();
  assert.equal(info.name, 'm');
  assert.equal(info.contextLength, 512);
  const lm = new ModelLM(
    LlamaModel.load(readLlama2c(CKPT)),
    Llama2cTokenizer.fromFile(join(STORIES260K, 'tokenizer.bin'), 512),
  );
  const [expect] = await lm.generate([
    { prompt: 'Tom had a', maxTokens: 12, stop: [], temperature: 0, seed: 0 },
  ]);
  try {
    // the worker cannot finish anything while this synchronous block runs: A runs, B and C wait, D is refused
    const a = s.submit(req('Once upon a time', 400));
    const b = s.submit(req('Lily', 400));
    const c = s.submit(req('Tom had a', 12));
    assert.throws(
      () => s.submit(req('x', 1)),
      (e: ApiError) =>
        e.status === 429 &&
        e.code === 'queue_full' &&
        e.type === 'rate_limit_error' &&
        /2 requests are already waiting/.test(e.message),
    );
    assert.equal(s.waiting, 2);
    assert.equal(s.busy, true);
    b.cancel(); // queued: dropped at once
    await assert.rejects(b.result, Cancelled);
    a.cancel(); // running: stopped at its next token
    await assert.rejects(a.result, Cancelled);
    const rc = await c.result;
    assert.equal(rc.choices[0].text, expect);
    // a prompt that does not fit fails alone, as a 400
    const bad = s.submit(req('Once upon a time there was a cat. '.repeat(60), 4));
    const good = s.submit(req('Tom had a', 12));
    await assert.rejects(
      bad.result,
      (e: ApiError) => e.status === 400 && e.code === 'context_length_exceeded',
    );
    assert.equal((await good.result).choices[0].text, expect);

    // the worker dies mid-job: that job is a 500, the worker comes back, the next job runs
    const doomed = s.submit(req('Once upon a time', 400));
    const waiting = s.submit(req('Tom had a', 12));
    await (s as unknown as { worker: { terminate(): Promise<number> } }).worker.terminate();
    await assert.rejects(
      doomed.result,
      (e: ApiError) => e.status === 500 && /stopped unexpectedly/.test(e.message),
    );
    assert.equal((await waiting.result).choices[0].text, expect);
    assert.ok(logs.some((l) => l.includes('restarting the model worker')));
  } finally {
    await s.close();
  }
  assert.throws(
    () => s.submit(req('x', 1)),
    (e: ApiError) => e.status === 503,
  );
});

test('a model that cannot be loaded is an InputError from start()', async () => {
  const s = new Scheduler({ engine: { model: join(STORIES260K, 'no-such-model.bin') }, maxQueue: 1 });
  await assert.rejects(
    s.start(),
    (e: unknown) =>
      e instanceof InputError && /no-such-model\.bin: no such file or folder/.test((e as Error).message),
  );
  await s.close();
});

test('a worker that keeps crashing is given up: its job is a 500, queued and new jobs are 503 naming why', async () => {
  const logs: string[] = [];
  const s = new Scheduler({
    engine: { model: CKPT, name: 'm' },
    maxQueue: 2,
    maxRestarts: 0,
    log: (l) => logs.push(l),
  });
  await s.start();
  try {
    const doomed = s.submit(req('Once upon a time', 400));
    const queued = s.submit(req('Tom had a', 12));
    await (s as unknown as { worker: { terminate(): Promise<number> } }).worker.terminate();
    await assert.rejects(
      doomed.result,
      (e: ApiError) => e.status === 500 && /stopped unexpectedly/.test(e.message),
    );
    const unavailable = (e: ApiError) =>
      e.status === 503 &&
      e.code === 'model_unavailable' &&
      /^the model is unavailable: .*stopped unexpectedly.*; gave up after 0 restarts$/.test(e.message);
    await assert.rejects(queued.result, unavailable);
    assert.throws(() => s.submit(req('x', 1)), unavailable);
    assert.ok(!logs.some((l) => l.includes('restarting the model worker')));
  } finally {
    await s.close();
  }
});
