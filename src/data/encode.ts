/**
 * Tokenising rendered examples into ids with an answer mask, length policy, and batching.
 *
 * SHIFT CONVENTION (read this before writing a loss):
 *   Batches carry `targets` ALIGNED TO POSITIONS: `targets[b*T + t]` is the label the model's output
 *   at position t is scored against, i.e. the NEXT token `ids[b*T + t + 1]` when that token is an
 *   answer token, and -1 (ignored) otherwise: prompt tokens, padding, the last position. The model
 *   shifts nothing: loss = mean over {t : targets[t] >= 0} of -log softmax(logits[t])[targets[t]].
 *   This equals HF's `labels` (= input_ids with -100 on the prompt) after HF's internal shift.
 *
 * Tokenisation follows the reference: the prompt and the answer are tokenised TOGETHER (a text run
 * is encoded as one string), and the answer starts at the token count of the prompt alone
 * (`len(tokenize(prompt))`, ParaKnowTransfer `calculate_sensitivity`). BOS is prepended (as
 * LlamaTokenizer does) unless the rendering already starts with one; EOS closes the answer.
 *
 * Length: sequences longer than `maxLength` are cut at the end (`truncate`, the reference's
 * `truncation=True`) or refused with every offending line listed (`refuse`). An example left with no
 * answer token to predict after truncation is skipped; both are counted in the report with lines.
 */
import { InputError } from '../errors.js';
import { Rng as RngClass, type Rng } from '../engine/rng.js';
import type { Tokenizer } from '../model/tokenizer.js';
import { renderExample, type ChatFormat, type Piece } from './chat.js';
import type { Example } from './examples.js';

export type OverflowPolicy = 'truncate' | 'refuse';

export interface EncodeOptions {
  format: ChatFormat;
  /** Maximum tokens per sequence (BOS and EOS included). Reference: 2048. */
  maxLength: number;
  overflow: OverflowPolicy;
  /** Prepend BOS when the tokenizer has one (default true, as LlamaTokenizer). */
  addBos?: boolean;
  /** Close the answer with EOS (default true). */
  addEos?: boolean;
}

export interface EncodedExample {
  /** Token ids, length <= maxLength. */
  ids: Int32Array;
  /** 1 where the token is an answer token (its prediction is trained on), 0 for prompt/BOS. */
  answerMask: Uint8Array;
  /** Answer tokens that can be predicted (answer tokens at positions >= 1): the loss denominator. */
  nTargets: number;
  /** Tokens before truncation. */
  fullLength: number;
  truncated: boolean;
  /** "file:line" and line of the source row. */
  source: string;
  line: number;
}

export interface EncodeReport {
  /** Examples read. */
  total: number;
  /** Examples returned. */
  kept: number;
  /** Lines of the examples cut to maxLength (kept or skipped). */
  truncatedLines: number[];
  /** Lines of the examples skipped because no answer token was left to predict. */
  skippedLines: number[];
  /** Answer tokens over all kept examples. */
  targetTokens: number;
  /** Tokens over all kept examples. */
  tokens: number;
}

/**
 * Tokenises pieces: returns ids and the answer mask (before any length policy).
 * `mask: false` (prompts to generate from) skips the mask: each run of text is encoded once, so the
 * cost is linear in the text. With the mask, the prefix before each change of the answer flag is
 * encoded once more (the reference's `len(tokenize(prompt))`): pieces with the same flag are joined
 * first, so the cost grows with the number of prompt/answer turns, not with the number of pieces.
 */
