/**
 * Window search and top-k selection for extraction (docs/method.md step 3 and its variants).
 *
 * maxWindow scores every [wn, wm] window of S [n, m] with the summed-area-table identity in its
 * rolling, separable form, which keeps memory at O(m) instead of a full (n+1)(m+1) float64 table:
 *   colWin[c]   = sum of S[i .. i+wn-1][c]                (float64, slid down one row per step:
 *                 colWin += S[i+wn] - S[i])
 *   prefix[c]   = colWin[0] + ... + colWin[c-1]           (float64, one row of the SAT of colWin)
 *   window(i,j) = prefix[j+wm] - prefix[j]
 * Every window is scored; windows are visited in (i, j) order and replaced only on a strictly larger
 * sum, so ties go to the smallest i, then the smallest j. The native kernel does the same float64
 * operations in the same order, so both backends return the same window bit for bit.
 */
import type { F32, WindowResult } from '../kernels.js';

export function checkWindowArgs(len: number, n: number, m: number, wn: number, wm: number): void {
  for (const [name, v] of [
    ['n', n],
    ['m', m],
    ['wn', wn],
    ['wm', wm],
  ] as const) {
    if (!Number.isInteger(v) || v < 1)
      throw new RangeError(`maxWindow: ${name} must be a positive integer, got ${v}`);
  }
  if (wn > n || wm > m) {
    throw new RangeError(`maxWindow: the window [${wn}, ${wm}] does not fit in the matrix [${n}, ${m}]`);
  }
  if (len < n * m) throw new RangeError(`maxWindow: S has ${len} entries, [${n}, ${m}] needs ${n * m}`);
}

export function maxWindow(S: F32, n: number, m: number, wn: number, wm: number): WindowResult {
  checkWindowArgs(S.length, n, m, wn, wm);
  const colWin = new Float64Array(m);
  const prefix = new Float64Array(m + 1);
  let total = 0;
  for (let r = 0; r < wn; r++) {
    const o = r * m;
    for (let c = 0; c < m; c++) {
      colWin[c] += S[o + c];
      total += S[o + c];
    }
  }
  let best = -Infinity,
    bi = 0,
    bj = 0;
  for (let i = 0; ; i++) {
    for (let c = 0; c < m; c++) prefix[c + 1] = prefix[c] + colWin[c];
    for (let j = 0; j + wm <= m; j++) {
      const s = prefix[j + wm] - prefix[j];
      if (s > best) {
        best = s;
        bi = i;
        bj = j;
      }
    }
    if (i + wn >= n) break;
    const inRow = (i + wn) * m,
      outRow = i * m;
    for (let c = 0; c < m; c++) {
      colWin[c] += S[inRow + c] - S[outRow + c];
      total += S[inRow + c];
    }
  }
  if (!Number.isFinite(total)) throw new RangeError('maxWindow: S contains NaN or infinite values');
  return { i: bi, j: bj, sum: best, total };
}

/**
 * Indices of the k largest values in ascending index order; ties prefer the lower index (-0 and +0
 * are equal). Exact: the k-th largest value t is found by quickselect on a copy of the same type
 * (no rounding), then one ascending pass keeps every value > t and the first (k - #greater) values
 * equal to t.
 */
export function topk(values: F32 | Float64Array, n: number, k: number): Int32Array {
  if (!Number.isInteger(n) || n < 0 || n > values.length)
    throw new RangeError(`topk: n = ${n} is not within the ${values.length} values`);
  if (!Number.isInteger(k) || k < 0 || k > n)
    throw new RangeError(`topk: k = ${k} must be an integer in [0, ${n}]`);
  const out = new Int32Array(k);
  for (let i = 0; i < n; i++) if (Number.isNaN(values[i])) throw new RangeError(`topk: values[${i}] is NaN`);
  if (k === 0) return out;
  const t = kthLargest(values.slice(0, n), k);
  let greater = 0;
  for (let i = 0; i < n; i++) if (values[i] > t) greater++;
  let equalLeft = k - greater,
    w = 0;
  for (let i = 0; i < n; i++) {
    const x = values[i];
    if (x > t) out[w++] = i;
    else if (x === t && equalLeft > 0) {
      out[w++] = i;
      equalLeft--;
    }
  }
  return out;
}

/** The k-th largest entry (1-based) of a, which is reordered: 3-way quickselect, median-of-3 pivots. */
function kthLargest(a: Float32Array | Float64Array, k: number): number {
  const want = k - 1; // index in descending order
  let lo = 0,
    hi = a.length - 1;
  for (;;) {
    if (lo === hi) return a[lo];
    const x = a[lo],
      y = a[(lo + hi) >>> 1],
      z = a[hi];
    const pivot = x > y ? (y > z ? y : x > z ? z : x) : x > z ? x : y > z ? z : y;
    // Dutch flag: [lo, lt) > pivot, [lt, gt] == pivot, (gt, hi] < pivot.
    let lt = lo,
      gt = hi,
      i = lo;
    while (i <= gt) {
      const v = a[i];
      if (v > pivot) {
        a[i] = a[lt];
        a[lt] = v;
        lt++;
        i++;
      } else if (v < pivot) {
        a[i] = a[gt];
        a[gt] = v;
        gt--;
      } else i++;
    }
    if (want < lt) hi = lt - 1;
    else if (want > gt) lo = gt + 1;
    else return pivot;
  }
}
