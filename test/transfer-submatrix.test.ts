// docs/method.md step 3 on hand-made sensitivity matrices: every structure, the embedding's transposed
// handling, head-aligned windows, and the refusals.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  alignedMaxWindow,
  cutSubmatrix,
  headAlign,
  sampleSorted,
  type CutSpec,
} from '../src/transfer/submatrix.js';
import { kernels } from '../src/engine/backend.js';
import { Rng } from '../src/engine/rng.js';
import { HalfArray } from '../src/engine/half.js';
import { f32ToBf16, f32ToF16 } from '../src/engine/dtype.js';
import { InputError } from '../src/errors.js';
import { transpose64 } from './transfer-helpers.js';

const arange = (n: number) => Float32Array.from({ length: n }, (_, i) => i);
const spec = (teacher: [number, number], student: [number, number], o: Partial<CutSpec> = {}): CutSpec => ({
  name: 'model.layers.0.mlp.up_proj.weight',
  teacher,
  student,
  transposed: false,
  ...o,
});

test('block: the max-sum contiguous window, its offset and share of S', () => {
  const S = Float32Array.from([0, 0, 0, 0, 0, 0, 0, 5, 5, 0, 0, 0, 5, 9, 1, 0, 0, 0, 0, 0]);
  const c = cutSubmatrix(arange(20), S, spec([4, 5], [2, 2]), 'block');
  assert.deepEqual(c.offset, [1, 2]);
  assert.deepEqual(Array.from(c.data), [7, 8, 12, 13]);
  assert.equal(c.captured, 24);
  assert.equal(c.total, 25);
  assert.equal(c.share, 24 / 25);
});

test('block on random S agrees with a brute-force scan of every window', () => {
  const rng = new Rng(3);
  const n = 9,
    m = 7,
    wn = 4,
    wm = 3;
  const S = rng.fillUniform(new Float32Array(n * m));
  let best = -Infinity,
    bi = -1,
    bj = -1;
  for (let i = 0; i + wn <= n; i++) {
    for (let j = 0; j + wm <= m; j++) {
      let s = 0;
      for (let a = 0; a < wn; a++) for (let b = 0; b < wm; b++) s += S[(i + a) * m + j + b];
      if (s > best) [best, bi, bj] = [s, i, j];
    }
  }
  const c = cutSubmatrix(arange(n * m), S, spec([n, m], [wn, wm]), 'block');
  assert.deepEqual(c.offset, [bi, bj]);
  assert.ok(Math.abs(c.captured - best) < 1e-9);
  for (let a = 0; a < wn; a++)
    for (let b = 0; b < wm; b++) assert.equal(c.data[a * wm + b], (bi + a) * m + bj + b);
});

test('heads: q windows start on head boundaries even when an unaligned window sums more', () => {
  // 4 teacher heads of head_dim 2 (8 rows), 3 columns; the student keeps 2 heads (4 rows), 2 columns.
  const rowVal = [1, 10, 10, 9, 9, 0, 0, 0];
  const colW = [1, 2, 3];
  const S = new Float32Array(8 * 3);
  for (let r = 0; r < 8; r++) for (let c = 0; c < 3; c++) S[r * 3 + c] = rowVal[r] * colW[c];
  const base = spec([8, 3], [4, 2], { name: 'model.layers.0.self_attn.q_proj.weight' });
  assert.deepEqual(cutSubmatrix(arange(24), S, base, 'block').offset, [1, 1]); // unaligned: rows 1..4 sum 38
  const h = cutSubmatrix(arange(24), S, { ...base, align: headAlign('q_proj', 2) }, 'heads');
  assert.deepEqual(h.offset, [0, 1]); // aligned offsets 0, 2, 4 sum 30, 28, 9
  assert.equal(h.captured, 30 * 5);
  assert.deepEqual(Array.from(h.data), [1, 2, 4, 5, 7, 8, 10, 11]);
  assert.deepEqual(headAlign('k_proj', 64), [64, 1]);
  assert.deepEqual(headAlign('v_proj', 64), [64, 1]);
  assert.deepEqual(headAlign('o_proj', 64), [1, 64]);
  assert.deepEqual(headAlign('gate_proj', 64), [1, 1]);
  // Without a head axis (align [1, 1]) `heads` is the plain block.
  const mlp = spec([8, 3], [4, 2]);
  assert.deepEqual(
    cutSubmatrix(arange(24), S, { ...mlp, align: [1, 1] }, 'heads').offset,
    cutSubmatrix(arange(24), S, mlp, 'block').offset,
  );
});

