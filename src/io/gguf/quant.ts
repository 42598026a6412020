/**
 * Tensor encodings of a GGUF export: f32, f16, bf16 and ggml's Q8_0, with the rules
 * convert_hf_to_gguf.py follows for which tensor gets which type.
 *
 * Q8_0 (ggml's quantize_row_q8_0_ref): blocks of 32 consecutive values of a row, each stored as an
 * f16 scale d = max|x| / 127 followed by 32 int8 q = roundf(x / d) (x times 1/d in float32, rounded
 * half away from zero), 34 bytes a block. A row length that is not a multiple of 32 cannot be
 * quantized; such a tensor falls back to f16, as gguf-py does.
 */
import { f32ToBf16, f32ToF16, floatToHalf, halfToFloat } from '../../engine/dtype.js';
import { GgmlType } from './writer.js';

export type GgufOutType = 'f32' | 'f16' | 'bf16' | 'q8_0';

export const Q8_0_BLOCK = 32;
const Q8_0_BLOCK_BYTES = 2 + Q8_0_BLOCK;

/** general.file_type (llama_ftype) of an export: ALL_F32, MOSTLY_F16, MOSTLY_Q8_0, MOSTLY_BF16. */
export const FILE_TYPE: Readonly<Record<GgufOutType, number>> = { f32: 0, f16: 1, q8_0: 7, bf16: 32 };

/**
 * The ggml type a tensor is stored in: 1-D tensors (norms, biases, rope factors) stay f32 as in
 * convert_hf_to_gguf.py; Q8_0 needs rows (the innermost dimension) that are whole blocks, else f16.
 */
export function tensorType(out: GgufOutType, shape: readonly number[]): GgmlType {
  if (shape.length < 2 || out === 'f32') return GgmlType.F32;
  if (out === 'f16') return GgmlType.F16;
  if (out === 'bf16') return GgmlType.BF16;
  return shape[shape.length - 1] % Q8_0_BLOCK === 0 ? GgmlType.Q8_0 : GgmlType.F16;
}

/** Bytes of a tensor of `count` values in a ggml type. */
export function typeBytes(type: GgmlType, count: number): number {
  switch (type) {
    case GgmlType.F32:
      return count * 4;
    case GgmlType.F16:
    case GgmlType.BF16:
      return count * 2;
    case GgmlType.Q8_0:
      return (count / Q8_0_BLOCK) * Q8_0_BLOCK_BYTES;
  }
}

function bytesOf(a: Float32Array | Uint16Array): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

/** C's roundf: half away from zero (Math.round rounds half toward +Infinity). */
function roundf(x: number): number {
  return x < 0 ? -Math.round(-x) : Math.round(x);
}

/** Q8_0 blocks of `x` (length a multiple of 32), exactly as ggml's reference quantizer makes them. */
export function quantizeQ8_0(x: Float32Array): Uint8Array {
  if (x.length % Q8_0_BLOCK !== 0) throw new Error(`Q8_0 needs a multiple of ${Q8_0_BLOCK} values`);
  const nb = x.length / Q8_0_BLOCK;
  const out = new Uint8Array(nb * Q8_0_BLOCK_BYTES);
  const view = new DataView(out.buffer);
  const qs = new Int8Array(out.buffer);
  for (let b = 0; b < nb; b++) {
    const base = b * Q8_0_BLOCK;
    let amax = 0;
    for (let j = 0; j < Q8_0_BLOCK; j++) {
      const a = Math.abs(x[base + j]);
      if (a > amax) amax = a;
    }
    const d = Math.fround(amax / 127);
    const id = d ? Math.fround(1 / d) : 0;
    const o = b * Q8_0_BLOCK_BYTES;
    view.setUint16(o, floatToHalf(d), true);
    for (let j = 0; j < Q8_0_BLOCK; j++) qs[o + 2 + j] = roundf(Math.fround(x[base + j] * id));
  }
  return out;
}

/** The value Q8_0 storage gives back: d (rounded to f16) times q. */
export function dequantizeQ8_0(bytes: Uint8Array, count: number): Float32Array {
  const out = new Float32Array(count);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  for (let b = 0; b < count / Q8_0_BLOCK; b++) {
    const o = b * Q8_0_BLOCK_BYTES;
    const d = halfToFloat(view.getUint16(o, true));
    for (let j = 0; j < Q8_0_BLOCK; j++) out[b * Q8_0_BLOCK + j] = d * view.getInt8(o + 2 + j);
  }
  return out;
}

/** `x` encoded in a ggml type. */
export function encodeTensor(x: Float32Array, type: GgmlType): Uint8Array {
  switch (type) {
    case GgmlType.F32:
      return bytesOf(x);
    case GgmlType.F16:
      return bytesOf(f32ToF16(x));
    case GgmlType.BF16:
      return bytesOf(f32ToBf16(x));
    case GgmlType.Q8_0:
      return quantizeQ8_0(x);
  }
}