export function tokenizePieces(
  pieces: Piece[],
  tok: Tokenizer,
  opts: { addBos?: boolean; mask?: boolean } = {},
): { ids: number[]; mask: number[] } {
  const wantMask = opts.mask ?? true;
  const ids: number[] = [];
  const mask: number[] = [];
  const special = (which: 'bos' | 'eos', source: string): number => {
    const id = which === 'bos' ? tok.bosId : tok.eosId;
    if (id === null) throw new InputError(source, `the tokenizer has no ${which.toUpperCase()} token`);
    return id;
  };
  const first = pieces[0];
  if ((opts.addBos ?? true) && tok.bosId !== null && !(first !== undefined && 'special' in first && first.special === 'bos')) {
    ids.push(tok.bosId);
    mask.push(0);
  }
  let i = 0;
  while (i < pieces.length) {
    const p = pieces[i];
    if ('special' in p) {
      ids.push(special(p.special, 'tokenizer'));
      mask.push(p.target ? 1 : 0);
      i++;
      continue;
    }
    // A run of adjacent text pieces is tokenised as one string (merges may cross the prompt/answer
    // seam exactly as in the reference); each flag change is placed at the token count of the
    // prefix before it. Parts are collected and joined once (no repeated string growth).
    let j = i;
    const parts: string[] = [];
    let length = 0;
    const cuts: Array<{ at: number; target: boolean }> = [];
    while (j < pieces.length && 'text' in pieces[j]) {
      const q = pieces[j] as { text: string; target: boolean };
      if (cuts.length === 0 || cuts[cuts.length - 1].target !== q.target) cuts.push({ at: length, target: q.target });
      parts.push(q.text);
      length += q.text.length;
      j++;
    }
    const text = parts.join('');
    const runIds = text === '' ? [] : tok.encode(text, { addBos: false });
    const runMask = new Array<number>(runIds.length).fill(0);
    if (wantMask) {
      // token count of the prefix before each cut, each prefix encoded once
      const starts = cuts.map((c) => (c.at === 0 ? 0 : Math.min(runIds.length, tok.encode(text.slice(0, c.at), { addBos: false }).length)));
      for (let c = 0; c < cuts.length; c++) {
        if (!cuts[c].target) continue;
        const to = c + 1 < cuts.length ? starts[c + 1] : runIds.length;
        for (let t = starts[c]; t < to; t++) runMask[t] = 1;
      }
    }
    for (let t = 0; t < runIds.length; t++) {
      ids.push(runIds[t]);
      mask.push(runMask[t]);
    }
    i = j;
  }
  return { ids, mask };
}

/** Predictable answer tokens: answer tokens at positions >= 1 (position 0 has nothing before it). */
function countTargets(mask: ArrayLike<number>): number {
  let n = 0;
  for (let t = 1; t < mask.length; t++) n += mask[t];
  return n;
}

function formatLines(lines: number[], max = 20): string {
  return lines.length <= max ? lines.join(', ') : `${lines.slice(0, max).join(', ')} and ${lines.length - max} more`;
}

/**
 * Encodes examples from one file (`file` names it in errors). Deterministic; the order is kept.
 * With `overflow: 'refuse'` every over-long example is listed in one InputError.
 */
export function encodeExamples(
  examples: Example[],
  tok: Tokenizer,
  opts: EncodeOptions,
  file = examples[0]?.source.replace(/:\d+$/, '') ?? 'examples',
): { examples: EncodedExample[]; report: EncodeReport } {
  if (!Number.isInteger(opts.maxLength) || opts.maxLength < 2) {
    throw new InputError('max length', `must be an integer >= 2, got ${opts.maxLength}`);
  }
  const out: EncodedExample[] = [];
  const report: EncodeReport = { total: examples.length, kept: 0, truncatedLines: [], skippedLines: [], targetTokens: 0, tokens: 0 };
  const tooLong: Array<{ line: number; length: number }> = [];
  for (const ex of examples) {
    const { ids, mask } = tokenizePieces(renderExample(ex, opts.format, { addEos: opts.addEos }), tok, { addBos: opts.addBos });
    const fullLength = ids.length;
    const truncated = fullLength > opts.maxLength;
    if (truncated) {
      if (opts.overflow === 'refuse') {
        tooLong.push({ line: ex.line, length: fullLength });
        continue;
      }
      report.truncatedLines.push(ex.line);
    }
    const n = Math.min(fullLength, opts.maxLength);
    const enc: EncodedExample = {
      ids: Int32Array.from(ids.slice(0, n)),
      answerMask: Uint8Array.from(mask.slice(0, n)),
      nTargets: 0,
      fullLength,
      truncated,
      source: ex.source,
      line: ex.line,
    };
    enc.nTargets = countTargets(enc.answerMask);
    if (enc.nTargets === 0) {
      report.skippedLines.push(ex.line);
      continue;
    }
    report.targetTokens += enc.nTargets;
    report.tokens += n;
    out.push(enc);
  }
  if (tooLong.length > 0) {
    const longest = Math.max(...tooLong.map((t) => t.length));
    throw new InputError(
      file,
      `${tooLong.length} example(s) longer than the max length ${opts.maxLength} tokens (longest ${longest}) at line(s) ` +
        `${formatLines(tooLong.map((t) => t.line))}; raise the max length or choose the truncate policy`,
    );
  }
  report.kept = out.length;
  if (out.length === 0) {
    throw new InputError(file, `no example has an answer token left to train on (${report.skippedLines.length} skipped after truncation)`);
  }
  return { examples: out, report };
}

