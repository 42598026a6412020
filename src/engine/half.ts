/**
 * Half-precision weights held in their file dtype (bf16 or f16) and the process-wide compute dtype.
 *
 * A frozen weight read from a bf16/f16 checkpoint stays a Uint16Array of its bits: half the memory
 * of float32. The matrix products read the bits directly (Kernels.gemmHalf), converting to float32
 * in registers or one panel at a time, and accumulate in float32 (docs/precision.md).
 */
import { bf16ToF32, f16ToF32 } from './dtype.js';

export type HalfDtype = 'bf16' | 'f16';

/** A tensor's values as bf16 or f16 bits (row-major, contiguous). */
export class HalfArray {
  constructor(
    readonly dtype: HalfDtype,
    readonly bits: Uint16Array,
  ) {}

  get length(): number {
    return this.bits.length;
  }

  /** The values upcast to a fresh float32 array (exact). */
  toF32(out = new Float32Array(this.bits.length)): Float32Array {
    return this.dtype === 'bf16' ? bf16ToF32(this.bits, out) : f16ToF32(this.bits, out);
  }
}

/**
 * What the activations are rounded to before a product with half weights: 'f32' keeps them (the
 * default: results equal the float32 model's up to summation order), 'bf16' rounds them to bf16 so
 * the AVX512-BF16 dot-product instruction can consume both sides (faster, less exact).
 */
export type ComputeDtype = 'f32' | 'bf16';

let computeDtype: ComputeDtype | null = null;

function fromEnv(): ComputeDtype {
  const v = (process.env.NUGGETS_COMPUTE_DTYPE ?? '').trim().toLowerCase();
  if (v === '' || v === 'f32') return 'f32';
  if (v === 'bf16') return 'bf16';
  throw new Error(`NUGGETS_COMPUTE_DTYPE="${v}" is not a compute dtype: use "f32" or "bf16"`);
}

/** The compute dtype of half-weight products: set by --compute-dtype, else NUGGETS_COMPUTE_DTYPE, else f32. */
export function getComputeDtype(): ComputeDtype {
  computeDtype ??= fromEnv();
  return computeDtype;
}

/** Sets the compute dtype for this process (and, through the environment, for workers it starts). */
export function setComputeDtype(d: ComputeDtype): void {
  computeDtype = d;
  process.env.NUGGETS_COMPUTE_DTYPE = d;
}
