/**
 * docs/method.md step 3: cut a student-shaped matrix W_e out of a teacher matrix, guided by its
 * sensitivity S. Every structure the paper compares, plus `heads` (ours): a contiguous window whose
 * attention-head axis starts on a head boundary.
 *
 * Shapes are given in the *factor layout* (see modules.ts): [n, m] with B [n, r] and A [r, m]. The
 * embedding is stored [V, d] but cut in its transposed layout [d, V] (`transposed`), so its window
 * slides only along d and `elements`/`random` lay entries out in the [d, V] row-major order, as the
 * reference (which transposes first) does. Offsets are reported in the factor layout.
 */
import { kernels } from '../engine/backend.js';
import { HalfArray } from '../engine/half.js';
import { Rng } from '../engine/rng.js';
import { InputError } from '../errors.js';

export type Structure = 'block' | 'heads' | 'rowcol' | 'elements' | 'random';
export const STRUCTURES: readonly Structure[] = ['block', 'heads', 'rowcol', 'elements', 'random'];

export interface CutSpec {
  /** The teacher tensor's name, for error messages. */
  name: string;
  /** Factor-layout shape of the teacher matrix [n_t, m_t]. */
  teacher: [number, number];
  /** Factor-layout shape wanted for the student [n_s, m_s]. */
  student: [number, number];
  /** W and S are stored as the transpose of the factor layout, i.e. [m_t, n_t] (the embedding). */
  transposed: boolean;
  /**
   * `heads` only: the window's row offset must be a multiple of align[0] and its column offset a
   * multiple of align[1] (head_dim on the head axis, 1 on the free axis). Defaults to [1, 1].
   */
  align?: [number, number];
}

export interface Cut {
  /** W_e, [rows, cols] row-major in the factor layout. */
  data: Float32Array;
  rows: number;
  cols: number;
  structure: Structure;
  /** Top-left (row, col) of the window in the factor layout (block / heads), else null. */
  offset: [number, number] | null;
  /** Sum of S over the kept entries, and over the whole matrix (float64). */
  captured: number;
  total: number;
  /** captured / total (0 when S is all zero). */
  share: number;
}

/**
 * Cuts W_e from W using S. `seed` is required by `random`. Throws InputError when a student dim
 * exceeds the teacher's, when sizes disagree with the shapes, or when S holds NaN/Inf.
 */
