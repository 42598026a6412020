/**
 * Sensitivity accumulation, float64 sums, the max-sum window search and exact top-k (docs/method.md steps
 * 1-3). Window and top-k are checked property-based (fast-check) against brute force on both
 * backends, with integer data where ties are exact and float data where the two backends must still
 * agree bit for bit.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { Rng } from '../src/engine/rng.js';
import { tsKernels as T } from '../src/engine/ts/index.js';
import type { Kernels } from '../src/engine/kernels.js';
import { assertClose, assertNear, f32, nativeOrSkip, randF32 } from './helpers/kernel-check.js';

const native = nativeOrSkip();
const N = native.k as Kernels;
const backends = (): Kernels[] => (N ? [T, N] : [T]);

// ------------------------------------------------------------------ sensitivity and sums
test('sensAccumulate adds |theta * grad| (both backends)', () => {
  for (const k of backends()) {
    const S = f32([1, 1, 1, 0]);
    k.sensAccumulate(S, f32([2, -3, 0.5, -1]), f32([0.25, 2, -4, -1]), 4);
    assert.deepEqual(Array.from(S), [1.5, 7, 3, 1], k.name);
  }
});

test(
  'sensAccumulate, sum, rowSums, colSums: native matches ts on odd and large shapes',
  { skip: native.skip },
  () => {
    const rng = new Rng(30);
    for (const [rows, cols] of [
      [1, 1],
      [3, 5],
      [17, 33],
      [64, 64],
      [301, 517],
    ]) {
      const n = rows * cols;
      const th = randF32(rng, n),
        g = randF32(rng, n);
      const s1 = randF32(rng, n, 0, 1),
        s2 = s1.slice();
      T.sensAccumulate(s1, th, g, n);
      N.sensAccumulate(s2, th, g, n);
      assertClose(s2, s1, 1e-6, `sensAccumulate ${rows}x${cols}`);
      const x = randF32(rng, n, -1, 3);
      assertNear(N.sum(x, n), T.sum(x, n), 1e-12, `sum ${rows}x${cols}`);
      const r1 = new Float64Array(rows),
        r2 = new Float64Array(rows).fill(NaN);
      T.rowSums(r1, x, rows, cols);
      N.rowSums(r2, x, rows, cols);
      assertClose(r2, r1, 1e-12, `rowSums ${rows}x${cols}`);
      const c1 = new Float64Array(cols),
        c2 = new Float64Array(cols).fill(NaN);
      T.colSums(c1, x, rows, cols);
      N.colSums(c2, x, rows, cols);
      assertClose(c2, c1, 1e-12, `colSums ${rows}x${cols}`);
    }
  },
);

test('sums are float64: 2^24 + many ones is not lost to float32 rounding (both backends)', () => {
  const n = 4097;
  const x = new Float32Array(n).fill(1);
  x[0] = 2 ** 24;
  for (const k of backends()) {
    assert.equal(k.sum(x, n), 2 ** 24 + 4096, `${k.name}: sum`);
    const r = new Float64Array(1);
    k.rowSums(r, x, 1, n);
    assert.equal(r[0], 2 ** 24 + 4096, `${k.name}: rowSums`);
    const c = new Float64Array(1);
    k.colSums(c, x, n, 1);
    assert.equal(c[0], 2 ** 24 + 4096, `${k.name}: colSums`);
  }
});

// ------------------------------------------------------------------ max-sum window
function bruteWindow(S: ArrayLike<number>, n: number, m: number, wn: number, wm: number) {
  let best = -Infinity,
    bi = 0,
    bj = 0;
  for (let i = 0; i + wn <= n; i++) {
    for (let j = 0; j + wm <= m; j++) {
      let s = 0;
      for (let r = i; r < i + wn; r++) for (let c = j; c < j + wm; c++) s += S[r * m + c];
      if (s > best) {
        best = s;
        bi = i;
        bj = j;
      }
    }
  }
  return { i: bi, j: bj, sum: best };
}

function windowSum(S: ArrayLike<number>, m: number, i: number, j: number, wn: number, wm: number): number {
  let s = 0;
  for (let r = i; r < i + wn; r++) for (let c = j; c < j + wm; c++) s += S[r * m + c];
  return s;
}

const windowCase = fc
  .record({
    n: fc.integer({ min: 1, max: 12 }),
    m: fc.integer({ min: 1, max: 12 }),
    fn: fc.double({ min: 0, max: 1, noNaN: true }),
    fm: fc.double({ min: 0, max: 1, noNaN: true }),
    seed: fc.integer({ min: 0, max: 2 ** 31 - 1 }),
    kind: fc.constantFrom('ints', 'fewInts', 'zeros', 'floats', 'negFloats'),
  })
  .map(({ n, m, fn, fm, seed, kind }) => {
    const wn = 1 + Math.floor(fn * (n - 1) + 0.5),
      wm = 1 + Math.floor(fm * (m - 1) + 0.5);
    const rng = new Rng(seed);
    const S = new Float32Array(n * m);
    for (let x = 0; x < S.length; x++) {
      if (kind === 'ints') S[x] = rng.int(10);
      else if (kind === 'fewInts')
        S[x] = rng.int(2); // many exact ties
      else if (kind === 'zeros')
        S[x] = 0; // every window ties: must return (0, 0)
      else if (kind === 'floats') S[x] = rng.uniform() * 1e-3;
      else S[x] = rng.uniform() * 2 - 1;
    }
    return { n, m, wn, wm, S, kind };
  });

test('maxWindow matches brute force, ties to the smallest i then j (property, both backends)', () => {
  fc.assert(
    fc.property(windowCase, ({ n, m, wn, wm, S, kind }) => {
      const want = bruteWindow(S, n, m, wn, wm);
      let total = 0;
      for (const x of S) total += x;
      const results = backends().map((k) => k.maxWindow(S, n, m, wn, wm));
      for (const [b, got] of results.entries()) {
        const who = `${backends()[b].name} ${kind} S[${n}x${m}] window [${wn}x${wm}]`;
        if (kind === 'floats' || kind === 'negFloats') {
          // Sums of floats are exact only to rounding: the chosen window must be a best one.
          assert.ok(
            Math.abs(got.sum - want.sum) <= 1e-12 * (1 + Math.abs(want.sum)),
            `${who}: sum ${got.sum} vs ${want.sum}`,
          );
          assert.ok(
            windowSum(S, m, got.i, got.j, wn, wm) >= want.sum - 1e-12 * (1 + Math.abs(want.sum)),
            `${who}: not a best window`,
          );
        } else {
          assert.deepEqual({ i: got.i, j: got.j, sum: got.sum }, want, who);
        }
        assert.ok(Math.abs(got.total - total) <= 1e-12 * (1 + Math.abs(total)), `${who}: total`);
      }
      if (results.length === 2)
        assert.deepEqual(
          [results[1].i, results[1].j, results[1].sum],
          [results[0].i, results[0].j, results[0].sum],
          'native and ts pick the same window bit for bit',
        );
    }),
    { numRuns: 300, seed: 42 },
  );
});

test(
  'maxWindow: native equals ts bit for bit on larger float matrices (parallel path)',
  { skip: native.skip },
  () => {
    const rng = new Rng(31);
    for (const [n, m, wn, wm] of [
      [300, 257, 170, 90],
      [64, 1000, 64, 999],
      [513, 300, 1, 1],
      [97, 400, 50, 400],
    ]) {
      const S = new Float32Array(n * m);
      for (let x = 0; x < S.length; x++) S[x] = rng.uniform() ** 4; // skewed, like sensitivities
      const a = T.maxWindow(S, n, m, wn, wm),
        b = N.maxWindow(S, n, m, wn, wm);
      assert.deepEqual([b.i, b.j, b.sum], [a.i, a.j, a.sum], `[${n}x${m}] window [${wn}x${wm}]`);
      assertNear(b.total, a.total, 1e-12, 'total');
      assertNear(a.sum, windowSum(S, m, a.i, a.j, wn, wm), 1e-12, 'sum is the window sum');
    }
  },
);

test('maxWindow finds a planted block and rejects bad windows and non-finite S', () => {
  const n = 40,
    m = 30;
  const S = new Float32Array(n * m).fill(0.001);
  for (let r = 11; r < 19; r++) for (let c = 7; c < 12; c++) S[r * m + c] = 1;
  for (const k of backends()) {
    const w = k.maxWindow(S, n, m, 8, 5);
    assert.deepEqual([w.i, w.j], [11, 7], k.name);
    assert.throws(() => k.maxWindow(S, n, m, 41, 5), /does not fit/, k.name);
    assert.throws(() => k.maxWindow(S, n, m, 0, 5), /wn/, k.name);
    assert.throws(() => k.maxWindow(S.subarray(1), n, m, 2, 2), /entries|elements/, k.name);
    const bad = S.slice();
    bad[500] = NaN;
    assert.throws(() => k.maxWindow(bad, n, m, 8, 5), /NaN or infinite/, k.name);
  }
});

// ------------------------------------------------------------------ top-k
function bruteTopk(v: ArrayLike<number>, n: number, k: number): number[] {
  const idx = [...Array(n).keys()];
  idx.sort((a, b) => (v[b] !== v[a] ? v[b] - v[a] : a - b));
  return idx.slice(0, k).sort((a, b) => a - b);
}

test('topk matches brute force: ascending indices, ties to the lower index (property, both backends)', () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 0, max: 300 }),
      fc.double({ min: 0, max: 1, noNaN: true }),
      fc.integer({ min: 0, max: 2 ** 31 - 1 }),
      fc.constantFrom('floats', 'fewValues', 'signedZeros'),
      fc.boolean(),
      (n, fk, seed, kind, f64) => {
        const k = Math.round(fk * n);
        const rng = new Rng(seed);
        const v = f64 ? new Float64Array(n) : new Float32Array(n);
        for (let i = 0; i < n; i++) {
          if (kind === 'floats') v[i] = rng.normal();
          else if (kind === 'fewValues') v[i] = rng.int(4) - 1;
          else v[i] = rng.uniform() < 0.5 ? -0 : rng.int(3) - 1; // -0 and +0 must tie
        }
        const want = bruteTopk(v, n, k);
        for (const b of backends()) {
          assert.deepEqual(
            Array.from(b.topk(v, n, k)),
            want,
            `${b.name} n=${n} k=${k} ${kind} ${f64 ? 'f64' : 'f32'}`,
          );
        }
      },
    ),
    { numRuns: 300, seed: 7 },
  );
});

test('topk on large inputs (radix path): native equals ts and brute force', { skip: native.skip }, () => {
  const rng = new Rng(32);
  for (const [n, k, f64] of [
    [200003, 130000, false],
    [70001, 1, true],
    [50000, 50000, false],
    [65536, 31, true],
  ] as const) {
    const v = f64 ? new Float64Array(n) : new Float32Array(n);
    for (let i = 0; i < n; i++) v[i] = rng.uniform() < 0.2 ? 0.5 : Math.fround(rng.uniform() ** 3); // ties and spread
    const a = T.topk(v, n, k),
      b = N.topk(v, n, k);
    assert.deepEqual(b, a, `n=${n} k=${k}`);
    assert.deepEqual(Array.from(a), bruteTopk(v, n, k), `brute n=${n} k=${k}`);
  }
});

test('topk rejects NaN and k out of range (both backends)', () => {
  for (const b of backends()) {
    assert.throws(() => b.topk(f32([1, NaN, 2]), 3, 1), /values\[1\] is NaN/, b.name);
    assert.throws(() => b.topk(f32([1, 2]), 2, 3), /k = 3/, b.name);
    assert.deepEqual(Array.from(b.topk(f32([3, 1, 2]), 3, 0)), [], b.name);
    assert.deepEqual(Array.from(b.topk(f32([3, 1, 2]), 3, 2)), [0, 2], b.name);
  }
});
