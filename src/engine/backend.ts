/**
 * Backend selection. NUGGETS_BACKEND=native|ts picks one; by default the native addon is used when
 * it loads, and otherwise the TypeScript reference runs after one clear warning saying why.
 * NUGGETS_BACKEND=native never falls back: `npm test` and CI set it so that an addon that failed to
 * build (npm ci carries on without it) is an error, not a slower green run.
 */
import { InputError } from '../errors.js';
import type { Kernels } from './kernels.js';
import { tsKernels } from './ts/index.js';
import { loadNative } from './native.js';

let current: Kernels | null = null;
let warned = false;

export function selectBackend(name?: string): Kernels {
  const want = (name ?? process.env.NUGGETS_BACKEND ?? '').trim().toLowerCase();
  if (want === 'ts') return tsKernels;
  if (want !== '' && want !== 'native') {
    throw new Error(`NUGGETS_BACKEND="${want}" is not a backend: use "native" or "ts"`);
  }
  const native = loadNative();
  if (native.kernels) return native.kernels;
  if (want === 'native')
    throw new InputError(
      'NUGGETS_BACKEND=native',
      `the native addon cannot load: ${native.error}; unset NUGGETS_BACKEND to run on the TypeScript backend`,
    );
  if (!warned) {
    warned = true;
    process.emitWarning(
      `nuggets: native addon unavailable (${native.error}); using the slower TypeScript backend`,
    );
  }
  return tsKernels;
}

/** The process-wide backend, chosen once. */
export function kernels(): Kernels {
  if (!current) current = selectBackend();
  return current;
}

/** For tests and benches: force a backend for the rest of the process. */
export function setKernels(k: Kernels): void {
  current = k;
}
