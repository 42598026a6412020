/**
 * safetensors reader and writer (docs/formats.md "safetensors"). The reader parses and validates the header
 * once, then reads each tensor lazily with positioned reads on an open fd: a file is never held in memory
 * whole, so a large teacher can be streamed tensor by tensor. Every defect of the file is an InputError
 * naming the file and, where one is at fault, the tensor.
 */
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { InputError } from '../errors.js';
import { f32ToBf16, f32ToF16 } from '../engine/dtype.js';
import { kernels } from '../engine/backend.js';
import { HalfArray } from '../engine/half.js';
import type { TensorInfo, WeightSource } from '../model/weights.js';
import { writeFileAtomic } from './atomic.js';

/** Bytes per element of each dtype the format defines (and that this reader can read raw). */
export const DTYPE_BYTES: Readonly<Record<string, number>> = {
  F64: 8,
  F32: 4,
  F16: 2,
  BF16: 2,
  F8_E4M3: 1,
  F8_E5M2: 1,
  I64: 8,
  I32: 4,
  I16: 2,
  I8: 1,
  U64: 8,
  U32: 4,
  U16: 2,
  U8: 1,
  BOOL: 1,
};

/** Positioned read of exactly dst.length bytes (readSync may return short counts on big reads). */
export function readFully(fd: number, dst: Uint8Array, position: number, path: string): void {
  let done = 0;
  while (done < dst.length) {
    const n = readSync(fd, dst, done, Math.min(dst.length - done, 1 << 30), position + done);
    if (n <= 0) throw new InputError(path, `unexpected end of file at byte ${position + done}`);
    done += n;
  }
}

/** The Rust implementation's limit: a bigger header is a corrupt or hostile file. */
const MAX_HEADER_BYTES = 100_000_000;

export interface SafetensorsEntry {
  dtype: string;
  shape: number[];
  /** Byte range relative to the start of the data (after the header). */
  begin: number;
  end: number;
}

export class SafetensorsReader implements WeightSource {
  readonly source: string;
  readonly metadata: Record<string, string> | null;
  /** Absolute file offset of the data section. */
  readonly dataStart: number;
  private fd: number | null;
  private readonly entries: Map<string, SafetensorsEntry>;

  constructor(
    path: string,
    fd: number,
    dataStart: number,
    entries: Map<string, SafetensorsEntry>,
    metadata: Record<string, string> | null,
  ) {
    this.source = path;
    this.fd = fd;
    this.dataStart = dataStart;
    this.entries = entries;
    this.metadata = metadata;
  }

  /** Tensor names in header order. */
  names(): string[] {
    return [...this.entries.keys()];
  }

  has(name: string): boolean {
    return this.entries.has(name);
  }

  info(name: string): TensorInfo {
    const e = this.entry(name);
    return { dtype: e.dtype, shape: [...e.shape] };
  }

  /** Byte range of a tensor within the data section (for tools that copy raw bytes). */
  range(name: string): { begin: number; end: number } {
    const e = this.entry(name);
    return { begin: e.begin, end: e.end };
  }

  /** The tensor's raw little-endian bytes (a fresh, aligned copy). */
  getRaw(name: string): Uint8Array {
    const e = this.entry(name);
    if (this.fd === null) throw new Error(`${this.source}: reader is closed`);
    const buf = new Uint8Array(new ArrayBuffer(e.end - e.begin));
    readFully(this.fd, buf, this.dataStart + e.begin, this.source);
    return buf;
  }

  /** The tensor as float32: F32/F16/BF16 (weights), and every other numeric dtype converted by value. */
  get(name: string): Float32Array {
    const e = this.entry(name);
    const raw = this.getRaw(name);
    // F32: view the fresh buffer in place (toFloat32 copies, which doubles a big tensor's load)
    if (e.dtype === 'F32') return new Float32Array(raw.buffer, 0, raw.byteLength / 4);
    return toFloat32(raw, e.dtype, this.source, name);
  }

