/**
 * Dense linear algebra in plain TypeScript: thin SVD (one-sided Jacobi) and thin QR (Householder),
 * both computed in float64 on a copy of A. They are the reference for the LAPACK-backed native
 * versions (sgesdd, sgeqrf + sorgqr) and the fallback backend.
 *
 * Results come back in the input's element type: Float32Array in, Float32Array out; a Float64Array
 * (float64 mode, see alloc.ts) keeps double precision. Singular vectors are unique only up to sign
 * (and rotation inside repeated singular values), so backends may differ in sign; compare
 * reconstructions and subspaces, not raw vectors.
 *
 * Neither has a backward kernel: docs/method.md step 4 factorises frozen teacher weights, no gradient flows.
 */
import type { F32, SvdResult } from '../kernels.js';

/** A zeroed array of the same element type as `like` (typed F32 like every kernel buffer). */
function sameKind(like: ArrayLike<number>, n: number): F32 {
  return like instanceof Float64Array ? (new Float64Array(n) as unknown as F32) : new Float32Array(n);
}

function checkMatrix(who: string, A: ArrayLike<number>, m: number, n: number): void {
  if (!Number.isInteger(m) || m < 0 || !Number.isInteger(n) || n < 0) {
    throw new RangeError(`${who}: shape [${m}, ${n}] must be non-negative integers`);
  }
  if (A.length < m * n)
    throw new RangeError(`${who}: A has ${A.length} elements, [${m}, ${n}] needs ${m * n}`);
  // Jacobi sweeps never converge on NaN/Inf; say where the bad value is instead (as the native side does).
  for (let i = 0; i < m * n; i++) {
    if (!Number.isFinite(A[i])) {
      throw new RangeError(
        `${who}: A[${i}] (row ${Math.floor(i / n)}, column ${i % n}) is ${Number.isNaN(A[i]) ? 'NaN' : 'infinite'}`,
      );
    }
  }
}

const JACOBI_TOL = 4e-16; // rotate a pair unless |w_i.w_j| <= tol * |w_i| |w_j| (float64 orthogonality)
const JACOBI_MAX_SWEEPS = 80;

/**
 * Thin SVD of A [m, n]: U [m, k], S [k] descending, Vt [k, n], k = min(m, n). A is not modified.
 *
 * One-sided (Hestenes) Jacobi: rotate pairs of columns of X until they are mutually orthogonal;
 * then X = (columns / norms) diag(norms) V^T. Columns of X are stored as contiguous rows of W, so
 * every rotation streams two rows. X is A when m >= n and A^T otherwise, so W always has
 * k = min(m, n) rows and the rotations act on the short side.
 */