export function cutSubmatrix(
  Win: Float32Array | HalfArray,
  S: Float32Array,
  spec: CutSpec,
  structure: Structure,
  opts: { seed?: number } = {},
): Cut {
  const [nt, mt] = spec.teacher;
  const [ns, ms] = spec.student;
  const N = nt * mt;
  if (Win.length !== N)
    throw new InputError(
      spec.name,
      `weight has ${Win.length} values, expected ${N} for ${shapeText(spec, spec.teacher)}`,
    );
  if (S.length !== N)
    throw new InputError(
      spec.name,
      `sensitivity has ${S.length} values, expected ${N} for ${shapeText(spec, spec.teacher)}`,
    );
  if (ns > nt || ms > mt || ns < 1 || ms < 1) {
    throw new InputError(
      spec.name,
      `cannot cut a ${shapeText(spec, spec.student)} student matrix from the teacher's ${shapeText(spec, spec.teacher)}: ` +
        "every student dimension must be between 1 and the teacher's",
    );
  }
  const k = kernels();
  // `heads` on a matrix without a head axis (MLP, embedding, lm_head) is the plain block.
  const [rs, cs] = spec.align ?? [1, 1];
  const kind = structure === 'heads' && rs === 1 && cs === 1 ? 'block' : structure;
  switch (kind) {
    case 'block': {
      // The window search runs on the stored layout; a transposed matrix swaps the axes back.
      let w;
      try {
        w = spec.transposed ? k.maxWindow(S, mt, nt, ms, ns) : k.maxWindow(S, nt, mt, ns, ms);
      } catch (e) {
        // The kernel refuses NaN/Inf sensitivities; say which tensor.
        throw new InputError(spec.name, `sensitivity: ${(e as Error).message}`);
      }
      checkTotal(spec, w.total);
      const offset: [number, number] = spec.transposed ? [w.j, w.i] : [w.i, w.j];
      return finish(spec, structure, gatherWindow(Win, spec, offset), offset, w.sum, w.total);
    }
    case 'heads': {
      if (spec.transposed) throw new Error(`${spec.name}: head alignment applies to attention matrices only`);
      const w = alignedMaxWindow(S, nt, mt, ns, ms, rs, cs, spec.name);
      checkTotal(spec, w.total);
      const offset: [number, number] = [w.i, w.j];
      return finish(spec, structure, gatherWindow(Win, spec, offset), offset, w.sum, w.total);
    }
  }
  // The scattered structures read W everywhere: upcast a half weight whole.
  const W = Win instanceof HalfArray ? Win.toF32() : Win;
  switch (kind) {
    case 'rowcol': {
      const total = k.sum(S, N);
      checkTotal(spec, total);
      // Row r of the factor layout is column r of the stored matrix when transposed.
      const rowSum = new Float64Array(nt);
      const colSum = new Float64Array(mt);
      if (spec.transposed) {
        k.colSums(rowSum, S, mt, nt);
        k.rowSums(colSum, S, mt, nt);
      } else {
        k.rowSums(rowSum, S, nt, mt);
        k.colSums(colSum, S, nt, mt);
      }
      // Rank by MEAN sensitivity (docs/method.md step 3): sum / length of the row or column.
      for (let i = 0; i < nt; i++) rowSum[i] /= mt;
      for (let j = 0; j < mt; j++) colSum[j] /= nt;
      const rows = k.topk(rowSum, nt, ns);
      const cols = k.topk(colSum, mt, ms);
      const data = new Float32Array(ns * ms);
      let captured = 0;
      for (let a = 0; a < ns; a++) {
        for (let b = 0; b < ms; b++) {
          const at = storageIndex(spec, rows[a], cols[b]);
          data[a * ms + b] = W[at];
          captured += S[at];
        }
      }
      return finish(spec, structure, data, null, captured, total);
    }
    case 'elements': {
      const total = k.sum(S, N);
      checkTotal(spec, total);
      const Sf = spec.transposed ? transpose(S, mt, nt) : S;
      const idx = k.topk(Sf, N, ns * ms); // total was finite, so no NaN reaches topk
      return gatherIndices(W, S, spec, structure, idx, total);
    }
    case 'random': {
      if (opts.seed === undefined) throw new InputError(spec.name, 'the random structure needs a seed');
      const total = k.sum(S, N);
      checkTotal(spec, total);
      const idx = sampleSorted(N, ns * ms, new Rng(opts.seed));
      return gatherIndices(W, S, spec, structure, idx, total);
    }
    default:
      throw new InputError(
        spec.name,
        `unknown structure "${structure as string}": use ${STRUCTURES.join(', ')}`,
      );
  }
}

/** The alignment `heads` uses for a module kind: head_dim steps on the head axis, free elsewhere. */
export function headAlign(kind: string, headDim: number): [number, number] {
  if (kind === 'q_proj' || kind === 'k_proj' || kind === 'v_proj') return [headDim, 1]; // rows are heads (k/v: KV heads)
  if (kind === 'o_proj') return [1, headDim]; // columns are query heads
  return [1, 1];
}

function shapeText(spec: CutSpec, s: [number, number]): string {
  return spec.transposed
    ? `[${s[1]}, ${s[0]}] (handled transposed as [${s[0]}, ${s[1]}])`
    : `[${s[0]}, ${s[1]}]`;
}

function checkTotal(spec: CutSpec, total: number): void {
  if (!Number.isFinite(total)) throw new InputError(spec.name, 'sensitivity holds NaN or Inf');
}

/** Index into the stored W / S of factor-layout element (r, c). */
function storageIndex(spec: CutSpec, r: number, c: number): number {
  return spec.transposed ? c * spec.teacher[0] + r : r * spec.teacher[1] + c;
}

function gatherWindow(Win: Float32Array | HalfArray, spec: CutSpec, [i, j]: [number, number]): Float32Array {
  const [ns, ms] = spec.student;
  const out = new Float32Array(ns * ms);
  const mt = spec.teacher[1];
  if (!spec.transposed && Win instanceof HalfArray) {
    // Only the window's rows are upcast: a 13B teacher's MLP matrix is 1.6x the 7B window.
    for (let a = 0; a < ns; a++) {
      const row = new HalfArray(Win.dtype, Win.bits.subarray((i + a) * mt + j, (i + a) * mt + j + ms));
      row.toF32(out.subarray(a * ms, (a + 1) * ms));
    }
  } else if (!spec.transposed) {
    const W = Win as Float32Array;
    for (let a = 0; a < ns; a++) out.set(W.subarray((i + a) * mt + j, (i + a) * mt + j + ms), a * ms);
  } else {
    // stored [m_t, n_t]: the window is its rows j..j+ms, columns i..i+ns, read row by row (contiguous)
    // and written in 64-column tiles so that both sides stay in cache (an embedding is 100M+ values)
    const nt = spec.teacher[0];
    const half = Win instanceof HalfArray ? Win : null;
    const W = half ? null : (Win as Float32Array);
    const row = new Float32Array(ns);
    const T = 64;
    for (let b0 = 0; b0 < ms; b0 += T) {
      const b1 = Math.min(ms, b0 + T);
      for (let b = b0; b < b1; b++) {
        const at = (j + b) * nt + i;
        if (half) new HalfArray(half.dtype, half.bits.subarray(at, at + ns)).toF32(row);
        else row.set(W!.subarray(at, at + ns));
        for (let a = 0; a < ns; a++) out[a * ms + b] = row[a];
      }
    }
  }
  return out;
}