  /** BF16/F16 tensors as their bits (the buffer read from the file, no conversion), others as get(). */
  getStored(name: string): Float32Array | HalfArray {
    const e = this.entry(name);
    if (e.dtype !== 'BF16' && e.dtype !== 'F16') return this.get(name);
    const raw = this.getRaw(name);
    return new HalfArray(
      e.dtype === 'BF16' ? 'bf16' : 'f16',
      new Uint16Array(raw.buffer, 0, raw.byteLength / 2),
    );
  }

  close(): void {
    if (this.fd !== null) closeSync(this.fd);
    this.fd = null;
  }

  private entry(name: string): SafetensorsEntry {
    const e = this.entries.get(name);
    if (!e) throw new InputError(this.source, `no tensor named "${name}"`);
    return e;
  }
}

/** Converts raw little-endian bytes of a dtype to float32 by value. */
export function toFloat32(raw: Uint8Array, dtype: string, source: string, name: string): Float32Array {
  // An aligned view (a fresh read from getRaw is one) is read in place; only an unaligned one is copied.
  const width = DTYPE_BYTES[dtype] ?? 1;
  const aligned = raw.byteOffset % width === 0;
  const b = aligned ? raw.buffer : raw.buffer.slice(raw.byteOffset, raw.byteOffset + raw.byteLength);
  const off = aligned ? raw.byteOffset : 0;
  const n = Math.floor(raw.byteLength / width);
  switch (dtype) {
    case 'F32':
      return new Float32Array(b.slice(off, off + n * 4));
    case 'F16':
    case 'BF16': {
      // the kernel (native: vectorised, threaded) rather than a JS loop: a 13B teacher's bf16
      // sensitivity file is 13 billion values
      const out = new Float32Array(n);
      kernels().widenHalf(out, new Uint16Array(b, off, n), dtype === 'BF16' ? 'bf16' : 'f16', n);
      return out;
    }
    case 'F64':
      return Float32Array.from(new Float64Array(b, off, n));
    case 'I32':
      return Float32Array.from(new Int32Array(b, off, n));
    case 'U32':
      return Float32Array.from(new Uint32Array(b, off, n));
    case 'I16':
      return Float32Array.from(new Int16Array(b, off, n));
    case 'U16':
      return Float32Array.from(new Uint16Array(b, off, n));
    case 'I8':
      return Float32Array.from(new Int8Array(b, off, n));
    case 'U8':
      return Float32Array.from(new Uint8Array(b, off, n));
    case 'BOOL':
      return Float32Array.from(new Uint8Array(b, off, n), (v) => (v ? 1 : 0));
    case 'I64':
      return Float32Array.from(new BigInt64Array(b, off, n), (v) => Number(v));
    case 'U64':
      return Float32Array.from(new BigUint64Array(b, off, n), (v) => Number(v));
    case 'F8_E4M3':
      return Float32Array.from(new Uint8Array(b, off, n), (v) => E4M3[v]);
    case 'F8_E5M2':
      return Float32Array.from(new Uint8Array(b, off, n), (v) => E5M2[v]);
    default:
      throw new InputError(source, `tensor "${name}": cannot convert dtype ${dtype} to float32`);
  }
}

/** float8 e4m3fn (no infinities; S.1111.111 is NaN) and e5m2 (IEEE-style) value tables. */
const E4M3 = Float32Array.from({ length: 256 }, (_, v) => {
  const s = v & 0x80 ? -1 : 1,
    e = (v >> 3) & 0xf,
    m = v & 7;
  if (e === 0xf && m === 7) return NaN;
  return e === 0 ? s * m * 2 ** -9 : s * (1 + m / 8) * 2 ** (e - 7);
});
const E5M2 = Float32Array.from({ length: 256 }, (_, v) => {
  const s = v & 0x80 ? -1 : 1,
    e = (v >> 2) & 0x1f,
    m = v & 3;
  if (e === 0x1f) return m ? NaN : s * Infinity;
  return e === 0 ? s * m * 2 ** -16 : s * (1 + m / 4) * 2 ** (e - 15);
});

