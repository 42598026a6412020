/**
 * The EvalLM adapter over a real model (stories260K, llama2.c checkpoint): log-likelihoods equal an
 * independent computation through the model's own loss, shared-context batching changes nothing,
 * rolling windows follow lm-eval, generation keeps the continuation's leading space, and the harness
 * runs end to end (perplexity on held-out TinyStories near the known 1.27 nats).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readLlama2c, toHfLayout } from '../src/io/llama2c.js';
import { Llama2cTokenizer } from '../src/io/tokenizer-llama2c.js';
import { padBatch } from '../src/model/batch.js';
import { generate } from '../src/model/generate.js';
import { LlamaModel } from '../src/model/model.js';
import { loadModelLM, ModelLM } from '../src/eval/model-lm.js';
import { InputError } from '../src/errors.js';
import { Rng } from '../src/engine/rng.js';
import { writeAdapter } from '../src/transfer/peft.js';
import { runEval } from '../src/eval/runner.js';
import { chatTemplateWrap } from '../src/eval/prompt.js';
import type { Tokenizer } from '../src/model/tokenizer.js';
import { DATA } from './eval-helpers.js';
import { randomAdapter } from './helpers/adapter.js';

const DIR = join(DATA, 'stories260k');
const tok = Llama2cTokenizer.fromFile(join(DIR, 'tokenizer.bin'), 512);
// in the HF layout, as loadModelSource imports llama2.c files
const model = LlamaModel.load(toHfLayout(readLlama2c(join(DIR, 'checkpoint_legacy.bin'))));
const lm = new ModelLM(model, tok, { name: 'stories260k' });

/** Sum of log p(ids[t] | ids[<t]) for t >= from, through model.loss (mean CE over the marked rows). */
function refLogprob(ids: number[], from: number): number {
  const input = ids.slice(0, -1);
  const batch = padBatch([input], 'right', 0);
  const targets = new Int32Array(batch.T).fill(-1);
  for (let t = from - 1; t < input.length; t++) targets[t] = ids[t + 1];
  const n = ids.length - from;
  return -model.loss(batch, targets) * n;
}

const close = (a: number, b: number, tol = 1e-4) =>
  assert.ok(Math.abs(a - b) <= tol * Math.max(1, Math.abs(b)), `${a} != ${b}`);

test('loglikelihood equals the model loss over the continuation tokens (lm-eval context/continuation split)', async () => {
  const pairs = [
    {
      context: 'Once upon a time, there was a little girl named Lily.',
      continuation: ' She loved to play outside.',
    },
    { context: 'Tom had a red ball. ', continuation: 'He threw it to the dog.' }, // trailing space moves to the continuation
    { context: '', continuation: 'Once upon a time, there was a big bear.' },
  ];
  const got = await lm.loglikelihood(pairs);
  for (let i = 0; i < pairs.length; i++) {
    let { context, continuation } = pairs[i];
    const sp = context.length - context.trimEnd().length;
    if (sp) [context, continuation] = [context.slice(0, -sp), context.slice(-sp) + continuation];
    const whole = tok.encode(context + continuation, { addBos: true });
    const ctxLen = tok.encode(context, { addBos: true }).length;
    close(got[i].logprob, refLogprob(whole, ctxLen));
    assert.ok(got[i].logprob < 0);
  }
});

test('shared contexts (MMLU letters) give the same numbers as one request at a time; greedy flag', async () => {
  const context = 'Lily saw a big dog. The dog was';
  const conts = [' happy', ' sad', ' big', ' a'];
  const together = await lm.loglikelihood(conts.map((continuation) => ({ context, continuation })));
  for (let i = 0; i < conts.length; i++) {
    const [alone] = await lm.loglikelihood([{ context, continuation: conts[i] }]);
    close(together[i].logprob, alone.logprob, 1e-5); // batch shapes differ: float32 rounding only
    assert.equal(together[i].greedy, alone.greedy);
  }
  // the greedy continuation is flagged greedy; a different one is not
  const [g] = await lm.generate([{ prompt: context, maxTokens: 6, stop: [], temperature: 0, seed: 0 }]);
  const [gl] = await lm.loglikelihood([{ context, continuation: g }]);
  assert.equal(gl.greedy, true, `greedy continuation ${JSON.stringify(g)}`);
  const [other] = await lm.loglikelihood([{ context, continuation: ' purple elephant' }]);
  assert.equal(other.greedy, false);
  assert.ok(other.logprob < gl.logprob);
});

