/**
 * Pretraining text: documents -> one token stream (BOS before every document, as llama2.c's
 * pretokenizer does for TinyStories) -> fixed-length training sequences.
 *
 * Packing follows llama2.c: sequence i is the stream slice [i*T, i*T + T + 1); its first T tokens are
 * the inputs and its last T tokens the next-token targets (so neighbouring sequences share one token).
 * Attention is not cut at document boundaries (BOS marks them), exactly like llama2.c's training.
 *
 * Input files: a `.jsonl` / `.jsonl.gz` file with one `{"text": ...}` document per row, or a plain text
 * file split into documents by blank lines, by lines, or not at all.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';
import { InputError } from '../errors.js';
import { Rng } from '../engine/rng.js';
import { parseJsonl } from '../data/jsonl.js';
import type { Tokenizer } from '../model/tokenizer.js';

export type DocSplit = 'blank-line' | 'line' | 'none';

export interface Document {
  text: string;
  /** "file:line" of the document's first line (for messages). */
  source: string;
}

export interface CorpusFile {
  path: string;
  /** sha256 of the file's bytes as stored (recorded in RECIPE.md, compared on resume). */
  sha256: string;
  documents: Document[];
}

function readBytes(path: string): Buffer {
  try {
    return readFileSync(path);
  } catch (e) {
    throw new InputError(path, `cannot read file (${(e as NodeJS.ErrnoException).code ?? String(e)})`);
  }
}

export function sha256Hex(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/** True for JSONL inputs (by name). */
export function isJsonlPath(path: string): boolean {
  return /\.jsonl(\.gz)?$/.test(path);
}

/** Reads the documents of a pretraining file (see the file comment for the formats). */
export function readCorpus(path: string, split: DocSplit = 'blank-line'): CorpusFile {
  const raw = readBytes(path);
  const sha256 = sha256Hex(raw);
  let bytes = raw;
  if (path.endsWith('.gz')) {
    try {
      bytes = gunzipSync(raw);
    } catch (e) {
      throw new InputError(path, `not a valid gzip file (${e instanceof Error ? e.message : String(e)})`);
    }
  }
  const text = bytes.toString('utf8');
  const documents: Document[] = [];
  if (isJsonlPath(path)) {
    for (const rec of parseJsonl(path, text)) {
      const row = rec.value as Record<string, unknown>;
      const where = `${path}:${rec.line}`;
      if (typeof row.text !== 'string') {
        const keys =
          Object.keys(row)
            .map((k) => `"${k}"`)
            .join(', ') || '(none)';
        throw new InputError(
          where,
          `pretraining rows must be {"text": "..."}; this row has ${'text' in row ? `"text" of type ${row.text === null ? 'null' : typeof row.text}` : `keys ${keys}`}`,
        );
      }
      if (row.text.trim() === '') throw new InputError(where, '"text" is empty');
      documents.push({ text: row.text, source: where });
    }
  } else {
    if (text.includes('\u0000'))
      throw new InputError(
        path,
        'looks like a binary file, not text (it contains NUL bytes); give a .txt or .jsonl file',
      );
    const normalised = text.replace(/\r\n/g, '\n');
    if (split === 'none') {
      if (normalised.trim() !== '') documents.push({ text: normalised.trim(), source: `${path}:1` });
    } else {
      const sep = split === 'line' ? /\n/ : /\n[ \t]*\n/;
      let line = 1;
      let rest = normalised;
      for (;;) {
        const m = sep.exec(rest);
        const part = m ? rest.slice(0, m.index) : rest;
        const lead = part.length - part.trimStart().length;
        if (part.trim() !== '') {
          const startLine = line + (part.slice(0, lead).match(/\n/g)?.length ?? 0);
          documents.push({ text: part.trim(), source: `${path}:${startLine}` });
        }
        if (!m) break;
        line += (part.match(/\n/g)?.length ?? 0) + (m[0].match(/\n/g)?.length ?? 0);
        rest = rest.slice(m.index + m[0].length);
      }
    }
  }
  if (documents.length === 0) throw new InputError(path, 'no documents: the file holds no text');
  return { path, sha256, documents };
}

/**
 * Splits documents into training and held-out sets: `fraction` of them (at least one when > 0),
 * chosen by a seeded shuffle so that the held-out set is spread over the file.
 */
export function splitDocuments(
  docs: Document[],
  fraction: number,
  seed: number,
): { train: Document[]; val: Document[] } {
  if (!(fraction >= 0 && fraction < 1))
    throw new InputError('--val-fraction', `must be in [0, 1), got ${fraction}`);
  if (fraction === 0) return { train: docs, val: [] };
  const nVal = Math.max(1, Math.round(docs.length * fraction));
  if (nVal >= docs.length)
    throw new InputError(
      '--val-fraction',
      `${fraction} of ${docs.length} document(s) leaves nothing to train on`,
    );
  const order = new Rng(seed ^ 0x5eed).shuffle(Array.from({ length: docs.length }, (_, i) => i));
  const held = new Set(order.slice(0, nVal));
  return { train: docs.filter((_, i) => !held.has(i)), val: docs.filter((_, i) => held.has(i)) };
}

/** The token stream: BOS + tokens of each document (+ EOS when asked), in order. */
export function tokenStream(docs: Document[], tok: Tokenizer, opts: { eos?: boolean } = {}): Int32Array {
  if (tok.bosId === null)
    throw new InputError('tokenizer', 'has no BOS token; pretraining marks each document with BOS');
  if (opts.eos && tok.eosId === null) throw new InputError('tokenizer', 'has no EOS token (--eos)');
  const parts: number[][] = [];
  let n = 0;
  for (const d of docs) {
    const ids = tok.encode(d.text, { addBos: false });
    const p = [tok.bosId, ...ids];
    if (opts.eos) p.push(tok.eosId!);
    parts.push(p);
    n += p.length;
  }
  const out = new Int32Array(n);
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/** Fixed-length sequences over a token stream (llama2.c packing, see the file comment). */
export class PackedSequences {
  readonly count: number;

  constructor(
    readonly stream: Int32Array,
    readonly seqLen: number,
  ) {
    this.count = stream.length > seqLen ? Math.floor((stream.length - 1) / seqLen) : 0;
  }

  /** Writes sequence i's inputs into ids[off..off+T) and its targets into targets[off..off+T). */
  fill(i: number, ids: Int32Array, targets: Int32Array, off: number): void {
    if (!(i >= 0 && i < this.count)) throw new RangeError(`sequence ${i} of ${this.count}`);
    const T = this.seqLen;
    const s = i * T;
    ids.set(this.stream.subarray(s, s + T), off);
    targets.set(this.stream.subarray(s + 1, s + T + 1), off);
  }
}
