/**
 * KV-cache generation for a batch of prompts: the prompts are left-padded to one length and run in
 * one prefill step, then every step feeds one new token per sequence and attends over the cache.
 * Greedy or temperature/top-p sampling from a seeded RNG (one RNG, sequences sampled in order, so
 * a run is reproducible); each sequence stops on EOS, a stop string or its token budget.
 */
import { contextLength } from './config.js';
import { Rng } from '../engine/rng.js';
import type { Tokenizer } from './tokenizer.js';
import { padBatch, positionsFromMask } from './batch.js';
import type { LlamaModel } from './model.js';
import { checkSampling, sampleToken, type SamplingOptions } from './sampling.js';

export type FinishReason = 'eos' | 'stop' | 'length';

export interface TokenEvent {
  /** Which prompt this token belongs to. */
  seq: number;
  token: number;
  /** Text made final by this token (possibly empty: text that may still turn into a stop string, or an incomplete UTF-8 character, is held back). */
  text: string;
  /** Set on the sequence's last event. */
  finishReason: FinishReason | null;
}

export interface GenerateOptions extends SamplingOptions {
  /** Most new tokens per sequence. */
  maxNewTokens: number;
  seed?: number;
  /**
   * One RNG per sequence, seeded with seeds[b], instead of one RNG shared in sequence order: each
   * sequence's samples then depend on its own seed only, not on its batch neighbours (batched eval).
   */
  seeds?: readonly number[];
  /** Token ids that end a sequence (not included in the output). Default: the config's eos ids. */
  eosIds?: number[];
  /** Strings that end a sequence; the text is cut before the stop string. Needs `tokenizer`. */
  stop?: string[];
  /** For text output, stop strings and streaming text. */
  tokenizer?: Tokenizer;
  /** Token fed at padded places (any valid id). Default: config pad id, else 0. */
  padId?: number;
  /** Called for every generated token (EOS included, with empty text). */
  onToken?: (ev: TokenEvent) => void;
}

export interface GenerateResult {
  /** Generated ids (EOS excluded; up to and including the token that completed a stop string). */
  tokens: number[];
  /** Decoded text of `tokens`, cut before any stop string; null without a tokenizer. */
  text: string | null;
  finishReason: FinishReason;
}

/** Per-sequence text bookkeeping for stop strings and streaming. */
class TextTracker {
  emitted = 0;
  text = '';
  /** Where the first stop string begins, once one has appeared. */
  stopAt = -1;
  constructor(
    private readonly tok: Tokenizer,
    private readonly stops: string[],
  ) {}

  /** Updates with the full token list; returns [new final text, stop index in text or -1]. */
  update(tokens: number[]): { delta: string; stopAt: number } {
    this.text = this.tok.decode(tokens);
    let stopAt = -1;
    for (const s of this.stops) {
      // a stop string can only newly appear in the part not yet emitted (plus its own length back)
      const from = Math.max(0, this.emitted - s.length);
      const i = this.text.indexOf(s, from);
      if (i >= 0 && (stopAt < 0 || i < stopAt)) stopAt = i;
    }
    if (stopAt >= 0) {
      this.stopAt = stopAt;
      return { delta: this.flushTo(stopAt), stopAt };
    }
    // hold back a trailing partial character and any suffix that could begin a stop string
    let safe = this.text.length;
    while (safe > this.emitted && this.text.charCodeAt(safe - 1) === 0xfffd) safe--;
    for (const s of this.stops) {
      for (let k = Math.min(s.length - 1, safe - this.emitted); k > 0; k--) {
        if (this.text.slice(safe - k, safe) === s.slice(0, k)) {
          safe -= k;
          break;
        }
      }
    }
    return { delta: this.flushTo(safe), stopAt };
  }

  flushTo(end: number): string {
    if (end <= this.emitted) return '';
    const d = this.text.slice(this.emitted, end);
    this.emitted = end;
    return d;
  }
}