test('generation: batched greedy equals one at a time, and the text keeps its leading space', async () => {
  const reqs = ['Lily', 'Once upon a time, there was a dog', 'Tom and Sue went to the'].map((prompt) => ({
    prompt,
    maxTokens: 20,
    stop: ['.'],
    temperature: 0,
    seed: 0,
  }));
  const batched = await lm.generate(reqs);
  for (let i = 0; i < reqs.length; i++) assert.deepEqual(await lm.generate([reqs[i]]), [batched[i]]);
  // prompt + output is exactly the text of the model's own greedy tokens after the prompt
  const ids = tok.encode('Lily', { addBos: true });
  const [raw] = generate(model, [ids], { maxNewTokens: 20, temperature: 0 });
  const full = tok.decode([...ids, ...raw.tokens], { skipSpecial: true });
  assert.ok(full.startsWith('Lily' + batched[0]), `${JSON.stringify(full)} vs ${JSON.stringify(batched[0])}`);
  assert.equal(batched[0][0], ' ');
  assert.ok(!batched.some((b) => b.includes('.')));
  // sampled generation depends only on its seed
  const s = { prompt: 'Lily', maxTokens: 15, stop: [], temperature: 1, seed: 42 };
  const [a] = await lm.generate([s]);
  const [b] = await lm.generate([{ ...reqs[0] }, s]).then((x) => [x[1]]);
  assert.equal(a, b);
});

test('sampled generation runs batched, one RNG per request: each text equals the request alone', async () => {
  const reqs = [
    { prompt: 'Lily', maxTokens: 15, stop: [], temperature: 1, seed: 42 },
    { prompt: 'Once upon a time, there was a big', maxTokens: 15, stop: [], temperature: 1, seed: 7 },
    { prompt: 'Lily', maxTokens: 15, stop: [], temperature: 1, seed: 43 },
  ];
  const together = await lm.generate(reqs);
  for (let i = 0; i < reqs.length; i++) assert.deepEqual(await lm.generate([reqs[i]]), [together[i]]);
  assert.notEqual(together[0], together[2], 'another seed, another sample');
  // the batch is one generate call with per-sequence seeds: the same as sampling each prompt with its own RNG
  const ids = tok.encode('Lily', { addBos: true });
  const [alone] = generate(model, [ids], { maxNewTokens: 15, temperature: 1, seeds: [42] });
  assert.equal(
    together[0],
    tok.decode([...ids, ...alone.tokens], { skipSpecial: true }).slice('Lily'.length),
  );
});

test('loadModelLM: name, facts, adapter attached unmerged; bad adapter folders are InputErrors', async () => {
  const { lm: loaded, info } = loadModelLM(join(DIR, 'checkpoint_legacy.bin'));
  assert.equal(loaded.name, 'checkpoint_legacy.bin');
  assert.deepEqual(info, {
    model: join(DIR, 'checkpoint_legacy.bin'),
    format: 'llama2c',
    adapter: null,
    adapterModules: 0,
    parameters: model.params.count(),
  });
  assert.equal(loaded.model.loras().size, 0);
  const [x] = await loaded.loglikelihood([{ context: 'Lily saw', continuation: ' a dog' }]);
  const [y] = await lm.loglikelihood([{ context: 'Lily saw', continuation: ' a dog' }]);
  assert.equal(x.logprob, y.logprob);
  const dir = mkdtempSync(join(tmpdir(), 'eval-adapter-'));
  const c = model.config;
  const modules = randomAdapter(['v_proj'], c, new Rng(3), { r: 2, alpha: 4, std: 0.1 });
  writeAdapter(join(dir, 'ad'), modules, c, { baseModel: null, loraDropout: 0 });
  const withAd = loadModelLM(join(DIR, 'checkpoint_legacy.bin'), { adapter: join(dir, 'ad') });
  assert.equal(withAd.lm.name, 'checkpoint_legacy.bin+ad');
  assert.equal(withAd.info.adapterModules, c.numLayers);
  // attached, not merged: the base weights are untouched and every v_proj carries its factors
  const loras = withAd.lm.model.loras();
  assert.deepEqual(
    [...loras.keys()].sort(),
    modules.map((m) => `model.layers.${m.ref.layer}.self_attn.v_proj`).sort(),
  );
  assert.deepEqual(
    withAd.lm.model.params.get('model.layers.0.self_attn.v_proj.weight').data,
    model.params.get('model.layers.0.self_attn.v_proj.weight').data,
  );
  const [z] = await withAd.lm.loglikelihood([{ context: 'Lily saw', continuation: ' a dog' }]);
  assert.notEqual(z.logprob, y.logprob);
  assert.throws(
    () => loadModelLM(join(DIR, 'checkpoint_legacy.bin'), { adapter: join(dir, 'missing') }),
    InputError,
  );
});

