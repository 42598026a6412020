/**
 * The llama2.c tokenizer.bin format and its encode()/decode() (docs/formats.md "tokenizer.bin").
 * File: int32 max_token_length, then per token float32 score, int32 byte length, bytes; the token count
 * is not stored (llama2.c takes it from the model header), so it is what the file holds.
 *
 * encode() is llama2.c's exactly: optional BOS, a dummy-prefix " " token (only for non-empty text), each
 * UTF-8 code point as its token or else its bytes as byte-fallback ids (byte + 3), then repeatedly the
 * adjacent pair whose concatenation is a vocabulary entry of highest score is merged (ties: leftmost;
 * scores must beat llama2.c's starting best of (float)-1e10). llama2.c rescans all pairs per merge
 * (quadratic); here a heap keyed (score desc, position asc) with lazy invalidation picks the same pair
 * each step, so the result is identical (checked against a literal port in test/io-tokenizer-llama2c).
 */
import { readFileSync } from 'node:fs';
import { InputError } from '../errors.js';
import type { Tokenizer } from '../model/tokenizer.js';

/** SentencePiece's llama ids, which tokenizer.bin keeps: <unk> 0, BOS 1, EOS 2. */
const UNK = 0;
const BOS = 1;
const EOS = 2;
/** llama2.c starts its best score at -1e10 stored in a float. */
const MIN_SCORE = Math.fround(-1e10);

export class Llama2cTokenizer implements Tokenizer {
  readonly vocabSize: number;
  readonly unkId = UNK;
  readonly bosId = BOS;
  readonly eosId = EOS;
  readonly chatTemplate = null;
  readonly maxTokenLength: number;
  /** Raw bytes of each piece (as in the file: spaces, not U+2581). */
  readonly pieces: Uint8Array[];
  readonly scores: Float32Array;
  /** Piece bytes as a latin1 string (one char per byte) -> id; first id wins on duplicates. */
  private readonly lookup = new Map<string, number>();
  private readonly latin: string[];
  /** For pieces spelled <0xNN>: the byte, else -1. */
  private readonly byteOf: Int16Array;
  /** (left id, right id) -> merged id or -1, filled as pairs are met (saves a string concat per lookup). */
  private readonly pairs = new Map<number, number>();
  /** Id of the piece made of one byte, or -1. */
  private readonly singleByte = new Int32Array(256).fill(-1);

  constructor(
    pieces: Uint8Array[],
    scores: Float32Array,
    maxTokenLength: number,
    readonly source = 'tokenizer',
  ) {
    if (pieces.length < 259) {
      throw new InputError(
        source,
        `llama2.c tokenizer has ${pieces.length} tokens; it needs at least 259 (<unk>, BOS, EOS and 256 byte tokens)`,
      );
    }
    this.vocabSize = pieces.length;
    this.pieces = pieces;
    this.scores = scores;
    this.maxTokenLength = maxTokenLength;
    this.latin = pieces.map((p) => Buffer.from(p).toString('latin1'));
    this.byteOf = new Int16Array(pieces.length).fill(-1);
    for (let i = 0; i < pieces.length; i++) {
      if (!this.lookup.has(this.latin[i])) this.lookup.set(this.latin[i], i);
      const m = /^<0x([0-9A-Fa-f]{2})>$/.exec(this.latin[i]);
      if (m) this.byteOf[i] = parseInt(m[1], 16);
    }
    for (let b = 0; b < 256; b++) this.singleByte[b] = this.lookup.get(String.fromCharCode(b)) ?? -1;
  }

  /** Reads tokenizer.bin; vocabSize (from the model) is checked when given. */
  static fromFile(path: string, vocabSize?: number): Llama2cTokenizer {
    let buf: Buffer;
    try {
      buf = readFileSync(path);
    } catch (e) {
      throw new InputError(path, `cannot read llama2.c tokenizer: ${(e as Error).message}`);
    }
    return Llama2cTokenizer.fromBuffer(buf, path, vocabSize);
  }

