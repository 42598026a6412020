/**
 * Shared tools of the kernel tests: seeded random buffers, closeness checks with readable failures,
 * central finite differences in float64, and access to the native backend (tests that need it are
 * skipped, with the reason, when the addon is not built).
 */
import assert from 'node:assert/strict';
import { Rng } from '../../src/engine/rng.js';
import { loadNative } from '../../src/engine/native.js';
import type { Kernels } from '../../src/engine/kernels.js';

export type F64 = Float64Array;

/**
 * The native kernels, or null with the reason (tests pass it as `skip`). Under NUGGETS_BACKEND=native
 * (as `npm test` runs) a missing addon is an error instead: a skipped parity test would pass CI.
 */
export function nativeOrSkip(): { k: Kernels | null; skip: string | false } {
  const n = loadNative();
  if (n.kernels) return { k: n.kernels, skip: false };
  if (process.env.NUGGETS_BACKEND?.trim().toLowerCase() === 'native')
    throw new Error(`NUGGETS_BACKEND=native but the native addon is not available: ${n.error}`);
  return { k: null, skip: `native addon not available: ${n.error}` };
}

export function randF32(rng: Rng, n: number, lo = -1, hi = 1): Float32Array {
  return rng.fillUniform(new Float32Array(n), lo, hi);
}

export function randF64(rng: Rng, n: number, lo = -1, hi = 1): Float64Array {
  const a = new Float64Array(n);
  for (let i = 0; i < n; i++) a[i] = lo + (hi - lo) * rng.uniform();
  return a;
}

/** Float64Array presented as the kernels' Float32Array type (the TS kernels work on both). */
export function asF32(a: Float64Array): Float32Array {
  return a as unknown as Float32Array;
}

/**
 * Asserts |got - want| <= rtol * max(|want|_inf, floor) elementwise: a relative error measured
 * against the scale of the whole tensor, so entries that cancel to ~0 do not need absurd precision.
 */
export function assertClose(
  got: ArrayLike<number>,
  want: ArrayLike<number>,
  rtol: number,
  what: string,
  floor = 1e-30,
): void {
  assert.equal(got.length, want.length, `${what}: length ${got.length} vs ${want.length}`);
  let scale = floor;
  for (let i = 0; i < want.length; i++) scale = Math.max(scale, Math.abs(want[i]));
  let worst = 0,
    at = -1;
  for (let i = 0; i < want.length; i++) {
    const d = Math.abs(got[i] - want[i]);
    if (!(d <= worst) || Number.isNaN(got[i]) !== Number.isNaN(want[i])) {
      worst = Number.isNaN(d) ? Infinity : d;
      at = i;
    }
  }
  if (at >= 0 && !(worst <= rtol * scale)) {
    assert.fail(
      `${what}: element ${at} is ${got[at]}, expected ${want[at]} (error ${worst}, allowed ${rtol * scale})`,
    );
  }
}

/** Relative closeness of two scalars. */
export function assertNear(got: number, want: number, rtol: number, what: string): void {
  const d = Math.abs(got - want);
  if (!(d <= rtol * Math.max(Math.abs(want), 1e-300)))
    assert.fail(`${what}: ${got}, expected ${want} (rel. error ${d / Math.abs(want)})`);
}

/**
 * Central finite differences of f at x (float64), for every index in `which` (all by default),
 * compared with the analytical gradient `grad`: |fd - g| <= rtol * max(|g|, |fd|) + atol per element
 * (with eps 1e-6 in float64, truncation, O(eps^2), and rounding, O(|f| 1e-16/eps), stay near 1e-9).
 */
export function checkGradient(
  f: () => number,
  x: Float64Array,
  grad: ArrayLike<number>,
  what: string,
  opts: { eps?: number; rtol?: number; atol?: number; which?: number[] } = {},
): void {
  const eps = opts.eps ?? 1e-6,
    rtol = opts.rtol ?? 1e-6,
    atol = opts.atol ?? 1e-8;
  const idx = opts.which ?? [...Array(x.length).keys()];
  let nonzero = 0;
  for (const i of idx) {
    const x0 = x[i];
    x[i] = x0 + eps;
    const fp = f();
    x[i] = x0 - eps;
    const fm = f();
    x[i] = x0;
    const fd = (fp - fm) / (2 * eps);
    const g = grad[i];
    if (g !== 0) nonzero++;
    const tol = rtol * Math.max(Math.abs(g), Math.abs(fd)) + atol;
    if (!(Math.abs(fd - g) <= tol)) assert.fail(`${what}[${i}]: analytical ${g}, finite difference ${fd}`);
  }
  // A gradient check of an identically-zero gradient proves nothing.
  assert.ok(nonzero > 0, `${what}: every checked gradient entry is 0`);
}

/** sum(out * R) in float64. */
export function dot(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i] * b[i];
  return s;
}

/** A Float32Array copy (for feeding the same data to both backends). */
export function f32(a: ArrayLike<number>): Float32Array {
  return Float32Array.from(a);
}
