/**
 * The one interface the evaluation harness needs from a model. Semantics follow
 * lm-evaluation-harness (`generate_until`, `loglikelihood`, `loglikelihood_rolling`), so a model
 * adapter is a thin layer over tokenizer + forward pass + sampler:
 *
 * - `generate`: continue each prompt for at most `maxTokens` new tokens; stop early at EOS or at the
 *   first occurrence of any `stop` string, which is NOT included in the returned text (the harness
 *   also truncates defensively, see truncateAtStop). temperature 0 means greedy decoding; otherwise
 *   sample with that temperature from an RNG seeded by `seed` (same seed, same text). The text is the
 *   exact continuation of the prompt, leading whitespace included (HumanEval indentation needs it).
 * - `loglikelihood`: the summed log-probability (natural log) of the tokens of `continuation` given
 *   `context`, and whether every continuation token is the argmax (greedy) prediction. Context and
 *   continuation are tokenised as lm-eval does: encode(context + continuation) and split where the
 *   context's own encoding ends, so a leading space belongs to the continuation. An empty context
 *   means "conditioned on BOS only".
 * - `loglikelihoodRolling` (optional; needed only by the perplexity task): the log-probability of a
 *   whole text, as lm-eval's loglikelihood_rolling computes it: the text's tokens are cut into
 *   disjoint windows of the model's context length, the first conditioned on BOS, each later window
 *   on the context-length run of tokens before its last token; plus the number of tokens scored, so
 *   token-level perplexity can be reported next to the tokenizer-free byte/word figures.
 *
 * Results are returned in request order. Adapters may batch internally; the harness sends batches of
 * `batchSize` requests per call.
 */

export interface GenerateRequest {
  prompt: string;
  maxTokens: number;
  stop: string[];
  temperature: number;
  seed: number;
}

export interface LoglikelihoodRequest {
  context: string;
  continuation: string;
}

export interface LoglikelihoodResult {
  logprob: number;
  greedy: boolean;
}

export interface RollingRequest {
  text: string;
}

export interface RollingResult {
  logprob: number;
  /** Number of tokens whose log-probability is summed in `logprob`. */
  tokens: number;
}

export interface EvalLM {
  name: string;
  generate(reqs: GenerateRequest[]): Promise<string[]>;
  loglikelihood(reqs: LoglikelihoodRequest[]): Promise<LoglikelihoodResult[]>;
  loglikelihoodRolling?(reqs: RollingRequest[]): Promise<RollingResult[]>;
}

/** Cuts `text` at the first occurrence of any stop string (the stop string itself is dropped). */
export function truncateAtStop(text: string, stop: readonly string[]): string {
  let cut = text.length;
  for (const s of stop) {
    if (s === '') continue;
    const i = text.indexOf(s);
    if (i >= 0 && i < cut) cut = i;
  }
  return text.slice(0, cut);
}

/**
 * Calls the LM in batches of `batchSize`, checks that every call answers exactly as many requests as
 * it was given (an adapter bug otherwise shows up as silently shifted scores), and reports progress.
 */
export async function inBatches<Q, R>(
  lmName: string,
  what: string,
  reqs: readonly Q[],
  batchSize: number,
  call: (batch: Q[]) => Promise<R[]>,
  onDone?: (done: number, total: number) => void,
): Promise<R[]> {
  const size = Math.max(1, Math.floor(batchSize));
  const out: R[] = [];
  for (let i = 0; i < reqs.length; i += size) {
    const batch = reqs.slice(i, i + size);
    const res = await call(batch);
    if (!Array.isArray(res) || res.length !== batch.length) {
      throw new Error(
        `model "${lmName}": ${what} returned ${Array.isArray(res) ? res.length : typeof res} results for ${batch.length} requests`,
      );
    }
    out.push(...res);
    onDone?.(out.length, reqs.length);
  }
  return out;
}

/** generate() in batches, with stop strings enforced on the returned text. */
export async function generateAll(
  lm: EvalLM,
  reqs: readonly GenerateRequest[],
  batchSize: number,
  onDone?: (done: number, total: number) => void,
): Promise<string[]> {
  const outs = await inBatches(lm.name, 'generate', reqs, batchSize, (b) => lm.generate(b), onDone);
  return outs.map((o, i) => {
    if (typeof o !== 'string')
      throw new Error(`model "${lm.name}": generate returned a ${typeof o}, not a string`);
    return truncateAtStop(o, reqs[i].stop);
  });
}

/** loglikelihood() in batches, checking that each answer is a number (finite or -Infinity). */
export async function loglikelihoodAll(
  lm: EvalLM,
  reqs: readonly LoglikelihoodRequest[],
  batchSize: number,
  onDone?: (done: number, total: number) => void,
): Promise<LoglikelihoodResult[]> {
  const outs = await inBatches(lm.name, 'loglikelihood', reqs, batchSize, (b) => lm.loglikelihood(b), onDone);
  for (const o of outs) {
    if (!o || typeof o.logprob !== 'number' || Number.isNaN(o.logprob) || o.logprob > 1e-9) {
      throw new Error(
        `model "${lm.name}": loglikelihood returned an invalid log-probability ${JSON.stringify(o)}`,
      );
    }
  }
  return outs;
}
