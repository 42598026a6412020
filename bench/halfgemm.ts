/**
 * Products with half-precision weights (docs/precision.md): Y = X W^T and dX = dY W with W [out, in]
 * in bf16, against OpenBLAS sgemm on the same weights in float32, in the same run, at a 110M-model
 * shape (512 tokens x 768 -> 2048) and at a decoding shape (1 token). Also the bf16-activation route
 * (vdpbf16ps where the CPU has AVX512-BF16).
 */
import { fillFast, nativeForBench, type BenchEntry, type Recorder } from './lib.js';
import { f32ToBf16 } from '../src/engine/dtype.js';
import type { Kernels } from '../src/engine/kernels.js';

/** Best seconds per call of each fn, the calls interleaved so background load hits all alike. */
function bestOfEach(fns: Array<() => void>, reps: number): number[] {
  const best = fns.map(() => Infinity);
  for (const f of fns) f();
  for (let r = 0; r < reps; r++)
    fns.forEach((f, i) => {
      const t0 = process.hrtime.bigint();
      f();
      best[i] = Math.min(best[i], Number(process.hrtime.bigint() - t0) / 1e9);
    });
  return best;
}

function shapes(k: Kernels, rec: Recorder, M: number, K: number, N: number, reps: number): void {
  const X = fillFast(new Float32Array(M * K), 1);
  const W = fillFast(new Float32Array(N * K), 2, -0.05, 0.05);
  const Wh = f32ToBf16(W);
  const Y = new Float32Array(M * N);
  const dY = fillFast(new Float32Array(M * N), 3);
  const dX = new Float32Array(M * K);
  const gflop = (2 * M * N * K) / 1e9;
  const tag = `${M}x${K}x${N}`;
  const [t32, tH, tB, t32b, tHb] = bestOfEach(
    [
      () => k.gemm(false, true, M, N, K, 1, X, K, W, K, 0, Y, N),
      () => k.gemmHalf(true, M, N, K, 1, X, K, Wh, K, 'bf16', 0, Y, N, false),
      () => k.gemmHalf(true, M, N, K, 1, X, K, Wh, K, 'bf16', 0, Y, N, true),
      () => k.gemm(false, false, M, K, N, 1, dY, N, W, K, 0, dX, K),
      () => k.gemmHalf(false, M, K, N, 1, dY, N, Wh, K, 'bf16', 0, dX, K, false),
    ],
    reps,
  );
  const base: BenchEntry = rec.record(`halfgemm sgemm fp32 Y=XW^T ${tag}`, gflop / t32, 'GFLOP/s');
  rec.record(`halfgemm bf16 W, f32 compute Y=XW^T ${tag}`, gflop / tH, 'GFLOP/s', base);
  rec.record(`halfgemm bf16 W, bf16 compute Y=XW^T ${tag}`, gflop / tB, 'GFLOP/s', base);
  if (M === 1) return;
  const baseB = rec.record(`halfgemm sgemm fp32 dX=dYW ${tag}`, gflop / t32b, 'GFLOP/s');
  rec.record(`halfgemm bf16 W dX=dYW ${tag}`, gflop / tHb, 'GFLOP/s', baseB);
}

export async function run(rec: Recorder): Promise<void> {
  const { k, error } = nativeForBench();
  if (!k) {
    rec.note(`native addon unavailable (${error}): nothing to measure`);
    return;
  }
  shapes(k, rec, 512, 768, 2048, 20);
  shapes(k, rec, 1, 4096, 4096, 50);
}
