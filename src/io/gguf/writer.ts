/**
 * The GGUF container (version 3), written from the format's specification as llama.cpp's gguf-py
 * writes it:
 *
 *   "GGUF" magic, u32 version 3, u64 tensor count, u64 metadata count,
 *   metadata: (string key, u32 value type, value)*,
 *   tensor infos: (string name, u32 n_dims, u64 ne[n_dims] innermost first, u32 ggml type, u64 offset)*,
 *   zero padding to the alignment, then the tensor data, each tensor starting at a multiple of the
 *   alignment (offsets are relative to the start of the data section).
 *
 * Strings are u64 byte length + UTF-8 bytes, arrays u32 element type + u64 count + elements, all
 * little-endian. The alignment is 32 unless `general.alignment` (u32) says otherwise.
 *
 * Tensor data is produced lazily, one tensor at a time, while the file is written (temp name, then
 * rename), so a model is never held twice in memory.
 */
import { writeFileAtomic } from '../atomic.js';

export const GGUF_MAGIC = 0x46554747; // "GGUF" read as a little-endian u32
export const GGUF_VERSION = 3;
export const GGUF_DEFAULT_ALIGNMENT = 32;

/** GGUF metadata value types. */
export enum GgufValueType {
  UINT8 = 0,
  INT8 = 1,
  UINT16 = 2,
  INT16 = 3,
  UINT32 = 4,
  INT32 = 5,
  FLOAT32 = 6,
  BOOL = 7,
  STRING = 8,
  ARRAY = 9,
  UINT64 = 10,
  INT64 = 11,
  FLOAT64 = 12,
}

/** ggml tensor types written here (ggml.h numbering). */
export enum GgmlType {
  F32 = 0,
  F16 = 1,
  Q8_0 = 8,
  BF16 = 30,
}

/** One metadata value: a scalar of a type, or an array of scalars of one type. */
export type GgufValue =
  | {
      type: Exclude<GgufValueType, GgufValueType.ARRAY | GgufValueType.STRING | GgufValueType.BOOL>;
      value: number;
    }
  | { type: GgufValueType.BOOL; value: boolean }
  | { type: GgufValueType.STRING; value: string }
  | { type: GgufValueType.ARRAY; itemType: GgufValueType.STRING; value: readonly string[] }
  | {
      type: GgufValueType.ARRAY;
      itemType: GgufValueType.FLOAT32 | GgufValueType.INT32 | GgufValueType.UINT32;
      value: ArrayLike<number>;
    };

export const gv = {
  u32: (value: number): GgufValue => ({ type: GgufValueType.UINT32, value }),
  i32: (value: number): GgufValue => ({ type: GgufValueType.INT32, value }),
  f32: (value: number): GgufValue => ({ type: GgufValueType.FLOAT32, value }),
  bool: (value: boolean): GgufValue => ({ type: GgufValueType.BOOL, value }),
  str: (value: string): GgufValue => ({ type: GgufValueType.STRING, value }),
  strs: (value: readonly string[]): GgufValue => ({
    type: GgufValueType.ARRAY,
    itemType: GgufValueType.STRING,
    value,
  }),
  f32s: (value: ArrayLike<number>): GgufValue => ({
    type: GgufValueType.ARRAY,
    itemType: GgufValueType.FLOAT32,
    value,
  }),
  i32s: (value: ArrayLike<number>): GgufValue => ({
    type: GgufValueType.ARRAY,
    itemType: GgufValueType.INT32,
    value,
  }),
};

/** A tensor to write: its GGUF name, shape in row-major (numpy) order, ggml type and lazily made bytes. */
export interface GgufTensor {
  name: string;
  /** Row-major shape, outermost first (as safetensors and numpy); written reversed as ggml's ne. */
  shape: readonly number[];
  type: GgmlType;
  /** Exact byte size of the data (checked against what `data()` returns). */
  nbytes: number;
  /** The encoded data, made when the writer reaches this tensor. */
  data: () => Uint8Array;
}

/** A growable little-endian byte buffer for the header. */
class ByteSink {
  private buf = new Uint8Array(1 << 16);
  private view = new DataView(this.buf.buffer);
  length = 0;

  private reserve(n: number): void {
    if (this.length + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.length + n) size *= 2;
    const next = new Uint8Array(size);
    next.set(this.buf.subarray(0, this.length));
    this.buf = next;
    this.view = new DataView(next.buffer);
  }

