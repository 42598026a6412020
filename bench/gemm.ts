/**
 * GEMM throughput (the kernel every layer's forward and backward runs on): native and ts at 1024^3 and 2048^3, each against the CPU's fp32 peak
 * (native FMA microkernel) and against OpenBLAS sgemm timed in C in the same process (target:
 * native >= 0.9x, i.e. the N-API binding adds no real cost).
 */
import { benchHelpers, bestTime, fillFast, nativeForBench, type BenchEntry, type Recorder } from './lib.js';
import { tsKernels } from '../src/engine/ts/index.js';

export async function run(rec: Recorder): Promise<void> {
  const { k: nat, error } = nativeForBench();
  const { helpers, error: helpersError } = benchHelpers();
  let peak: BenchEntry | null = null;
  if (nat && !helpers) rec.note(`bench helpers unavailable (${helpersError}): no peak, no OpenBLAS baseline`);
  if (nat && helpers) {
    const p = helpers.benchPeakFlops();
    peak = rec.record(`cpu fp32 peak (FMA loop, all cores)`, p.gflops, 'GFLOP/s');
    rec.note(`peak measured with ${p.isa}, ${p.threads} OpenMP threads`);
  } else {
    rec.note(`native addon unavailable (${error}): no peak, no OpenBLAS baseline, ts only`);
  }
  for (const n of [1024, 2048]) {
    const gflop = (2 * n * n * n) / 1e9;
    const A = fillFast(new Float32Array(n * n), 1),
      B = fillFast(new Float32Array(n * n), 2);
    const C = new Float32Array(n * n);
    let direct: BenchEntry | null = null;
    if (nat && helpers) {
      // Interleave the C-timed and JS-called runs so background load hits both alike; best of each.
      const reps = n === 1024 ? 15 : 5;
      let tDirect = Infinity,
        tNative = Infinity;
      nat.gemm(false, false, n, n, n, 1, A, n, B, n, 0, C, n);
      for (let r = 0; r < reps; r++) {
        tDirect = Math.min(tDirect, helpers.benchSgemmDirect(n, n, n, 1));
        tNative = Math.min(
          tNative,
          bestTime(() => nat.gemm(false, false, n, n, n, 1, A, n, B, n, 0, C, n), 1, 0),
        );
      }
      direct = rec.record(`openblas sgemm called from C ${n}^3`, gflop / tDirect, 'GFLOP/s', peak);
      rec.record(`gemm native ${n}^3 / peak`, gflop / tNative, 'GFLOP/s', peak);
      rec.record(`gemm native ${n}^3 / sgemm from C`, gflop / tNative, 'GFLOP/s', direct);
    }
    // The TS kernel takes seconds at these sizes: 1024^3 best of 2 after a warm-up, 2048^3 a single
    // call (already JIT-warm from 1024), named as such.
    const t =
      n === 1024
        ? bestTime(() => tsKernels.gemm(false, false, n, n, n, 1, A, n, B, n, 0, C, n), 2, 1)
        : bestTime(() => tsKernels.gemm(false, false, n, n, n, 1, A, n, B, n, 0, C, n), 1, 0);
    const label = n === 1024 ? `gemm ts ${n}^3` : `gemm ts ${n}^3 (1 call)`;
    if (peak) rec.record(`${label} / peak`, gflop / t, 'GFLOP/s', peak);
    if (direct) rec.record(`${label} / sgemm from C`, gflop / t, 'GFLOP/s', direct);
    if (!peak && !direct) rec.record(label, gflop / t, 'GFLOP/s');
  }
}