/** Opens a safetensors file and validates its header; tensors are read later, one at a time. */
export function openSafetensors(path: string): SafetensorsReader {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch (e) {
    throw new InputError(path, `cannot open safetensors file: ${(e as Error).message}`);
  }
  try {
    const size = fstatSync(fd).size;
    const { entries, metadata, dataStart } = parseHeader(path, fd, size);
    return new SafetensorsReader(path, fd, dataStart, entries, metadata);
  } catch (e) {
    closeSync(fd);
    throw e;
  }
}

function parseHeader(path: string, fd: number, size: number) {
  if (size < 8)
    throw new InputError(path, `file is ${size} bytes: too short for a safetensors header length (8 bytes)`);
  const lenBuf = Buffer.alloc(8);
  readFully(fd, lenBuf, 0, path);
  const n = lenBuf.readBigUInt64LE(0);
  if (n > BigInt(size - 8)) {
    throw new InputError(
      path,
      `header length ${n} runs past the end of the file (${size - 8} bytes after the length field; truncated or not safetensors)`,
    );
  }
  if (n > BigInt(MAX_HEADER_BYTES))
    throw new InputError(path, `header length ${n} exceeds the ${MAX_HEADER_BYTES}-byte limit`);
  if (n < 2n) throw new InputError(path, `header length ${n} is too small for a JSON object`);
  const headerLen = Number(n);
  const hbuf = Buffer.alloc(headerLen);
  readFully(fd, hbuf, 8, path);
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(hbuf);
  } catch {
    throw new InputError(path, 'header is not valid UTF-8');
  }
  let header: unknown;
  try {
    header = JSON.parse(text);
  } catch (e) {
    throw new InputError(path, `header is not JSON (${(e as Error).message})`);
  }
  if (typeof header !== 'object' || header === null || Array.isArray(header)) {
    throw new InputError(path, 'header is not a JSON object');
  }
  // JSON.parse keeps the last of duplicate keys silently; the raw text tells.
  const keys = scanKeys(text, path);
  const dataStart = 8 + headerLen;
  const dataBytes = size - dataStart;
  const obj = header as Record<string, unknown>;
  let metadata: Record<string, string> | null = null;
  const entries = new Map<string, SafetensorsEntry>();
  for (const name of keys) {
    const v = obj[name];
    if (name === '__metadata__') {
      if (typeof v !== 'object' || v === null || Array.isArray(v))
        throw new InputError(path, '__metadata__ is not an object of strings');
      for (const [k, s] of Object.entries(v)) {
        if (typeof s !== 'string')
          throw new InputError(path, `__metadata__ value for "${k}" is not a string`);
      }
      metadata = v as Record<string, string>;
      continue;
    }
    entries.set(name, parseEntry(path, name, v, dataBytes));
  }
  // As the reference implementation validates: tensors, sorted by offset, tile the data section
  // exactly: no shared bytes, no holes between them, no bytes after the last one.
  const sorted = [...entries.entries()].sort((a, b) => a[1].begin - b[1].begin || a[1].end - b[1].end);
  let expected = 0;
  let prev: [string, SafetensorsEntry] | null = null;
  for (const [cn, c] of sorted) {
    if (c.begin < expected && prev !== null) {
      const [pn, p] = prev;
      throw new InputError(
        path,
        `tensor "${cn}" (bytes ${c.begin}..${c.end}) overlaps tensor "${pn}" (bytes ${p.begin}..${p.end})`,
      );
    }
    if (c.begin > expected) {
      throw new InputError(
        path,
        `${c.begin - expected} unused bytes (${expected}..${c.begin}) before tensor "${cn}": the tensors must follow each other without holes`,
      );
    }
    expected = c.end;
    prev = [cn, c];
  }
  if (expected !== dataBytes) {
    throw new InputError(
      path,
      `${dataBytes - expected} trailing bytes after the last tensor (the data section is ${dataBytes} bytes, the tensors end at ${expected})`,
    );
  }
  return { entries, metadata, dataStart };
}