test('loglikelihoodRolling: one window equals loglikelihood from BOS; several windows follow lm-eval', async () => {
  const text =
    'Once upon a time, there was a little girl named Lily. She loved to play outside in the park with her dog.';
  const [r] = await lm.loglikelihoodRolling!([{ text }]);
  const [l] = await lm.loglikelihood([{ context: '', continuation: text }]);
  const toks = tok.encode(text);
  assert.equal(r.tokens, toks.length);
  close(r.logprob, l.logprob);
  // windows of 10: [BOS]+t[0:9] -> t[0:10]; then input t[end-11:end-1] -> the new tokens at its end
  const small = new ModelLM(model, tok, { maxLength: 10 });
  const [w] = await small.loglikelihoodRolling!([{ text }]);
  let expect = refLogprob([tok.bosId, ...toks.slice(0, 10)], 1);
  for (let done = 10; done < toks.length;) {
    const end = Math.min(done + 10, toks.length);
    const window = toks.slice(end - 11, end); // input = window[:-1]; targets = the last end - done tokens
    expect += refLogprob(window, window.length - (end - done));
    done = end;
  }
  close(w.logprob, expect);
  assert.ok(w.logprob < r.logprob); // less context per token than one 512-token window
});

test('chat templates: a Jinja template wraps the user turn; a BOS the template wrote is not doubled', async () => {
  const wrap = chatTemplateWrap(
    tok,
    '{{ bos_token }}{% for m in messages %}[INST] {{ m.content }} [/INST]{% endfor %}{% if add_generation_prompt %} Sure:{% endif %}',
  );
  assert.equal(wrap('Tell a story.'), `${tok.decode([tok.bosId])}[INST] Tell a story. [/INST] Sure:`);
  // a tokenizer that turns the text "<s>" into the BOS id, as Hugging Face tokenizers do
  const hfLike: Tokenizer = Object.create(tok, {
    encode: {
      value: (text: string, opts: { addBos?: boolean } = {}) =>
        text.startsWith('<s>')
          ? [...(opts.addBos ? [tok.bosId] : []), tok.bosId, ...tok.encode(text.slice(3))]
          : tok.encode(text, opts),
    },
  });
  const viaTemplate = new ModelLM(model, hfLike);
  const [a] = await viaTemplate.loglikelihood([
    { context: '<s>Once upon a time', continuation: ' there was a cat.' },
  ]);
  const [b] = await lm.loglikelihood([{ context: 'Once upon a time', continuation: ' there was a cat.' }]);
  close(a.logprob, b.logprob, 1e-6);
});

test('end to end: perplexity of held-out TinyStories is near the known 1.27 nats/token; MMLU and GSM8K run', async (t) => {
  const raw = readFileSync(join(DATA, 'tinystories', 'tinystories_val.txt'), 'utf8');
  // stories begin with "Once upon a time" (the file's first fragment is a tail; skipped)
  const stories = raw.split(/\n\n(?=Once upon a time)/).slice(1, 6);
  const dir = mkdtempSync(join(tmpdir(), 'eval-e2e-'));
  const file = join(dir, 'stories.txt');
  writeFileSync(file, stories.join('\n<|endoftext|>\n'));
  const run = await runEval(lm, {
    tasks: [`perplexity:${file}`, 'mmlu_anatomy', 'gsm8k'],
    perplexitySeparator: '\n<|endoftext|>\n',
    limit: 5,
    shots: { mmlu: 0, gsm8k: 0 },
    maxNewTokens: 8,
    batchSize: 4,
  });
  const ppl = run.results.results.perplexity;
  const nll = ppl['nll_per_token,none'] as number;
  t.diagnostic(
    `held-out TinyStories: ${nll.toFixed(4)} nats/token over ${(run.results.configs.perplexity.totals as { tokens: number }).tokens} tokens`,
  );
  assert.ok(nll > 1.1 && nll < 1.4, `nll/token ${nll}`);
  assert.equal(run.results['n-samples'].perplexity.effective, 5);
  const acc = run.results.results.mmlu_anatomy['acc,none'] as number;
  assert.ok(acc >= 0 && acc <= 1);
  assert.equal(run.results['n-samples'].gsm8k.effective, 5);
  assert.equal(run.tasks[2].samples.length, 10); // lm-eval's records: one per question and filter
  // same inputs, same numbers
  const again = await runEval(lm, { tasks: ['mmlu_anatomy'], limit: 5, shots: 0, batchSize: 8 });
  assert.equal(again.results.results.mmlu_anatomy['acc,none'], acc);
});