  u8(v: number): void {
    this.reserve(1);
    this.view.setUint8(this.length, v);
    this.length += 1;
  }
  i8(v: number): void {
    this.reserve(1);
    this.view.setInt8(this.length, v);
    this.length += 1;
  }
  u16(v: number): void {
    this.reserve(2);
    this.view.setUint16(this.length, v, true);
    this.length += 2;
  }
  i16(v: number): void {
    this.reserve(2);
    this.view.setInt16(this.length, v, true);
    this.length += 2;
  }
  u32(v: number): void {
    this.reserve(4);
    this.view.setUint32(this.length, v, true);
    this.length += 4;
  }
  i32(v: number): void {
    this.reserve(4);
    this.view.setInt32(this.length, v, true);
    this.length += 4;
  }
  f32(v: number): void {
    this.reserve(4);
    this.view.setFloat32(this.length, v, true);
    this.length += 4;
  }
  f64(v: number): void {
    this.reserve(8);
    this.view.setFloat64(this.length, v, true);
    this.length += 8;
  }
  u64(v: number | bigint): void {
    this.reserve(8);
    this.view.setBigUint64(this.length, BigInt(v), true);
    this.length += 8;
  }
  i64(v: number | bigint): void {
    this.reserve(8);
    this.view.setBigInt64(this.length, BigInt(v), true);
    this.length += 8;
  }
  bytes(b: Uint8Array): void {
    this.reserve(b.length);
    this.buf.set(b, this.length);
    this.length += b.length;
  }
  str(s: string): void {
    const b = new TextEncoder().encode(s);
    this.u64(b.length);
    this.bytes(b);
  }
  zeros(n: number): void {
    this.reserve(n);
    this.buf.fill(0, this.length, this.length + n);
    this.length += n;
  }
  result(): Uint8Array {
    return this.buf.subarray(0, this.length);
  }
}

function writeScalar(out: ByteSink, type: GgufValueType, v: number | boolean | string): void {
  switch (type) {
    case GgufValueType.UINT8:
      return out.u8(v as number);
    case GgufValueType.INT8:
      return out.i8(v as number);
    case GgufValueType.UINT16:
      return out.u16(v as number);
    case GgufValueType.INT16:
      return out.i16(v as number);
    case GgufValueType.UINT32:
      return out.u32(v as number);
    case GgufValueType.INT32:
      return out.i32(v as number);
    case GgufValueType.FLOAT32:
      return out.f32(v as number);
    case GgufValueType.BOOL:
      return out.u8(v ? 1 : 0);
    case GgufValueType.STRING:
      return out.str(v as string);
    case GgufValueType.UINT64:
      return out.u64(v as number);
    case GgufValueType.INT64:
      return out.i64(v as number);
    case GgufValueType.FLOAT64:
      return out.f64(v as number);
    default:
      throw new Error(`gguf: no scalar of type ${type}`);
  }
}

function writeValue(out: ByteSink, v: GgufValue): void {
  out.u32(v.type);
  if (v.type !== GgufValueType.ARRAY) return writeScalar(out, v.type, v.value);
  out.u32(v.itemType);
  out.u64(v.value.length);
  for (let i = 0; i < v.value.length; i++) writeScalar(out, v.itemType, v.value[i]);
}

function alignUp(n: number, a: number): number {
  return Math.ceil(n / a) * a;
}

/** The header bytes (through the padding before the data) and each tensor's data offset. */
export function ggufHeader(
  metadata: ReadonlyMap<string, GgufValue>,
  tensors: readonly GgufTensor[],
): { header: Uint8Array; offsets: number[]; alignment: number } {
  const al = metadata.get('general.alignment');
  const alignment = al && al.type === GgufValueType.UINT32 ? al.value : GGUF_DEFAULT_ALIGNMENT;
  if (!(Number.isInteger(alignment) && alignment > 0 && alignment % 8 === 0))
    throw new Error(`gguf: general.alignment must be a positive multiple of 8, got ${alignment}`);
  const out = new ByteSink();
  out.u32(GGUF_MAGIC);
  out.u32(GGUF_VERSION);
  out.u64(tensors.length);
  out.u64(metadata.size);
  for (const [key, v] of metadata) {
    out.str(key);
    writeValue(out, v);
  }
  const offsets: number[] = [];
  let offset = 0;
  const seen = new Set<string>();
  for (const t of tensors) {
    if (seen.has(t.name)) throw new Error(`gguf: tensor ${t.name} written twice`);
    seen.add(t.name);
    out.str(t.name);
    out.u32(t.shape.length);
    for (let i = t.shape.length - 1; i >= 0; i--) out.u64(t.shape[i]);
    out.u32(t.type);
    out.u64(offset);
    offsets.push(offset);
    offset = alignUp(offset + t.nbytes, alignment);
  }
  out.zeros(alignUp(out.length, alignment) - out.length);
  return { header: out.result(), offsets, alignment };
}

/** Writes a GGUF file atomically (temp name, fsync, rename); tensor data is made one tensor at a time. */
export function writeGguf(
  path: string,
  metadata: ReadonlyMap<string, GgufValue>,
  tensors: readonly GgufTensor[],
): void {
  const { header, alignment } = ggufHeader(metadata, tensors);
  function* chunks(): Generator<Uint8Array> {
    yield header;
    for (const t of tensors) {
      const b = t.data();
      if (b.byteLength !== t.nbytes)
        throw new Error(`gguf: tensor ${t.name} has ${b.byteLength} bytes, expected ${t.nbytes}`);
      yield b;
      const pad = alignUp(b.byteLength, alignment) - b.byteLength;
      if (pad > 0) yield new Uint8Array(pad);
    }
  }
  writeFileAtomic(path, chunks());
}
