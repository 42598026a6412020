/**
 * Rank-16 truncated SVD of a 4096 x 4096 matrix (docs/method.md step 4 at LLaMA-7B attention size): exact
 * (LAPACK sgesdd, full thin SVD then truncation) against randomized (Halko range finder, q = 2
 * power iterations, 10 oversampling columns). Target: randomized under 1 s. The randomized error
 * against the exact optimum is also recorded, for a matrix with a decaying spectrum
 * (A = G1 diag(1/(1+i)) G2 with Gaussian G1, G2: not exactly that spectrum, but decaying like it).
 */
import { bestTime, fillFast, nativeForBench, type Recorder } from './lib.js';
import { svdTopR } from '../src/engine/svd.js';

const n = 4096,
  r = 16;

export async function run(rec: Recorder): Promise<void> {
  const { k, error } = nativeForBench();
  if (!k) {
    rec.note(
      `native addon unavailable (${error}): the ts backend cannot do a 4096^2 SVD in bench time; skipped`,
    );
    return;
  }
  // A = G1 diag(s) G2, G1 [n, 256], G2 [256, n], plus small full-rank noise: a decaying spectrum.
  const inner = 256;
  const G1 = fillFast(new Float32Array(n * inner), 3),
    G2 = fillFast(new Float32Array(inner * n), 4);
  for (let q = 0; q < inner; q++) for (let i = 0; i < n; i++) G1[i * inner + q] /= 1 + q;
  const A = fillFast(new Float32Array(n * n), 5, -1e-3, 1e-3);
  k.gemm(false, false, n, n, inner, 1, G1, inner, G2, n, 1, A, n);

  const tRand = bestTime(() => svdTopR(k, A, n, n, r, { method: 'randomized', seed: 1 }), 3, 1);
  let exact: ReturnType<typeof svdTopR> | null = null;
  const tExact = bestTime(
    () => {
      exact = svdTopR(k, A, n, n, r, { method: 'exact' });
    },
    1,
    0,
  );
  const ex = rec.record(`svd rank-${r} ${n}x${n} exact (gesdd, 1 call)`, tExact, 's');
  rec.record(`svd rank-${r} ${n}x${n} randomized (q=2, p=10)`, tRand, 's', ex);

  // Accuracy: ||A - U S Vt||_F against the exact optimum; computed as ||A||^2 - sum(S^2) would
  // cancel badly, so form the residual with a GEMM.
  const rnd = svdTopR(k, A, n, n, r, { method: 'randomized', seed: 1 });
  const err = (t: { U: Float32Array; S: Float32Array; Vt: Float32Array }) => {
    const US = new Float32Array(n * r);
    for (let i = 0; i < n; i++) for (let q = 0; q < r; q++) US[i * r + q] = t.U[i * r + q] * t.S[q];
    const R = A.slice();
    k.gemm(false, false, n, n, r, -1, US, r, t.Vt, n, 1, R, n);
    let s = 0;
    for (let i = 0; i < R.length; i++) s += R[i] * R[i];
    return Math.sqrt(s);
  };
  const eOpt = err(exact!),
    eRnd = err(rnd);
  rec.record(`svd rank-${r} ${n}x${n} randomized residual`, eRnd, 'frobenius norm', {
    name: 'exact rank-16 residual',
    value: eOpt,
  });
}
