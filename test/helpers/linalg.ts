/** Float64 linear-algebra references for the tests, independent of the kernels under test. */
import type { Rng } from '../../src/engine/rng.js';

/**
 * [rows, cols] row-major with orthonormal columns from normal draws: modified Gram-Schmidt, each
 * column orthogonalised and normalised twice ("twice is enough") in float64.
 */
export function orthonormal(rows: number, cols: number, rng: Rng): Float64Array {
  const Q = new Float64Array(rows * cols);
  for (let i = 0; i < Q.length; i++) Q[i] = rng.normal();
  for (let j = 0; j < cols; j++) {
    for (let pass = 0; pass < 2; pass++) {
      for (let p = 0; p < j; p++) {
        let d = 0;
        for (let i = 0; i < rows; i++) d += Q[i * cols + p] * Q[i * cols + j];
        for (let i = 0; i < rows; i++) Q[i * cols + j] -= d * Q[i * cols + p];
      }
      let nn = 0;
      for (let i = 0; i < rows; i++) nn += Q[i * cols + j] ** 2;
      nn = Math.sqrt(nn);
      for (let i = 0; i < rows; i++) Q[i * cols + j] /= nn;
    }
  }
  return Q;
}
