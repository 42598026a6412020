/**
 * The teacher-logit cache of `kd-logits` training: for every training example, the teacher's logits at
 * its answer positions (the rows whose next-token target is an answer token), computed once and read
 * back per micro-batch while training, so the teacher is neither kept in memory nor run again each
 * epoch, and the logits are never all held in RAM.
 *
 * Layout of the cache folder:
 *   index.json                      format, fingerprint, vocabulary size, dtype, shard files, and per
 *                                   example key: [shard, first row, rows]
 *   logits-<fp12>-<n>.bin           raw little-endian f16 (or bf16) rows of V values, shard after shard;
 *                                   with top-k storage, rows of k values then their k uint32 token ids
 *
 * Size: (answer tokens of the training set) × V × 2 bytes (e.g. 1 M answer tokens × V = 32000 is 64 GB;
 * the bundled V = 512 models need 1 KiB per answer token); with top-k, answer tokens × k × 6 bytes.
 * Top-k rows come back dense with −∞ outside the k largest logits: the teacher distribution is then
 * its top k renormalised (src/distill/kl.ts skips zero-probability entries).
 *
 * An example's key is the SHA-256 of its token ids and answer mask, so a changed data file, chat
 * format or --max-length gives other keys; the fingerprint hashes the teacher's files (size and mtime),
 * the dtype and every key in order. A cache whose fingerprint differs is rebuilt; one that matches is
 * reused as is. Shard files are named after the fingerprint and written under a temporary name, then
 * renamed, and index.json is written last, so an interrupted build leaves no index pointing at
 * half-written data (two builders of the same cache write identical files).
 */
import { createHash } from 'node:crypto';
import {
  closeSync,
  existsSync,
  fsyncSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  readSync,
  renameSync,
  rmSync,
  statSync,
  writeSync,
} from 'node:fs';
import { join } from 'node:path';
import { InputError } from '../errors.js';
import { bf16ToF32, f16ToF32, f32ToBf16, f32ToF16 } from '../engine/dtype.js';
import { collate, type EncodedExample } from '../data/encode.js';
import { tempNameFor, writeJsonAtomic } from '../io/atomic.js';
import { loadModelSource, resolveModelPath } from '../io/load.js';
import { checkSameVocabulary } from '../io/vocab-compare.js';
import { contextLength } from '../model/config.js';
import { LlamaModel } from '../model/model.js';
import type { Tokenizer } from '../model/tokenizer.js';

export const KD_INDEX = 'index.json';
export const KD_CACHE_FORMAT = 'nuggets-kd-cache';
export type KdCacheDtype = 'f16' | 'bf16';

/** Largest shard file (bytes); a new shard starts when the next example would pass it. */
const SHARD_BYTES = 1 << 30;

interface KdIndex {
  format: typeof KD_CACHE_FORMAT;
  version: 1;
  fingerprint: string;
  teacher: string;
  vocab: number;
  dtype: KdCacheDtype;
  /** Logits kept per row (0: all V). */
  topK: number;
  /** Answer-token rows stored and their bytes. */
  rows: number;
  bytes: number;
  shards: string[];
  examples: Record<string, [number, number, number]>;
}

/** Bytes of one stored row: V half floats, or k half floats and k uint32 token ids. */
function rowBytesOf(V: number, K: number): number {
  return K === 0 ? V * 2 : K * 6;
}

function halfBytes(f32: Float32Array, dtype: KdCacheDtype): Uint8Array {
  const half = dtype === 'f16' ? f32ToF16(f32) : f32ToBf16(f32);
  return new Uint8Array(half.buffer, half.byteOffset, half.byteLength);
}

/** Rows of the k largest logits (values, then their ids; ties keep the lower id first). */
function topKBytes(f32: Float32Array, rows: number, V: number, K: number, dtype: KdCacheDtype): Uint8Array {
  const out = new Uint8Array(rows * K * 6);
  const order = new Uint32Array(V);
  for (let r = 0; r < rows; r++) {
    const row = f32.subarray(r * V, (r + 1) * V);
    for (let c = 0; c < V; c++) order[c] = c;
    order.sort((a, b) => row[b] - row[a] || a - b);
    const ids = order.slice(0, K);
    const vals = new Float32Array(K);
    for (let j = 0; j < K; j++) vals[j] = row[ids[j]];
    out.set(halfBytes(vals, dtype), r * K * 6);
    out.set(new Uint8Array(ids.buffer), r * K * 6 + 2 * K);
  }
  return out;
}

/** The cache key of an encoded example: its ids and answer mask. */
export function exampleKey(ex: EncodedExample): string {
  const h = createHash('sha256');
  h.update(new Uint8Array(ex.ids.buffer, ex.ids.byteOffset, ex.ids.byteLength));
  h.update(ex.answerMask);
  return h.digest('hex').slice(0, 32);
}