test('aligned window: step 1 equals the kernel maxWindow; step 2 equals brute force over aligned offsets', () => {
  const rng = new Rng(11);
  const n = 12,
    m = 10;
  const S = rng.fillUniform(new Float32Array(n * m));
  const free = alignedMaxWindow(S, n, m, 6, 4, 1, 1);
  const k = kernels().maxWindow(S, n, m, 6, 4);
  assert.deepEqual([free.i, free.j], [k.i, k.j]);
  assert.ok(Math.abs(free.sum - k.sum) < 1e-9 && Math.abs(free.total - k.total) < 1e-9);
  // o_proj-like: columns aligned on 2.
  const al = alignedMaxWindow(S, n, m, 6, 4, 1, 2);
  let best = -Infinity,
    bi = -1,
    bj = -1;
  for (let i = 0; i + 6 <= n; i++) {
    for (let j = 0; j + 4 <= m; j += 2) {
      let s = 0;
      for (let a = 0; a < 6; a++) for (let b = 0; b < 4; b++) s += S[(i + a) * m + j + b];
      if (s > best) [best, bi, bj] = [s, i, j];
    }
  }
  assert.deepEqual([al.i, al.j], [bi, bj]);
  assert.ok(Math.abs(al.sum - best) < 1e-9);
  assert.throws(() => alignedMaxWindow(S, n, m, 5, 4, 2, 1), /cannot align/);
});

test('rowcol: top rows and columns by mean sensitivity, kept in original order', () => {
  const S = Float32Array.from([1, 0, 0, 0, 0, 0, 0, 9, 5, 5, 0, 0, 0, 0, 0, 0]);
  // row sums 1, 9, 10, 0 -> rows {2, 1} kept as [1, 2]; column sums 6, 5, 0, 9 -> columns [0, 3].
  const c = cutSubmatrix(arange(16), S, spec([4, 4], [2, 2]), 'rowcol');
  assert.deepEqual(Array.from(c.data), [4, 7, 8, 11]);
  assert.equal(c.offset, null);
  assert.equal(c.captured, 0 + 9 + 5 + 0);
  assert.equal(c.share, 14 / 20);
});

test('rowcol on a non-square teacher: rows and columns are ranked independently', () => {
  // 2 x 6: row means (sums / 6) pick row 0; column means (sums / 2) pick columns 0 and 5.
  const S = Float32Array.from([3, 0, 0, 0, 0, 4, 0, 2, 2, 0, 0, 0]);
  const c = cutSubmatrix(arange(12), S, spec([2, 6], [1, 2]), 'rowcol');
  assert.deepEqual(Array.from(c.data), [0, 5]); // row 0 (mean 7/6 > 4/6), columns 0 and 5
});

test('elements: the n_s*m_s most sensitive entries, laid out in row-major order', () => {
  const S = Float32Array.from([9, 0, 1, 0, 8, 0, 7, 0, 6]);
  const c = cutSubmatrix(arange(9), S, spec([3, 3], [2, 2]), 'elements');
  assert.deepEqual(Array.from(c.data), [0, 4, 6, 8]);
  assert.equal(c.share, 30 / 31);
});