  static fromBuffer(buf: Uint8Array, source: string, vocabSize?: number): Llama2cTokenizer {
    const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
    if (buf.length < 4)
      throw new InputError(source, `llama2.c tokenizer is ${buf.length} bytes, too short for its header`);
    const maxLen = view.getInt32(0, true);
    if (maxLen <= 0 || maxLen > 1 << 20)
      throw new InputError(source, `llama2.c tokenizer max_token_length ${maxLen} is not plausible`);
    const pieces: Uint8Array[] = [];
    const scores: number[] = [];
    let p = 4;
    while (p < buf.length && (vocabSize === undefined || pieces.length < vocabSize)) {
      const id = pieces.length;
      if (p + 8 > buf.length)
        throw new InputError(source, `token ${id}: truncated score/length at byte ${p}`);
      const score = view.getFloat32(p, true);
      const len = view.getInt32(p + 4, true);
      p += 8;
      if (len < 0 || len > maxLen)
        throw new InputError(
          source,
          `token ${id}: byte length ${len} is outside 0..max_token_length ${maxLen}`,
        );
      if (p + len > buf.length)
        throw new InputError(
          source,
          `token ${id}: its ${len} bytes run past the end of the file (truncated?)`,
        );
      pieces.push(buf.slice(p, p + len));
      scores.push(score);
      p += len;
    }
    if (vocabSize !== undefined && pieces.length !== vocabSize) {
      throw new InputError(
        source,
        `llama2.c tokenizer holds ${pieces.length} tokens but the model's vocab_size is ${vocabSize}`,
      );
    }
    if (vocabSize !== undefined && p !== buf.length) {
      throw new InputError(
        source,
        `llama2.c tokenizer has ${buf.length - p} bytes after its ${vocabSize} tokens (wrong tokenizer for this model?)`,
      );
    }
    return new Llama2cTokenizer(pieces, Float32Array.from(scores), maxLen, source);
  }

  /** The id of a piece given as text (spaces as in the file), or -1. */
  pieceId(text: string): number {
    return this.lookup.get(Buffer.from(text, 'utf8').toString('latin1')) ?? -1;
  }

  encode(text: string, opts: { addBos?: boolean; addEos?: boolean } = {}): number[] {
    const ids: number[] = [];
    if (opts.addBos) ids.push(BOS);
    const bytes = Buffer.from(text, 'utf8');
    if (bytes.length > 0) {
      // llama2.c looks up " " blindly (-1 if absent would be a bug there); fall back to its byte token.
      const dummy = this.lookup.get(' ');
      ids.push(dummy ?? 0x20 + 3);
    }
    let i = 0;
    while (i < bytes.length) {
      // One code point: a byte plus the continuation bytes after it (at most 4 bytes, as llama2.c).
      let j = i + 1;
      while (j < bytes.length && (bytes[j] & 0xc0) === 0x80 && j - i < 4) j++;
      const id = j === i + 1 ? this.singleByte[bytes[i]] : this.lookup.get(bytes.toString('latin1', i, j));
      if (id !== undefined && id >= 0) ids.push(id);
      else for (let k = i; k < j; k++) ids.push(bytes[k] + 3);
      i = j;
    }
    const merged = this.merge(ids);
    if (opts.addEos) merged.push(EOS);
    return merged;
  }

  private pairId(a: number, b: number): number {
    const key = a * this.vocabSize + b;
    let id = this.pairs.get(key);
    if (id === undefined) {
      id = this.lookup.get(this.latin[a] + this.latin[b]) ?? -1;
      if (this.pairs.size < 1 << 22) this.pairs.set(key, id);
    }
    return id;
  }

