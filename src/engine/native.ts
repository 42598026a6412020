/** Loads the C++ addon (build/Release/nuggets_native.node) and adapts it to the Kernels interface. */
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Kernels } from './kernels.js';

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
  try {
    const addon = createRequire(import.meta.url)(path);
    cached = { kernels: wrapAddon(addon), error: '' };
  } catch (e) {
    cached = { kernels: null, error: `${path} failed to load: ${(e as Error).message}` };
  }
  return cached;
}

// The addon's functions take the same arguments as the Kernels methods; this is filled in by the
// engine work (GEMM/SVD/fused kernels).
// eslint-disable-next-line @typescript-eslint/no-explicit-any
function wrapAddon(addon: any): Kernels {
  return { name: 'native', ...addon } as Kernels;
}
