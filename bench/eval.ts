/**
 * Batched generation in the evaluation harness (src/eval/model-lm.ts): ModelLM.generate (the EvalLM
 * adapter behind `nuggets eval`) on a ~110M-parameter LLaMA (d 768, 12 layers, 12 heads of 64, MLP
 * 2048, vocab 32000, tied embeddings, random weights), 8 greedy requests with prompts of 16..44
 * tokens and 24 new tokens each, run as ONE batch (left-padded, KV cache) versus one request at a
 * time. Figure: generated tokens per second, prefill included (what an eval run sees), best of two
 * interleaved rounds; ratio batch 8 / batch 1, target >= 2.
 *
 * EOS is switched off so every request generates its full budget (a random model would stop at
 * random places, making the two runs do different work). A byte-level toy tokenizer stands in for a
 * real one (the model's vocabulary is random anyway). The batched texts are checked equal to the
 * one-at-a-time texts, so the speed-up is not bought with different outputs.
 */
import type { Recorder } from './lib.js';
import { benchWeights } from './llama.js';
import type { ModelConfig } from '../src/model/config.js';
import { LlamaModel } from '../src/model/model.js';
import { tinyConfig } from '../src/model/random.js';
import { kernels } from '../src/engine/backend.js';
import { ModelLM } from '../src/eval/model-lm.js';
import type { GenerateRequest } from '../src/eval/lm.js';
import type { Tokenizer } from '../src/model/tokenizer.js';

const BATCH = 8;
const NEW_TOKENS = 24;
const ROUNDS = 2;

export const CONFIG: ModelConfig = tinyConfig({
  vocabSize: 32000,
  hiddenSize: 768,
  intermediateSize: 2048,
  numLayers: 12,
  numHeads: 12,
  numKvHeads: 12,
  headDim: 64,
  maxPositionEmbeddings: 512,
  tieWordEmbeddings: true,
  bosTokenId: 1,
  eosTokenId: [],
  padTokenId: 0,
});

/** Bytes as ids 3..258 (llama2.c's byte-fallback layout), BOS 1; other ids decode to "?". */
export const byteTokenizer: Tokenizer = {
  vocabSize: 259,
  bosId: 1,
  eosId: 2,
  chatTemplate: null,
  encode: (text, opts = {}) => [...(opts.addBos ? [1] : []), ...Buffer.from(text, 'utf8').map((b) => b + 3)],
  decode: (ids, opts = {}) =>
    ids
      .filter((id) => !(opts.skipSpecial && id < 3))
      .map((id) => (id >= 3 && id < 259 ? String.fromCharCode(id - 3) : '?'))
      .join(''),
  tokenText: (id) => (id >= 3 && id < 259 ? String.fromCharCode(id - 3) : '?'),
};

export function requests(): GenerateRequest[] {
  const base = 'Question: how many apples are left after lunch? Answer:';
  return Array.from({ length: BATCH }, (_, i) => ({
    prompt: `${i}. ${base.slice(0, 12 + 4 * i)}`,
    maxTokens: NEW_TOKENS,
    stop: [],
    temperature: 0,
    seed: i,
  }));
}

export async function run(rec: Recorder): Promise<void> {
  const model = LlamaModel.load({ config: CONFIG, weights: benchWeights(CONFIG, 'bench-eval') });
  const lm = new ModelLM(model, byteTokenizer, { name: 'bench-110M' });
  const reqs = requests();
  rec.note(
    `backend ${kernels().name}; ${(model.params.count() / 1e6).toFixed(1)}M parameters; ${BATCH} requests, prompts ${reqs.map((r) => byteTokenizer.encode(r.prompt, { addBos: true }).length).join('/')} tokens, ${NEW_TOKENS} new tokens each`,
  );
  // warm-up: JIT, BLAS threads, buffers
  await lm.generate([{ ...reqs[0], maxTokens: 2 }]);

  // interleaved rounds, best of each: a burst of load from other processes hits both sides alike
  let tBatch = Infinity;
  let tSingle = Infinity;
  let batched: string[] = [];
  const single: string[] = [];
  for (let round = 0; round < ROUNDS; round++) {
    let t0 = performance.now();
    batched = await lm.generate(reqs);
    tBatch = Math.min(tBatch, (performance.now() - t0) / 1000);
    t0 = performance.now();
    single.length = 0;
    for (const r of reqs) single.push(...(await lm.generate([r])));
    tSingle = Math.min(tSingle, (performance.now() - t0) / 1000);
  }

  const tokens = BATCH * NEW_TOKENS;
  const same = batched.every((t, i) => t === single[i]);
  rec.note(
    `batched texts ${same ? 'equal' : 'DIFFER FROM'} the one-at-a-time texts; ${tBatch.toFixed(2)} s vs ${tSingle.toFixed(2)} s`,
  );
  const one = rec.record('eval generate tokens/s, batch 1 (110M)', tokens / tSingle, 'tokens/s');
  rec.record(`eval generate tokens/s, batch ${BATCH} (110M)`, tokens / tBatch, 'tokens/s', {
    name: one.name,
    value: one.value,
  });
}