/** Size and mtime of the model's files: a rebuilt or replaced teacher changes it. */
function modelFingerprint(path: string): string {
  const { target } = resolveModelPath(path);
  const st = statSync(target);
  if (!st.isDirectory()) return `${st.size}:${Math.round(st.mtimeMs)}`;
  return readdirSync(target)
    .filter((n) => !n.startsWith('.') && statSync(join(target, n)).isFile())
    .sort()
    .map((n) => {
      const f = statSync(join(target, n));
      return `${n}=${f.size}:${Math.round(f.mtimeMs)}`;
    })
    .join(',');
}

function cacheFingerprint(teacher: string, dtype: KdCacheDtype, topK: number, keys: string[]): string {
  const h = createHash('sha256');
  h.update(`${KD_CACHE_FORMAT}/1\n${modelFingerprint(teacher)}\n${dtype}\n${topK}\n`);
  for (const k of keys) h.update(k + '\n');
  return h.digest('hex');
}

/** Read access to a built cache: the teacher rows of examples, read from disk on each call. */
export class TeacherLogits {
  private readonly fds = new Map<number, number>();

  constructor(
    readonly dir: string,
    private readonly index: KdIndex,
  ) {}

  get vocab(): number {
    return this.index.vocab;
  }

  get rowsStored(): number {
    return this.index.rows;
  }

  get bytes(): number {
    return this.index.bytes;
  }

  /** The teacher rows of `examples`, concatenated in order (the order of a collated batch's answer rows). */
  rowsFor(examples: readonly EncodedExample[]): Float32Array {
    const V = this.index.vocab;
    let n = 0;
    const where = examples.map((ex) => {
      const w = this.index.examples[exampleKey(ex)];
      if (!w) throw new Error(`kd cache ${this.dir}: no teacher logits for ${ex.source}`);
      if (w[2] !== ex.nTargets)
        throw new Error(
          `kd cache ${this.dir}: ${w[2]} rows stored for ${ex.nTargets} answer tokens of ${ex.source}`,
        );
      n += w[2];
      return w;
    });
    const out = new Float32Array(n * V);
    const K = this.index.topK;
    const rowBytes = rowBytesOf(V, K);
    const decode = this.index.dtype === 'f16' ? f16ToF32 : bf16ToF32;
    let at = 0;
    for (const [shard, first, rows] of where) {
      const bytes = new Uint8Array(rows * rowBytes);
      const got = readSync(this.fd(shard), bytes, 0, bytes.length, first * rowBytes);
      if (got !== bytes.length) throw new Error(`kd cache ${this.dir}: shard ${shard} is truncated`);
      if (K === 0) {
        decode(new Uint16Array(bytes.buffer), out.subarray(at * V, (at + rows) * V));
      } else {
        const vals = new Float32Array(K);
        for (let r = 0; r < rows; r++) {
          const o = r * rowBytes;
          decode(new Uint16Array(bytes.buffer, o, K), vals);
          const ids = new Uint32Array(bytes.buffer.slice(o + 2 * K, o + 6 * K));
          const dst = out.subarray((at + r) * V, (at + r + 1) * V);
          dst.fill(-Infinity);
          for (let j = 0; j < K; j++) dst[ids[j]] = vals[j];
        }
      }
      at += rows;
    }
    return out;
  }

  private fd(shard: number): number {
    let fd = this.fds.get(shard);
    if (fd === undefined) {
      fd = openSync(join(this.dir, this.index.shards[shard]), 'r');
      this.fds.set(shard, fd);
    }
    return fd;
  }

  close(): void {
    for (const fd of this.fds.values()) closeSync(fd);
    this.fds.clear();
  }
}

export interface EnsureKdCacheOptions {
  dir: string;
  /** The teacher model (HF folder or llama2.c checkpoint). */
  teacher: string;
  /** The training examples, encoded with the student's tokenizer. */
  examples: readonly EncodedExample[];
  /** The student's tokenizer (teacher and student must share the vocabulary). */
  studentTokenizer: Tokenizer;
  studentName: string;
  dtype: KdCacheDtype;
  /** Keep only the k largest logits per answer token (0: all V). */
  topK?: number;
  /** Examples per teacher forward. */
  batchSize: number;
  padId?: number;
  say?: (line: string) => void;
}

/** Opens the cache when it matches the examples and teacher, else (re)builds it with the teacher. */
export function ensureTeacherLogits(o: EnsureKdCacheOptions): { cache: TeacherLogits; built: boolean } {
  const keys = o.examples.map(exampleKey);
  const fp = cacheFingerprint(o.teacher, o.dtype, o.topK ?? 0, keys);
  const indexPath = join(o.dir, KD_INDEX);
  if (existsSync(indexPath)) {
    let idx: KdIndex | null;
    try {
      idx = JSON.parse(readFileSync(indexPath, 'utf8')) as KdIndex;
    } catch {
      idx = null; // unreadable: rebuilt below
    }
    if (
      idx &&
      idx.format === KD_CACHE_FORMAT &&
      idx.fingerprint === fp &&
      idx.shards.every((s) => existsSync(join(o.dir, s)))
    )
      return { cache: new TeacherLogits(o.dir, idx), built: false };
  }
  return { cache: buildTeacherLogits(o, keys, fp), built: true };
}