  /** Greedy best-score pair merging (llama2.c encode's while loop), in O(n log n). */
  private merge(ids: number[]): number[] {
    const n = ids.length;
    if (n < 2) return ids;
    const tok = Int32Array.from(ids);
    const next = new Int32Array(n);
    const prev = new Int32Array(n);
    const alive = new Uint8Array(n).fill(1);
    for (let k = 0; k < n; k++) {
      next[k] = k + 1 < n ? k + 1 : -1;
      prev[k] = k - 1;
    }
    // Heap entries: [score, left, right, mergedId, tokLeft, tokRight]; stale ones are skipped on pop.
    const heap = new PairHeap();
    const push = (l: number) => {
      const r = next[l];
      if (l < 0 || r < 0) return;
      const id = this.pairId(tok[l], tok[r]);
      if (id < 0) return;
      const s = this.scores[id];
      if (!(s > MIN_SCORE)) return;
      heap.push(s, l, r, id, tok[l], tok[r]);
    };
    for (let k = 0; k + 1 < n; k++) push(k);
    while (heap.size > 0) {
      const e = heap.pop();
      const [, l, r, id, tl, tr] = e;
      if (!alive[l] || !alive[r] || next[l] !== r || tok[l] !== tl || tok[r] !== tr) continue;
      tok[l] = id;
      alive[r] = 0;
      next[l] = next[r];
      if (next[r] >= 0) prev[next[r]] = l;
      push(prev[l]);
      push(l);
    }
    const out: number[] = [];
    for (let k = 0; k >= 0; k = next[k]) out.push(tok[k]);
    return out;
  }

  decode(ids: number[], opts: { skipSpecial?: boolean } = {}): string {
    const parts: Uint8Array[] = [];
    for (let k = 0; k < ids.length; k++) {
      const id = ids[k];
      this.check(id);
      if (opts.skipSpecial && id <= 2) continue;
      let piece = this.pieces[id];
      // llama2.c decode(): right after BOS the leading space of a piece is stripped; at the very start of
      // the sequence too, as SentencePiece does, so decode(encode(text)) === text.
      if ((k === 0 || ids[k - 1] === BOS) && piece[0] === 0x20) piece = piece.subarray(1);
      const b = this.byteOf[id];
      parts.push(b >= 0 ? Uint8Array.of(b) : piece);
    }
    return new TextDecoder().decode(Buffer.concat(parts));
  }

  /**
   * One token's text as llama2.c prints it (with its leading space). A byte-fallback token of a
   * non-ASCII byte is only part of a character and comes out as U+FFFD: to stream exact text, decode
   * the growing id list and print what was added.
   */
  tokenText(id: number): string {
    this.check(id);
    const b = this.byteOf[id];
    if (b >= 0) return b < 0x80 ? String.fromCharCode(b) : '\ufffd';
    return new TextDecoder().decode(this.pieces[id]);
  }

  private check(id: number): void {
    if (!Number.isInteger(id) || id < 0 || id >= this.vocabSize) {
      throw new RangeError(`${this.source}: token id ${id} is outside 0..${this.vocabSize - 1}`);
    }
  }
}

/** A binary max-heap on (score desc, left position asc): the pair llama2.c's scan would pick. */
class PairHeap {
  private a: Array<[number, number, number, number, number, number]> = [];
  get size(): number {
    return this.a.length;
  }
  private before(
    x: [number, number, number, number, number, number],
    y: [number, number, number, number, number, number],
  ): boolean {
    return x[0] > y[0] || (x[0] === y[0] && x[1] < y[1]);
  }
  push(score: number, l: number, r: number, id: number, tl: number, tr: number): void {
    const a = this.a;
    a.push([score, l, r, id, tl, tr]);
    let i = a.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!this.before(a[i], a[p])) break;
      const t = a[i];
      a[i] = a[p];
      a[p] = t;
      i = p;
    }
  }
  pop(): [number, number, number, number, number, number] {
    const a = this.a;
    const top = a[0];
    const last = a.pop()!;
    if (a.length > 0) {
      a[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1,
          r = l + 1;
        let m = i;
        if (l < a.length && this.before(a[l], a[m])) m = l;
        if (r < a.length && this.before(a[r], a[m])) m = r;
        if (m === i) break;
        const t = a[i];
        a[i] = a[m];
        a[m] = t;
        i = m;
      }
    }
    return top;
  }
}
