/**
 * Held-out splits for "held-out loss each epoch": a seeded, deterministic choice of `n` examples
 * (or a fraction) kept out of training, the rest in their original order.
 */
import { Rng } from '../engine/rng.js';
import { InputError } from '../errors.js';

/** `size` >= 1 is a count, 0 < size < 1 a fraction of the examples (rounded, at least 1). */
export function heldOutCount(total: number, size: number): number {
  if (!(size >= 0) || !Number.isFinite(size)) throw new InputError('held-out size', `must be a number >= 0, got ${size}`);
  if (size === 0) return 0;
  const n = size < 1 ? Math.max(1, Math.round(total * size)) : Math.floor(size);
  if (n >= total) throw new InputError('held-out size', `${n} leaves no training examples (of ${total})`);
  return n;
}

/** Splits `items` into train and held-out parts; both keep the original relative order. */
export function splitHeldOut<T>(items: T[], size: number, seed: number): { train: T[]; heldOut: T[] } {
  const n = heldOutCount(items.length, size);
  if (n === 0) return { train: items.slice(), heldOut: [] };
  const idx = new Rng(seed).shuffle(Array.from({ length: items.length }, (_, i) => i));
  const held = new Set(idx.slice(0, n));
  return {
    train: items.filter((_, i) => !held.has(i)),
    heldOut: items.filter((_, i) => held.has(i)),
  };
}