test('random: seeded distinct entries in original order, independent of S', () => {
  const S = new Float32Array(100).fill(1);
  const a = cutSubmatrix(arange(100), S, spec([10, 10], [3, 4]), 'random', { seed: 5 });
  const b = cutSubmatrix(arange(100), S, spec([10, 10], [3, 4]), 'random', { seed: 5 });
  const c = cutSubmatrix(arange(100), S, spec([10, 10], [3, 4]), 'random', { seed: 6 });
  assert.deepEqual(a.data, b.data);
  assert.notDeepEqual(a.data, c.data);
  for (let i = 1; i < 12; i++)
    assert.ok(a.data[i] > a.data[i - 1], 'strictly increasing = distinct and in order');
  assert.equal(a.share, 12 / 100);
  assert.throws(() => cutSubmatrix(arange(100), S, spec([10, 10], [3, 4]), 'random'), /needs a seed/);
});

test('selection sampling is uniform: each of 5 indices kept with probability 2/5', () => {
  const rng = new Rng(1);
  const hits = new Array(5).fill(0);
  const trials = 20000;
  for (let t = 0; t < trials; t++) for (const i of sampleSorted(5, 2, rng)) hits[i]++;
  for (const h of hits) assert.ok(Math.abs(h / trials - 0.4) < 0.02, `frequency ${h / trials}`);
});

test('embedding: handled transposed [d, V]; the window slides along d only', () => {
  const V = 3,
    dt = 4,
    ds = 2;
  // Stored [V, d]; d columns 1 and 2 are the sensitive ones.
  const S = Float32Array.from([0, 5, 6, 0, 0, 5, 6, 1, 0, 5, 6, 0]);
  const W = arange(V * dt);
  const s: CutSpec = {
    name: 'model.embed_tokens.weight',
    teacher: [dt, V],
    student: [ds, V],
    transposed: true,
  };
  const c = cutSubmatrix(W, S, s, 'block');
  assert.deepEqual(c.offset, [1, 0]);
  assert.equal(c.rows, ds);
  assert.equal(c.cols, V);
  // W_e = (W[:, 1:3])^T: row a holds d index 1 + a across the vocabulary.
  assert.deepEqual(Array.from(c.data), [1, 5, 9, 2, 6, 10]);
  assert.equal(c.share, 33 / 34);
});

test('embedding: rowcol, elements and random follow the transposed [d, V] layout', () => {
  const rng = new Rng(9);
  const V = 5,
    dt = 6,
    ds = 3;
  const S = rng.fillUniform(new Float32Array(V * dt));
  const W = rng.fillNormal(new Float32Array(V * dt));
  const s: CutSpec = {
    name: 'model.embed_tokens.weight',
    teacher: [dt, V],
    student: [ds, V],
    transposed: true,
  };
  const St = transpose64(S, V, dt); // [dt, V]
  const Wt = transpose64(W, V, dt);
  // elements: independent reference on the explicitly transposed matrices.
  const order = Array.from(St.keys())
    .sort((a, b) => St[b] - St[a])
    .slice(0, ds * V)
    .sort((a, b) => a - b);
  assert.deepEqual(
    Array.from(cutSubmatrix(W, S, s, 'elements').data),
    order.map((i) => Math.fround(Wt[i])),
  );
  // rowcol: rows of [dt, V] are d dims (rank by mean over V); all V columns are kept.
  const rowMean = Array.from(
    { length: dt },
    (_, r) => St.slice(r * V, (r + 1) * V).reduce((a, b) => a + b) / V,
  );
  const rows = Array.from(rowMean.keys())
    .sort((a, b) => rowMean[b] - rowMean[a])
    .slice(0, ds)
    .sort((a, b) => a - b);
  const want = rows.flatMap((r) => Array.from(Wt.slice(r * V, (r + 1) * V), (x) => Math.fround(x)));
  assert.deepEqual(Array.from(cutSubmatrix(W, S, s, 'rowcol').data), want);
  // random: the same seed picks the same factor-layout indices as on the transposed matrix.
  const rnd = cutSubmatrix(W, S, s, 'random', { seed: 4 });
  const rndT = cutSubmatrix(
    Float32Array.from(Wt),
    Float32Array.from(St),
    { ...s, transposed: false },
    'random',
    { seed: 4 },
  );
  assert.deepEqual(rnd.data, rndT.data);
});

