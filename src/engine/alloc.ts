/**
 * Buffer allocation for activations and gradients. Normally Float32Array; gradient checks switch the
 * process to float64 (TypeScript backend only) so that finite differences are computed in float64 by
 * the very same model code. The TypeScript kernels work unchanged on Float64Array buffers.
 */
export type Precision = 'f32' | 'f64';

let precision: Precision = 'f32';

export function setPrecision(p: Precision): void {
  precision = p;
}

export function getPrecision(): Precision {
  return precision;
}

/** A zeroed buffer of n elements in the current precision (typed as Float32Array for the kernels). */
export function alloc(n: number): Float32Array {
  return precision === 'f64' ? (new Float64Array(n) as unknown as Float32Array) : new Float32Array(n);
}

/** A copy of `src` in the current precision. */
export function allocFrom(src: ArrayLike<number>): Float32Array {
  const out = alloc(src.length);
  for (let i = 0; i < src.length; i++) out[i] = src[i];
  return out;
}