function parseEntry(path: string, name: string, v: unknown, dataBytes: number): SafetensorsEntry {
  const bad = (what: string) => new InputError(path, `tensor "${name}": ${what}`);
  if (name === '') throw new InputError(path, 'a tensor has an empty name');
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw bad('header entry is not an object');
  const { dtype, shape, data_offsets: off } = v as Record<string, unknown>;
  if (typeof dtype !== 'string') throw bad('dtype is missing or not a string');
  const width = DTYPE_BYTES[dtype];
  if (width === undefined)
    throw bad(`unknown dtype "${dtype}" (known: ${Object.keys(DTYPE_BYTES).join(', ')})`);
  if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
    throw bad(`shape ${JSON.stringify(shape)} is not a list of non-negative integers`);
  }
  let numel = 1;
  for (const d of shape as number[]) {
    numel *= d;
    if (!Number.isSafeInteger(numel)) throw bad(`shape [${shape.join(', ')}] has too many elements`);
  }
  if (!Array.isArray(off) || off.length !== 2 || !off.every((d) => Number.isSafeInteger(d) && d >= 0)) {
    throw bad(`data_offsets ${JSON.stringify(off)} is not a pair of non-negative integers`);
  }
  const [begin, end] = off as number[];
  if (end < begin) throw bad(`data_offsets [${begin}, ${end}] end before they begin`);
  if (end > dataBytes)
    throw bad(
      `data_offsets [${begin}, ${end}] run past the end of the data (${dataBytes} bytes; truncated file?)`,
    );
  if (end - begin !== numel * width) {
    throw bad(
      `data_offsets [${begin}, ${end}] hold ${end - begin} bytes but ${dtype} x [${shape.join(', ')}] needs ${numel * width}`,
    );
  }
  return { dtype, shape: [...(shape as number[])], begin, end };
}

/**
 * The top-level keys of a JSON object text in order, refusing duplicate keys in any object (the header
 * was already parsed by JSON.parse, so the text is valid JSON and this scanner can be simple).
 */
function scanKeys(text: string, path: string): string[] {
  let i = 0;
  const ws = () => {
    while (i < text.length && (text[i] === ' ' || text[i] === '\t' || text[i] === '\n' || text[i] === '\r'))
      i++;
  };
  const str = (): string => {
    const start = i;
    i++; // opening quote
    while (text[i] !== '"') i += text[i] === '\\' ? 2 : 1;
    i++;
    return JSON.parse(text.slice(start, i)) as string;
  };
  const value = (depth: number, top: string[] | null): void => {
    if (depth > 64) throw new InputError(path, 'header JSON is nested too deeply');
    ws();
    const c = text[i];
    if (c === '{') {
      i++;
      const seen = new Set<string>();
      ws();
      if (text[i] === '}') {
        i++;
        return;
      }
      for (;;) {
        ws();
        const k = str();
        if (seen.has(k)) {
          throw new InputError(
            path,
            depth === 0 ? `duplicate tensor name "${k}" in the header` : `duplicate key "${k}" in the header`,
          );
        }
        seen.add(k);
        if (top) top.push(k);
        ws();
        i++; // ':'
        value(depth + 1, null);
        ws();
        if (text[i++] === '}') return;
      }
    } else if (c === '[') {
      i++;
      ws();
      if (text[i] === ']') {
        i++;
        return;
      }
      for (;;) {
        value(depth + 1, null);
        ws();
        if (text[i++] === ']') return;
      }
    } else if (c === '"') {
      str();
    } else {
      while (i < text.length && !',}] \t\n\r'.includes(text[i])) i++;
    }
  };
  const keys: string[] = [];
  value(0, keys);
  return keys;
}

export type WriteDtype = 'F32' | 'F16' | 'BF16';

export interface WriteEntry {
  name: string;
  shape: number[];
  data: Float32Array;
  dtype?: WriteDtype;
}

/**
 * An entry whose data is produced only when its bytes are written (streams a big model to disk): either
 * float32 values (`load`, stored as F32/F16/BF16) or raw little-endian bytes of any dtype (`loadRaw`, for
 * copying tensors such as I64 buffers unchanged).
 */