export function svd(A: F32, m: number, n: number): SvdResult {
  checkMatrix('svd', A, m, n);
  const k = Math.min(m, n);
  const U = sameKind(A, m * k),
    S = sameKind(A, k),
    Vt = sameKind(A, k * n);
  if (k === 0) return { U, S, Vt, k };
  const tall = m >= n;
  const len = tall ? m : n; // length of each W row (a column of X)
  // W rows = columns of X. Tall: X = A, row i of W = column i of A. Wide: X = A^T, W = A.
  const W = new Float64Array(k * len);
  if (tall) {
    for (let r = 0; r < m; r++) for (let c = 0; c < n; c++) W[c * m + r] = A[r * n + c];
  } else {
    for (let i = 0; i < k * len; i++) W[i] = A[i];
  }
  // R accumulates the right rotations of X (rows = columns of V_X), starts as I [k, k].
  const R = new Float64Array(k * k);
  for (let i = 0; i < k; i++) R[i * k + i] = 1;
  const norm2 = new Float64Array(k);

  for (let sweep = 0; sweep < JACOBI_MAX_SWEEPS; sweep++) {
    for (let i = 0; i < k; i++) norm2[i] = dot(W, i * len, W, i * len, len);
    let rotated = 0;
    for (let i = 0; i < k - 1; i++) {
      for (let j = i + 1; j < k; j++) {
        const a = norm2[i],
          b = norm2[j];
        if (a === 0 || b === 0) continue;
        const g = dot(W, i * len, W, j * len, len);
        if (Math.abs(g) <= JACOBI_TOL * Math.sqrt(a * b)) continue;
        rotated++;
        // Rotation that zeroes the (i, j) entry of X^T X (Rutishauser's stable formulas).
        const zeta = (b - a) / (2 * g);
        const t = (zeta >= 0 ? 1 : -1) / (Math.abs(zeta) + Math.sqrt(1 + zeta * zeta));
        const c = 1 / Math.sqrt(1 + t * t),
          s = c * t;
        rotateRows(W, i * len, j * len, len, c, s);
        rotateRows(R, i * k, j * k, k, c, s);
        norm2[i] = a - t * g;
        norm2[j] = b + t * g;
      }
    }
    if (rotated === 0) break;
  }

  // Singular values are the column norms of the rotated X; order them descending.
  const sig = new Float64Array(k);
  for (let i = 0; i < k; i++) sig[i] = Math.sqrt(dot(W, i * len, W, i * len, len));
  const order = Array.from({ length: k }, (_, i) => i).sort((x, y) => sig[y] - sig[x] || x - y);

  // Left vectors of X: normalised W rows (completed to an orthonormal set where sigma = 0).
  const L = new Float64Array(k * len);
  for (let q = 0; q < k; q++) {
    const src = order[q],
      s = sig[src];
    if (s > 0) for (let t = 0; t < len; t++) L[q * len + t] = W[src * len + t] / s;
  }
  for (let q = 0; q < k; q++) if (!(sig[order[q]] > 0)) completeOrthonormal(L, q, len);

  for (let q = 0; q < k; q++) S[q] = sig[order[q]];
  if (tall) {
    // A = L^T diag(S) R_sorted: U[:, q] = L row q; Vt row q = R row order[q].
    for (let q = 0; q < k; q++) {
      for (let r = 0; r < m; r++) U[r * k + q] = L[q * len + r];
      const src = order[q] * k;
      for (let c = 0; c < n; c++) Vt[q * n + c] = R[src + c];
    }
  } else {
    // A^T = L^T diag(S) R_sorted, so A = R_sorted^T diag(S) L: U[:, q] = R row order[q]; Vt row q = L row q.
    for (let q = 0; q < k; q++) {
      const src = order[q] * k;
      for (let r = 0; r < m; r++) U[r * k + q] = R[src + r];
      for (let c = 0; c < n; c++) Vt[q * n + c] = L[q * len + c];
    }
  }
  return { U, S, Vt, k };
}

function dot(x: Float64Array, xo: number, y: Float64Array, yo: number, n: number): number {
  let s0 = 0,
    s1 = 0;
  let t = 0;
  for (; t + 1 < n; t += 2) {
    s0 += x[xo + t] * y[yo + t];
    s1 += x[xo + t + 1] * y[yo + t + 1];
  }
  if (t < n) s0 += x[xo + t] * y[yo + t];
  return s0 + s1;
}

/** (row i, row j) <- (c*row_i - s*row_j, s*row_i + c*row_j). */
function rotateRows(X: Float64Array, io: number, jo: number, n: number, c: number, s: number): void {
  for (let t = 0; t < n; t++) {
    const xi = X[io + t],
      xj = X[jo + t];
    X[io + t] = c * xi - s * xj;
    X[jo + t] = s * xi + c * xj;
  }
}

/**
 * Row q of L (rows of length len) becomes a unit vector orthogonal to every other non-zero row:
 * the first standard basis vector that survives two rounds of Gram-Schmidt. Only reached for exact
 * zero singular values, whose vectors are arbitrary but must keep U / Vt orthonormal like LAPACK's.
 */