export function generate(
  model: LlamaModel,
  prompts: readonly (readonly number[])[],
  opts: GenerateOptions,
): GenerateResult[] {
  checkSampling(opts);
  const c = model.config;
  const B = prompts.length;
  if (B === 0) return [];
  prompts.forEach((p, i) => {
    if (p.length === 0)
      throw new RangeError(`prompt ${i} is empty: generation needs at least one token (e.g. BOS)`);
    if (p.length > contextLength(c))
      throw new RangeError(
        `prompt ${i} has ${p.length} tokens, more than the model's context of ${contextLength(c)}`,
      );
  });
  const maxNew = opts.maxNewTokens;
  if (!(Number.isInteger(maxNew) && maxNew >= 0))
    throw new RangeError(`maxNewTokens must be an integer >= 0, got ${maxNew}`);
  const stops = (opts.stop ?? []).filter((s) => s.length > 0);
  if (stops.length > 0 && !opts.tokenizer) throw new Error('stop strings need a tokenizer');
  const eos = new Set(opts.eosIds ?? c.eosTokenId);
  const padId = opts.padId ?? c.padTokenId ?? 0;
  const rng = new Rng(opts.seed ?? 0);
  if (opts.seeds && opts.seeds.length !== B)
    throw new RangeError(`seeds has ${opts.seeds.length} entries for ${B} prompts`);
  const rngs = opts.seeds ? opts.seeds.map((s) => new Rng(s)) : null;
  const V = c.vocabSize;

  const batch = padBatch(prompts, 'left', padId);
  const T0 = batch.T;
  const capacity = T0 + maxNew;
  const results: GenerateResult[] = prompts.map(() => ({
    tokens: [],
    text: null,
    finishReason: 'length' as FinishReason,
  }));
  const trackers = opts.tokenizer ? prompts.map(() => new TextTracker(opts.tokenizer!, stops)) : null;
  if (maxNew === 0) return finish(results, trackers);

  const cache = model.newCache(B, capacity);
  cache.mask.fill(0);
  for (let b = 0; b < B; b++)
    cache.mask.set(batch.attentionMask.subarray(b * T0, (b + 1) * T0), b * capacity);
  const nextPos = Int32Array.from(prompts, (p) => p.length);
  const done = new Uint8Array(B);
  let active = B;

  let logits = model.step(batch.ids, B, T0, positionsFromMask(batch.attentionMask, B, T0), cache);
  const ids = new Int32Array(B);
  const pos = new Int32Array(B);
  for (let step = 0; step < maxNew && active > 0; step++) {
    for (let b = 0; b < B; b++) {
      if (done[b]) continue;
      const token = sampleToken(logits, b * V, V, opts, rngs ? rngs[b] : rng);
      const r = results[b];
      let reason: FinishReason | null = null;
      let text = '';
      if (eos.has(token)) {
        reason = 'eos';
      } else {
        r.tokens.push(token);
        if (trackers) {
          const u = trackers[b].update(r.tokens);
          text = u.delta;
          if (u.stopAt >= 0) reason = 'stop';
        }
        if (!reason && r.tokens.length >= maxNew) reason = 'length';
        // the new token would sit at position nextPos[b]: past the context, it cannot be fed
        if (!reason && nextPos[b] >= contextLength(c)) reason = 'length';
      }
      if (reason) {
        r.finishReason = reason;
        done[b] = 1;
        active--;
        if (trackers && reason !== 'stop') text += trackers[b].flushTo(trackers[b].text.length);
      }
      opts.onToken?.({ seq: b, token, text, finishReason: reason });
      ids[b] = token;
    }
    if (active === 0 || step === maxNew - 1) break;
    for (let b = 0; b < B; b++) {
      pos[b] = nextPos[b]++;
      // finished sequences keep running (batch shape) on a masked pad token
      if (done[b]) ids[b] = padId;
      cache.mask[b * capacity + cache.length] = done[b] ? 0 : 1;
    }
    logits = model.step(ids, B, 1, pos, cache);
  }
  return finish(results, trackers);
}

function finish(results: GenerateResult[], trackers: TextTracker[] | null): GenerateResult[] {
  if (trackers) {
    results.forEach((r, b) => {
      const t = trackers[b];
      r.text = t.stopAt >= 0 ? t.text.slice(0, t.stopAt) : t.text;
    });
  }
  return results;
}