/** Lays the entries at ascending factor-layout indices `idx` out row-major into [n_s, m_s]. */
function gatherIndices(
  W: Float32Array,
  S: Float32Array,
  spec: CutSpec,
  structure: Structure,
  idx: Int32Array | Float64Array,
  total: number,
): Cut {
  const mt = spec.teacher[1];
  const data = new Float32Array(idx.length);
  let captured = 0;
  for (let t = 0; t < idx.length; t++) {
    const f = idx[t];
    const at = storageIndex(spec, Math.floor(f / mt), f % mt);
    data[t] = W[at];
    captured += S[at];
  }
  return finish(spec, structure, data, null, captured, total);
}

function finish(
  spec: CutSpec,
  structure: Structure,
  data: Float32Array,
  offset: [number, number] | null,
  captured: number,
  total: number,
): Cut {
  return {
    data,
    rows: spec.student[0],
    cols: spec.student[1],
    structure,
    offset,
    captured,
    total,
    share: total > 0 ? captured / total : 0,
  };
}

function transpose(x: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[c * rows + r] = x[r * cols + c];
  return out;
}

/**
 * k distinct indices of [0, N), uniformly, in ascending order (Knuth's selection sampling,
 * Algorithm S): one pass, O(k) memory even for a 131M-entry embedding.
 */
export function sampleSorted(N: number, k: number, rng: Rng): Float64Array {
  const out = new Float64Array(k);
  let got = 0;
  for (let t = 0; t < N && got < k; t++) {
    if ((N - t) * rng.uniform() < k - got) out[got++] = t;
  }
  return out;
}

/**
 * The [wn, wm] window of S [n, m] with the largest sum among windows whose row offset is a multiple
 * of rs and column offset a multiple of cs (ties: smallest row, then smallest column). S is first
 * summed into rs x cs blocks (float64), then a summed-area table over the blocks scores every
 * aligned window: O(n·m) time, O(n·m / (rs·cs)) memory.
 */
export function alignedMaxWindow(
  S: Float32Array,
  n: number,
  m: number,
  wn: number,
  wm: number,
  rs: number,
  cs: number,
  name = 'window',
): { i: number; j: number; sum: number; total: number } {
  if (n % rs || wn % rs || m % cs || wm % cs) {
    throw new InputError(
      name,
      `a [${wn}, ${wm}] window on [${n}, ${m}] cannot align on ${rs} x ${cs} blocks`,
    );
  }
  const nb = n / rs,
    mb = m / cs,
    wnb = wn / rs,
    wmb = wm / cs;
  const W1 = mb + 1;
  const sat = new Float64Array((nb + 1) * W1);
  // Block sums, accumulated straight into the SAT's cells, then the prefix sums.
  for (let r = 0; r < n; r++) {
    const base = ((r / rs) | 0) + 1;
    for (let c = 0; c < m; c++) sat[base * W1 + ((c / cs) | 0) + 1] += S[r * m + c];
  }
  for (let bi = 1; bi <= nb; bi++) {
    for (let bj = 1; bj <= mb; bj++) {
      sat[bi * W1 + bj] += sat[(bi - 1) * W1 + bj] + sat[bi * W1 + bj - 1] - sat[(bi - 1) * W1 + bj - 1];
    }
  }
  let best = -Infinity,
    bi0 = 0,
    bj0 = 0;
  for (let bi = 0; bi + wnb <= nb; bi++) {
    for (let bj = 0; bj + wmb <= mb; bj++) {
      const s =
        sat[(bi + wnb) * W1 + bj + wmb] -
        sat[bi * W1 + bj + wmb] -
        sat[(bi + wnb) * W1 + bj] +
        sat[bi * W1 + bj];
      if (s > best) {
        best = s;
        bi0 = bi;
        bj0 = bj;
      }
    }
  }
  return { i: bi0 * rs, j: bj0 * cs, sum: best, total: sat[nb * W1 + mb] };
}
