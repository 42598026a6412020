/** Loads the C++ addon (build/Release/nuggets_native.node) and checks it provides the Kernels interface. */
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { KERNEL_NAMES, type Kernels } from './kernels.js';

/** The package root: the nearest folder above this file holding package.json (works from src/ and dist/). */
export function packageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json'))) {
    const up = dirname(dir);
    if (up === dir)
      throw new Error('nuggets: cannot find the package root above ' + fileURLToPath(import.meta.url));
    dir = up;
  }
  return dir;
}

let cached: { kernels: Kernels | null; error: string } | null = null;

export function loadNative(): { kernels: Kernels | null; error: string } {
  if (cached) return cached;
  // NUGGETS_NATIVE_PATH points at another build of the addon (and lets tests simulate a missing one).
  const path =
    process.env.NUGGETS_NATIVE_PATH || join(packageRoot(), 'build', 'Release', 'nuggets_native.node');
  if (!existsSync(path)) {
    cached = {
      kernels: null,
      error: `${path} was not built (run "npm rebuild" with libopenblas-dev installed)`,
    };
    return cached;
  }
  // libgomp reads this when the addon loads. Spinning worker threads cost several times the CPU on a
  // busy or oversubscribed machine (parallel test files, study cells) for tiny models; a user's own
  // setting wins.
  process.env.OMP_WAIT_POLICY ??= 'PASSIVE';
  let addon: unknown;
  try {
    addon = createRequire(import.meta.url)(path);
  } catch (e) {
    cached = { kernels: null, error: `${path} failed to load: ${(e as Error).message}` };
    return cached;
  }
  try {
    cached = { kernels: checkAddon(addon, path), error: '' };
  } catch (e) {
    cached = { kernels: null, error: (e as Error).message };
  }
  return cached;
}

/**
 * The addon as a Kernels: its exports must be exactly the kernel functions of KERNEL_TABLE (same
 * names, same arguments as the Kernels methods), so a stale or mismatched build fails here, naming
 * what is missing or extra, instead of at the first call of a missing kernel.
 */
export function checkAddon(addon: unknown, path: string): Kernels {
  if (typeof addon !== 'object' || addon === null)
    throw new Error(`${path} does not export an object of kernel functions`);
  const exports = addon as Record<string, unknown>;
  const missing = KERNEL_NAMES.filter((n) => typeof exports[n] !== 'function');
  const expected = new Set<string>(KERNEL_NAMES);
  const extra = Object.keys(exports).filter((n) => !expected.has(n));
  if (missing.length || extra.length) {
    const parts = [];
    if (missing.length) parts.push(`missing or not a function: ${missing.join(', ')}`);
    if (extra.length) parts.push(`not in the Kernels interface: ${extra.join(', ')}`);
    throw new Error(`${path} does not match the Kernels interface (${parts.join('; ')}); rebuild it`);
  }
  const kernels: Record<string, unknown> = { name: 'native' };
  for (const n of KERNEL_NAMES) kernels[n] = exports[n];
  // Names and kinds are checked above; argument lists cannot be checked from JS (the C++ side
  // checks every argument of every call).
  return kernels as unknown as Kernels;
}