function buildTeacherLogits(o: EnsureKdCacheOptions, keys: string[], fp: string): TeacherLogits {
  const src = loadModelSource(o.teacher);
  try {
    checkSameVocabulary(src.tokenizer, o.studentTokenizer, o.teacher, o.studentName);
    const V = src.config.vocabSize;
    const K = o.topK ?? 0;
    if (!(Number.isInteger(K) && K >= 0 && K <= V))
      throw new InputError('--kd-top-k', `must be an integer in [0, ${V}] (the vocabulary), got ${K}`);
    const rowBytes = rowBytesOf(V, K);
    let longest = 0;
    for (const ex of o.examples) longest = Math.max(longest, ex.ids.length);
    if (longest > contextLength(src.config))
      throw new InputError(
        o.teacher,
        `the teacher computes ${contextLength(src.config)} tokens exactly, but a training example has ${longest}; lower --max-length`,
      );
    const model = LlamaModel.load(src);
    model.setTraining(false);
    mkdirSync(o.dir, { recursive: true });

    const index: KdIndex = {
      format: KD_CACHE_FORMAT,
      version: 1,
      fingerprint: fp,
      teacher: o.teacher,
      vocab: V,
      dtype: o.dtype,
      topK: K,
      rows: 0,
      bytes: 0,
      shards: [],
      examples: {},
    };
    // unique examples in order (a repeated example is stored once)
    const todo: EncodedExample[] = [];
    const todoKeys: string[] = [];
    const seen = new Set<string>();
    o.examples.forEach((ex, i) => {
      if (seen.has(keys[i])) return;
      seen.add(keys[i]);
      todo.push(ex);
      todoKeys.push(keys[i]);
    });

    const finished: Array<{ tmp: string; name: string }> = [];
    let shard = { fd: -1, tmp: '', name: '', rows: 0 };
    const openShard = () => {
      const name = `logits-${fp.slice(0, 12)}-${String(index.shards.length).padStart(5, '0')}.bin`;
      const tmp = tempNameFor(join(o.dir, name));
      shard = { fd: openSync(tmp, 'w'), tmp, name, rows: 0 };
      index.shards.push(name);
    };
    const closeShard = () => {
      if (shard.fd < 0) return;
      fsyncSync(shard.fd);
      closeSync(shard.fd);
      finished.push({ tmp: shard.tmp, name: shard.name });
      shard.fd = -1;
    };
    try {
      openShard();
      for (let i = 0; i < todo.length; i += o.batchSize) {
        const rows = todo.slice(i, i + o.batchSize);
        const b = collate(rows, { padId: o.padId ?? 0 });
        const logits = model.forward({ ids: b.ids, B: b.B, T: b.T, attentionMask: b.attentionMask });
        rows.forEach((ex, j) => {
          const n = ex.nTargets;
          if ((shard.rows + n) * rowBytes > SHARD_BYTES && shard.rows > 0) {
            closeShard();
            openShard();
          }
          const f32 = new Float32Array(n * V);
          let k = 0;
          for (let t = 0; t < b.T; t++) {
            if (b.targets[j * b.T + t] < 0) continue;
            const row = logits.subarray((j * b.T + t) * V, (j * b.T + t + 1) * V);
            f32.set(row, k * V);
            k++;
          }
          const bytes = K === 0 ? halfBytes(f32, o.dtype) : topKBytes(f32, n, V, K, o.dtype);
          writeSync(shard.fd, bytes);
          index.examples[todoKeys[i + j]] = [index.shards.length - 1, shard.rows, n];
          shard.rows += n;
          index.rows += n;
          index.bytes += bytes.byteLength;
        });
      }
      closeShard();
    } catch (e) {
      if (shard.fd >= 0) closeSync(shard.fd);
      for (const f of [...finished, shard]) rmSync(f.tmp, { force: true });
      throw e;
    }
    for (const f of finished) renameSync(f.tmp, join(o.dir, f.name));
    writeJsonAtomic(join(o.dir, KD_INDEX), index);
    // shards of an earlier fingerprint are stale now
    for (const n of readdirSync(o.dir))
      if (/^logits-[0-9a-f]{12}-\d+\.bin$/.test(n) && !index.shards.includes(n))
        rmSync(join(o.dir, n), { force: true });
    o.say?.(
      `kd cache: teacher logits of ${todo.length} examples, ${index.rows} answer tokens x ${K === 0 ? V : `top ${K} of ${V}`} (${o.dtype}, ${(index.bytes / 2 ** 20).toFixed(1)} MiB) in ${o.dir}`,
    );
    return new TeacherLogits(o.dir, index);
  } finally {
    src.weights.close();
  }
}
