/**
 * Perplexity of a text file, through the optional EvalLM.loglikelihoodRolling (whole documents scored
 * in disjoint windows of the model's context, lm-eval's loglikelihood_rolling; the first token
 * conditioned on BOS). A model adapter that lacks the method gets a clear error.
 *
 * Documents: the whole file is one document unless a separator is given (e.g. "\n\n" or
 * "<|endoftext|>"); empty documents are dropped; `limit` keeps the first N documents.
 * Metrics, all corpus-level ratios (lm-eval's wikitext conventions plus token figures), so no stderr:
 * - nll_per_token: -sum(logprob) / sum(tokens) in nats; token_perplexity = exp(nll_per_token);
 * - word_perplexity: exp(-sum(logprob) / words), words = whitespace-separated pieces;
 * - byte_perplexity: exp(-sum(logprob) / UTF-8 bytes); bits_per_byte = -sum(logprob) / bytes / ln 2.
 * Token figures depend on the tokenizer; byte and word figures compare across model families.
 */
import { InputError } from '../../errors.js';
import { readText } from '../../io/text.js';
import { inBatches, type RollingResult } from '../lm.js';
import type { SampleRecord, TaskResult } from '../results.js';
import { applyLimit, type TaskContext } from '../task.js';

export interface PerplexityOptions {
  path: string;
  separator?: string;
  task?: string;
}

export function splitDocuments(text: string, separator?: string): string[] {
  const docs = separator === undefined || separator === '' ? [text] : text.split(separator);
  return docs.filter((d) => d.trim() !== '');
}

export async function runPerplexity(ctx: TaskContext, opts: PerplexityOptions): Promise<TaskResult> {
  const lm = ctx.lm;
  if (typeof lm.loglikelihoodRolling !== 'function') {
    throw new Error(`model "${lm.name}" does not implement loglikelihoodRolling, which the perplexity task needs`);
  }
  const all = splitDocuments(readText(opts.path, 'text file'), opts.separator);
  if (all.length === 0) throw new InputError(opts.path, 'no text to score (the file is empty or only whitespace)');
  const docs = applyLimit(all, ctx.limit);
  const res: RollingResult[] = await inBatches(
    lm.name,
    'loglikelihoodRolling',
    docs.map((text) => ({ text })),
    ctx.batchSize,
    (b) => lm.loglikelihoodRolling!(b),
    (d, t) => ctx.progress('loglikelihood_rolling', d, t),
  );
  let ll = 0;
  let tokens = 0;
  let words = 0;
  let bytes = 0;
  const samples: SampleRecord[] = docs.map((d, i) => {
    const r = res[i];
    if (!r || typeof r.logprob !== 'number' || Number.isNaN(r.logprob) || r.logprob > 1e-9 || !Number.isInteger(r.tokens) || r.tokens < 1) {
      throw new Error(`model "${lm.name}": loglikelihoodRolling returned an invalid result ${JSON.stringify(r)}`);
    }
    const w = d.split(/\s+/).filter((x) => x !== '').length;
    const b = Buffer.byteLength(d, 'utf8');
    ll += r.logprob;
    tokens += r.tokens;
    words += w;
    bytes += b;
    return { doc_id: i, chars: d.length, words: w, bytes: b, tokens: r.tokens, logprob: r.logprob };
  });
  const nllTok = -ll / tokens;
  const metric = (name: string, value: number) => ({ name, filter: 'none', value, stderr: null, higherIsBetter: false });
  return {
    task: opts.task ?? 'perplexity',
    version: 1,
    nShot: 0,
    nSamples: { original: all.length, effective: docs.length },
    metrics: [
      metric('nll_per_token', nllTok),
      metric('token_perplexity', Math.exp(nllTok)),
      metric('word_perplexity', Math.exp(-ll / words)),
      metric('byte_perplexity', Math.exp(-ll / bytes)),
      metric('bits_per_byte', -ll / bytes / Math.LN2),
    ],
    config: {
      data: opts.path,
      separator: opts.separator ?? null,
      method: 'loglikelihoodRolling: disjoint windows of the model context (lm-eval loglikelihood_rolling), first token conditioned on BOS',
      totals: { tokens, words, bytes, logprob: ll },
    },
    samples,
  };
}
