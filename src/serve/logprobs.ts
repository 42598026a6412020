/**
 * Per-token log-probabilities for `nuggets serve`'s `logprobs` / `echo` (OpenAI's legacy completions
 * layout, which lm-eval's local-completions model reads to score loglikelihood tasks).
 *
 * A sequence (prompt + generated tokens) is scored in ONE forward pass over all but its last token,
 * the way src/eval/model-lm.ts scores, so a served log-probability equals `nuggets eval`'s for the
 * same tokens. Like vLLM's default (raw logprobs), the numbers are the model's own distribution:
 * temperature, top-p and top-k do not change them. Log-softmax is taken in float64 from the float32
 * logits; the lm_head runs on at most HEAD_ROWS rows at a time, so memory stays bounded for large
 * vocabularies and long prompts.
 */
import type { Tokenizer } from '../model/tokenizer.js';
import { padBatch } from '../model/batch.js';
import type { LlamaModel } from '../model/model.js';
import type { CompletionLogprobs } from './protocol.js';

const HEAD_ROWS = 256;

export interface TokenScore {
  /** log p(token | the tokens before it). */
  logprob: number;
  /** The k likeliest next tokens at this position, best first, as [id, logprob]. */
  top: [number, number][];
}

/** Scores seq[from..] (from >= 1): each token's log-probability given the tokens before it, and the top k. */
export function scoreTokens(
  model: LlamaModel,
  seq: readonly number[],
  from: number,
  k: number,
): TokenScore[] {
  if (from < 1) throw new RangeError(`scoreTokens: from must be >= 1, got ${from}`);
  if (from >= seq.length) return [];
  const input = seq.slice(0, -1);
  const batch = padBatch([input], 'right', 0);
  const h = model.hidden(batch);
  const d = model.config.hiddenSize;
  const V = model.config.vocabSize;
  const out: TokenScore[] = [];
  // row p of the hidden states predicts seq[p + 1]
  for (let p0 = from - 1; p0 < input.length; p0 += HEAD_ROWS) {
    const n = Math.min(HEAD_ROWS, input.length - p0);
    const logits = model.head.forward(h.subarray(p0 * d, (p0 + n) * d), n);
    for (let r = 0; r < n; r++) {
      const off = r * V;
      let mx = -Infinity;
      for (let v = 0; v < V; v++) if (logits[off + v] > mx) mx = logits[off + v];
      let se = 0;
      for (let v = 0; v < V; v++) se += Math.exp(logits[off + v] - mx);
      const lse = mx + Math.log(se);
      const top = topK(logits, off, V, k).map(([id, x]): [number, number] => [id, x - lse]);
      out.push({ logprob: logits[off + seq[p0 + r + 1]] - lse, top });
    }
  }
  return out;
}

/** The k largest entries of logits[off, off + V) as [index, value], largest first (ties: lower index). */
function topK(logits: Float32Array, off: number, V: number, k: number): [number, number][] {
  const best: [number, number][] = [];
  if (k <= 0) return best;
  for (let v = 0; v < V; v++) {
    const x = logits[off + v];
    if (best.length === k && x <= best[k - 1][1]) continue;
    let i = best.length < k ? best.length : k - 1;
    if (best.length < k) best.push([v, x]);
    else best[i] = [v, x];
    while (i > 0 && best[i - 1][1] < best[i][1]) {
      [best[i - 1], best[i]] = [best[i], best[i - 1]];
      i--;
    }
  }
  return best;
}

/** Prompt tokens decoded before a token to give it its text in context (leading spaces, byte pieces). */
const CONTEXT = 16;

/**
 * The text token `id` adds after `before` (the tokens preceding it): decode(tail + id) minus
 * decode(tail), as src/model/continuation.ts does for generated text; a special token (BOS, EOS),
 * which adds no text, is shown by its own token text ("<s>", "</s>") as vLLM shows it.
 */
export class TokenTexts {
  constructor(private readonly tok: Tokenizer) {}

  /** [text shown, characters added] for each candidate token at position `at` of `seq` (after seq[..at]). */
  at(seq: readonly number[], at: number, ids: readonly number[]): [string, number][] {
    const tail = seq.slice(Math.max(0, at - CONTEXT), at);
    const base = this.tok.decode(tail, { skipSpecial: true });
    return ids.map((id) => this.added(tail, base, id));
  }

  private added(tail: number[], base: string, id: number): [string, number] {
    const full = this.tok.decode([...tail, id], { skipSpecial: true });
    const text = full.startsWith(base)
      ? full.slice(base.length)
      : this.tok.decode([id], { skipSpecial: true });
    // llama2.c stores BOS/EOS as "\n<s>\n"; the marker alone is what a client expects to see
    if (text === '') return [this.tok.tokenText(id).trim() || this.tok.tokenText(id), 0];
    return [text, text.length];
  }
}

/**
 * The OpenAI logprobs object of one choice over seq[from..] (from = 0 includes the first token with
 * null log-probability: echo), given its scores (scoreTokens from max(from, 1)); offsets start at
 * `offset0` in the choice's text.
 */
export function completionLogprobs(
  texts: TokenTexts,
  seq: readonly number[],
  from: number,
  scores: readonly TokenScore[],
  offset0 = 0,
): CompletionLogprobs {
  const out: CompletionLogprobs = { tokens: [], token_logprobs: [], top_logprobs: [], text_offset: [] };
  let offset = offset0;
  for (let i = from; i < seq.length; i++) {
    const [[shown, adds]] = texts.at(seq, i, [seq[i]]);
    out.tokens.push(shown);
    out.text_offset.push(offset);
    offset += adds;
    if (i === 0) {
      out.token_logprobs.push(null);
      out.top_logprobs.push(null);
      continue;
    }
    const s = scores[i - Math.max(from, 1)];
    out.token_logprobs.push(s.logprob);
    // the k likeliest and the chosen token (vLLM's layout); two ids with one text keep the higher value
    const top: Record<string, number> = {};
    const cands: [number, number][] = [...s.top];
    if (!cands.some(([id]) => id === seq[i])) cands.push([seq[i], s.logprob]);
    const names = texts.at(
      seq,
      i,
      cands.map(([id]) => id),
    );
    cands.forEach(([, lp], j) => {
      const key = names[j][0];
      if (!(key in top) || top[key] < lp) top[key] = lp;
    });
    out.top_logprobs.push(top);
  }
  return out;
}