export type LazyWriteEntry =
  | { name: string; shape: number[]; load: () => Float32Array; dtype?: WriteDtype }
  | { name: string; shape: number[]; loadRaw: () => Uint8Array; dtype: string };

/**
 * Writes a safetensors file atomically: header padded with spaces to a multiple of 8 bytes (as the Rust
 * writer does), tensors in the order given with contiguous offsets.
 */
export function writeSafetensors(
  path: string,
  entries: WriteEntry[],
  metadata?: Record<string, string>,
): void {
  for (const e of entries) {
    const n = e.shape.reduce((a, b) => a * b, 1);
    if (e.data.length !== n) {
      throw new Error(
        `writeSafetensors ${path}: tensor "${e.name}" has ${e.data.length} values but shape [${e.shape.join(', ')}] needs ${n}`,
      );
    }
  }
  writeSafetensorsLazy(
    path,
    entries.map((e) => ({ name: e.name, shape: e.shape, dtype: e.dtype, load: () => e.data })),
    metadata,
  );
}

export function writeSafetensorsLazy(
  path: string,
  entries: LazyWriteEntry[],
  metadata?: Record<string, string>,
): void {
  const seen = new Set<string>();
  const parts: string[] = [];
  if (metadata) {
    for (const [k, v] of Object.entries(metadata)) {
      if (typeof v !== 'string')
        throw new Error(`writeSafetensors ${path}: metadata "${k}" must be a string`);
    }
    parts.push(`"__metadata__":${JSON.stringify(metadata)}`);
  }
  let offset = 0;
  for (const e of entries) {
    if (!e.name || e.name === '__metadata__')
      throw new Error(`writeSafetensors ${path}: invalid tensor name "${e.name}"`);
    if (seen.has(e.name)) throw new Error(`writeSafetensors ${path}: duplicate tensor name "${e.name}"`);
    seen.add(e.name);
    if (!e.shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
      throw new Error(
        `writeSafetensors ${path}: tensor "${e.name}" has an invalid shape [${e.shape.join(', ')}]`,
      );
    }
    const dtype = e.dtype ?? 'F32';
    if (DTYPE_BYTES[dtype] === undefined || ('load' in e && !['F32', 'F16', 'BF16'].includes(dtype))) {
      throw new Error(`writeSafetensors ${path}: tensor "${e.name}" cannot be written as dtype ${dtype}`);
    }
    const bytes = e.shape.reduce((a, b) => a * b, 1) * DTYPE_BYTES[dtype];
    // Keys are written by hand: JSON.stringify on an object would move integer-like names first.
    parts.push(
      `${JSON.stringify(e.name)}:${JSON.stringify({ dtype, shape: e.shape, data_offsets: [offset, offset + bytes] })}`,
    );
    offset += bytes;
  }
  let header = Buffer.from(`{${parts.join(',')}}`, 'utf8');
  const pad = (8 - (header.length % 8)) % 8;
  if (pad) header = Buffer.concat([header, Buffer.alloc(pad, 0x20)]);
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(header.length));
  function* chunks(): Generator<ArrayBufferView> {
    yield len;
    yield header;
    for (const e of entries) {
      const n = e.shape.reduce((a, b) => a * b, 1);
      if ('loadRaw' in e) {
        const raw = e.loadRaw();
        if (raw.length !== n * DTYPE_BYTES[e.dtype]) {
          throw new Error(
            `writeSafetensors ${path}: tensor "${e.name}" has ${raw.length} bytes but ${e.dtype} x [${e.shape.join(', ')}] needs ${n * DTYPE_BYTES[e.dtype]}`,
          );
        }
        yield raw;
        continue;
      }
      const data = e.load();
      if (data.length !== n) {
        throw new Error(
          `writeSafetensors ${path}: tensor "${e.name}" has ${data.length} values but shape [${e.shape.join(', ')}] needs ${n}`,
        );
      }
      const dtype = e.dtype ?? 'F32';
      yield dtype === 'F32' ? data : dtype === 'F16' ? f32ToF16(data) : f32ToBf16(data);
    }
  }
  writeFileAtomic(path, chunks());
}