function completeOrthonormal(L: Float64Array, q: number, len: number): void {
  const rows = L.length / len;
  for (let e = 0; e < len; e++) {
    const v = new Float64Array(len);
    v[e] = 1;
    for (let pass = 0; pass < 2; pass++) {
      for (let r = 0; r < rows; r++) {
        if (r === q) continue;
        const d = dot(L, r * len, v, 0, len);
        if (d !== 0) for (let t = 0; t < len; t++) v[t] -= d * L[r * len + t];
      }
    }
    const nv = Math.sqrt(dot(v, 0, v, 0, len));
    if (nv > 0.5) {
      for (let t = 0; t < len; t++) L[q * len + t] = v[t] / nv;
      return;
    }
  }
}

/**
 * Thin QR of A [m, n], m >= n: returns Q [m, n] with orthonormal columns and A = Q R (R upper
 * triangular, not returned). Householder reflections in float64; a zero column leaves its
 * reflection out (identity), so Q stays orthonormal for rank-deficient A too. A is not modified.
 */
export function qr(A: F32, m: number, n: number): F32 {
  checkMatrix('qr', A, m, n);
  if (m < n) throw new RangeError(`qr: needs m >= n for a thin Q with orthonormal columns, got [${m}, ${n}]`);
  const Q = sameKind(A, m * n);
  if (n === 0) return Q;
  const Rw = new Float64Array(m * n);
  for (let i = 0; i < m * n; i++) Rw[i] = A[i];
  // Reflector k: v_k (unit, entries k..m-1) stored in V[k*m + i]; skip[k] when the column was zero.
  const V = new Float64Array(n * m);
  const skip = new Uint8Array(n);
  const w = new Float64Array(n);
  for (let k = 0; k < n; k++) {
    let nx = 0;
    for (let i = k; i < m; i++) nx += Rw[i * n + k] * Rw[i * n + k];
    nx = Math.sqrt(nx);
    if (nx === 0) {
      skip[k] = 1;
      continue;
    }
    const x0 = Rw[k * n + k];
    const alpha = x0 >= 0 ? -nx : nx; // sign chosen to avoid cancellation in v0 = x0 - alpha
    const vo = k * m;
    for (let i = k; i < m; i++) V[vo + i] = Rw[i * n + k];
    V[vo + k] = x0 - alpha;
    let nv = 0;
    for (let i = k; i < m; i++) nv += V[vo + i] * V[vo + i];
    nv = Math.sqrt(nv);
    for (let i = k; i < m; i++) V[vo + i] /= nv;
    reflect(Rw, V, vo, k, m, n, k, w);
  }
  // Q = H_0 H_1 ... H_{n-1} [I_n; 0], applied right to left.
  const Qw = new Float64Array(m * n);
  for (let i = 0; i < n; i++) Qw[i * n + i] = 1;
  for (let k = n - 1; k >= 0; k--) if (!skip[k]) reflect(Qw, V, k * m, k, m, n, 0, w);
  for (let i = 0; i < m * n; i++) Q[i] = Qw[i];
  return Q;
}

/** X[k:m, c0:n] -= 2 v (v^T X[k:m, c0:n]) for the unit reflector v = V[vo + k .. vo + m). Row-major X [m, n]. */
function reflect(
  X: Float64Array,
  V: Float64Array,
  vo: number,
  k: number,
  m: number,
  n: number,
  c0: number,
  w: Float64Array,
): void {
  w.fill(0, c0, n);
  for (let i = k; i < m; i++) {
    const vi = V[vo + i];
    if (vi === 0) continue;
    const r = i * n;
    for (let j = c0; j < n; j++) w[j] += vi * X[r + j];
  }
  for (let i = k; i < m; i++) {
    const vi = 2 * V[vo + i];
    if (vi === 0) continue;
    const r = i * n;
    for (let j = c0; j < n; j++) X[r + j] -= vi * w[j];
  }
}