test('lm_head [V, d] is cut like a linear: the window keeps all of V', () => {
  const V = 4,
    dt = 5,
    ds = 3;
  const S = Float32Array.from({ length: V * dt }, (_, i) => (i % dt >= 2 ? 1 : 0));
  const c = cutSubmatrix(arange(V * dt), S, spec([V, dt], [V, ds], { name: 'lm_head.weight' }), 'block');
  assert.deepEqual(c.offset, [0, 2]);
  assert.equal(c.share, 1);
});

test('refusals: a student dim larger than the teacher names the tensor and dims; sizes and NaN are checked', () => {
  const S = new Float32Array(12).fill(1);
  assert.throws(
    () =>
      cutSubmatrix(
        arange(12),
        S,
        spec([3, 4], [4, 2], { name: 'model.layers.1.mlp.down_proj.weight' }),
        'block',
      ),
    (e: unknown) =>
      e instanceof InputError &&
      /model\.layers\.1\.mlp\.down_proj\.weight/.test(e.message) &&
      /\[4, 2\]/.test(e.message) &&
      /\[3, 4\]/.test(e.message),
  );
  assert.throws(
    () =>
      cutSubmatrix(
        arange(12),
        S,
        { name: 'model.embed_tokens.weight', teacher: [4, 3], student: [5, 3], transposed: true },
        'block',
      ),
    (e: unknown) => e instanceof InputError && /embed_tokens/.test(e.message) && /transposed/.test(e.message),
  );
  assert.throws(
    () => cutSubmatrix(arange(11), S, spec([3, 4], [2, 2]), 'block'),
    /weight has 11 values, expected 12/,
  );
  const bad = S.slice();
  bad[5] = NaN;
  for (const st of ['block', 'rowcol', 'elements', 'random'] as const) {
    assert.throws(
      () => cutSubmatrix(arange(12), bad, spec([3, 4], [2, 2]), st, { seed: 1 }),
      (e: unknown) => e instanceof InputError && /NaN/.test(e.message),
      st,
    );
  }
  assert.throws(() => cutSubmatrix(arange(12), bad, spec([3, 4], [2, 2], { align: [1, 1] }), 'heads'), /NaN/);
});

test('a bf16 or f16 teacher weight (its stored bits) cuts to the same values as its float32 upcast, every structure', () => {
  const rng = new Rng(21);
  for (const dtype of ['bf16', 'f16'] as const) {
    for (const transposed of [false, true]) {
      const [nt, mt, ns, ms] = [12, 20, 8, 7];
      const N = nt * mt;
      const values = Float32Array.from({ length: N }, () => rng.normal());
      const bits = dtype === 'bf16' ? f32ToBf16(values) : f32ToF16(values);
      const half = new HalfArray(dtype, bits);
      const W = half.toF32();
      const S = Float32Array.from({ length: N }, () => rng.uniform());
      const sp = spec([nt, mt], [ns, ms], {
        transposed,
        name: transposed ? 'model.embed_tokens.weight' : 'w',
      });
      for (const structure of ['block', 'rowcol', 'elements', 'random'] as const) {
        const a = cutSubmatrix(half, S, sp, structure, { seed: 4 });
        const b = cutSubmatrix(W, S, sp, structure, { seed: 4 });
        assert.deepEqual(a, b, `${dtype} ${structure} transposed=${transposed}`);
        assert.ok(a.data.some((v) => v !== 0));
      }
    }
    const hs = spec([16, 8], [8, 8], { align: [4, 1], name: 'q' });
    const values = Float32Array.from({ length: 128 }, () => rng.normal());
    const half = new HalfArray(dtype, dtype === 'bf16' ? f32ToBf16(values) : f32ToF16(values));
    const S = Float32Array.from({ length: 128 }, () => rng.uniform());
    assert.deepEqual(cutSubmatrix(half, S, hs, 'heads'), cutSubmatrix(half.toF32(), S, hs, 'heads'));
  }
});
