/**
 * Max-sum window search (docs/method.md step 3) at the real LLaMA 13B -> 7B MLP shape: S [13824, 5120]
 * (teacher gate/up weight), window [11008, 4096] (student). Target: native under 1 s.
 */
import { bestTime, fillFast, nativeForBench, type BenchEntry, type Recorder } from './lib.js';
import { tsKernels } from '../src/engine/ts/index.js';

const N = 13824,
  M = 5120,
  WN = 11008,
  WM = 4096;

export async function run(rec: Recorder): Promise<void> {
  const S = fillFast(new Float32Array(N * M), 7, 0, 1); // sensitivities are non-negative
  const shape = `${N}x${M} window ${WN}x${WM}`;
  let tsEntry: BenchEntry | null = null;
  try {
    const t = bestTime(() => tsKernels.maxWindow(S, N, M, WN, WM), 1, 0);
    tsEntry = rec.record(`maxWindow ts ${shape} (1 call)`, t, 's');
  } catch (e) {
    rec.note(`maxWindow ts failed: ${(e as Error).message}`);
  }
  const { k: nat, error } = nativeForBench();
  if (!nat) {
    rec.note(`native addon unavailable (${error})`);
    return;
  }
  try {
    const t = bestTime(() => nat.maxWindow(S, N, M, WN, WM), 3, 1);
    rec.record(`maxWindow native ${shape}`, t, 's', tsEntry);
    const a = nat.maxWindow(S, N, M, WN, WM);
    rec.note(`native window at (${a.i}, ${a.j}), share ${(a.sum / a.total).toFixed(4)}`);
  } catch (e) {
    rec.note(`maxWindow native failed: ${(e as Error).message}`);
  }
}