/** A one-line human summary of an encode report (for the CLI). */
export function describeReport(r: EncodeReport, maxLength: number): string {
  let s = `${r.kept}/${r.total} examples, ${r.tokens} tokens (${r.targetTokens} answer tokens)`;
  if (r.truncatedLines.length) s += `; ${r.truncatedLines.length} truncated to ${maxLength} tokens (lines ${formatLines(r.truncatedLines, 10)})`;
  if (r.skippedLines.length) s += `; ${r.skippedLines.length} skipped with no answer token left (lines ${formatLines(r.skippedLines, 10)})`;
  return s;
}

/** Next-token targets aligned to positions (see SHIFT CONVENTION): ids[t+1] where it is an answer token, else -1. */
export function nextTokenTargets(ids: ArrayLike<number>, answerMask: ArrayLike<number>): Int32Array {
  const out = new Int32Array(ids.length).fill(-1);
  for (let t = 0; t + 1 < ids.length; t++) if (answerMask[t + 1]) out[t] = ids[t + 1];
  return out;
}

export interface Batch {
  /** Token ids [B*T], right-padded with padId. */
  ids: Int32Array;
  /** 1 for real tokens, 0 for padding [B*T]. */
  attentionMask: Uint8Array;
  /** Next-token targets aligned to positions [B*T], -1 = ignored (see SHIFT CONVENTION). */
  targets: Int32Array;
  B: number;
  T: number;
  /** Number of targets >= 0 (the loss denominator for a mean over the batch's answer tokens). */
  nTargets: number;
  /** Source line of each row (for error messages and debugging). */
  lines: number[];
}

/** One right-padded batch from the given examples, in the given order. */
export function collate(rows: EncodedExample[], opts: { padId?: number; padMultiple?: number } = {}): Batch {
  if (rows.length === 0) throw new Error('collate: no rows');
  const padId = opts.padId ?? 0;
  const mult = Math.max(1, opts.padMultiple ?? 1);
  let T = 0;
  for (const r of rows) T = Math.max(T, r.ids.length);
  T = Math.ceil(T / mult) * mult;
  const B = rows.length;
  const ids = new Int32Array(B * T).fill(padId);
  const attentionMask = new Uint8Array(B * T);
  const targets = new Int32Array(B * T).fill(-1);
  let nTargets = 0;
  rows.forEach((r, b) => {
    ids.set(r.ids, b * T);
    attentionMask.fill(1, b * T, b * T + r.ids.length);
    const tg = nextTokenTargets(r.ids, r.answerMask);
    targets.set(tg, b * T);
    for (const v of tg) if (v >= 0) nTargets++;
  });
  return { ids, attentionMask, targets, B, T, nTargets, lines: rows.map((r) => r.line) };
}

export interface BatchOptions {
  /** Shuffle the order first (Fisher-Yates with `rng`). */
  shuffle?: boolean;
  rng?: Rng;
  padId?: number;
  /** Round T up to a multiple of this (HF's pad_to_multiple_of; default 1). */
  padMultiple?: number;
}

/** The example order for one pass: identity, or a seeded shuffle. */
export function batchOrder(n: number, opts: Pick<BatchOptions, 'shuffle' | 'rng'> = {}): number[] {
  const order = Array.from({ length: n }, (_, i) => i);
  if (opts.shuffle) {
    if (!opts.rng) throw new Error('batchOrder: shuffle needs an rng');
    opts.rng.shuffle(order);
  }
  return order;
}

/**
 * Splits the examples into batches of `batchSize` (the last one may be smaller), right-padded to
 * each batch's longest row. Deterministic for a given rng state.
 */
export function makeBatches(examples: EncodedExample[], batchSize: number, opts: BatchOptions = {}): Batch[] {
  if (!Number.isInteger(batchSize) || batchSize < 1) throw new Error(`makeBatches: batch size must be a positive integer, got ${batchSize}`);
  const order = batchOrder(examples.length, opts);
  const out: Batch[] = [];
  for (let i = 0; i < order.length; i += batchSize) {
    out.push(collate(order.slice(i, i + batchSize).map((k) => examples[k]), opts));
  }
  return out;
}

/**
 * A fresh RNG for one epoch's shuffle, derived from (seed, epoch) only, so a run resumed mid-training
 * recomputes exactly the order it had without saving shuffle state (HF's sampler does seed + epoch too).
 */
export function epochRng(seed: number, epoch: number): Rng {
  return new RngClass((seed ^ Math.imul(epoch + 1, 0x9e3779b9)) >>> 0);
}
