import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  incompleteBeta,
  logGamma,
  pairedComparison,
  pairedInterval,
  tQuantile,
  tTwoSidedP,
} from '../src/study/stats.js';
import { mean, sampleStd } from '../src/eval/stats.js';

const close = (a: number, b: number, tol: number, what = '') =>
  assert.ok(Math.abs(a - b) <= tol, `${what}: ${a} vs ${b} (tol ${tol})`);

test('logGamma matches factorials and Gamma(1/2) = sqrt(pi)', () => {
  for (let n = 1; n <= 20; n++) {
    let f = 1;
    for (let k = 2; k < n; k++) f *= k;
    close(logGamma(n), Math.log(f), 1e-12 * Math.max(1, Math.log(f)), `lgamma(${n})`);
  }
  close(logGamma(0.5), 0.5 * Math.log(Math.PI), 1e-13, 'lgamma(1/2)');
});

test('incomplete beta: closed forms I_x(a,1) = x^a and I_x(1,b) = 1-(1-x)^b', () => {
  for (const x of [0.01, 0.2, 0.5, 0.77, 0.99]) {
    for (const a of [0.5, 1, 2.5, 7]) close(incompleteBeta(x, a, 1), x ** a, 1e-12, `I_${x}(${a},1)`);
    for (const b of [0.5, 3, 10]) close(incompleteBeta(x, 1, b), 1 - (1 - x) ** b, 1e-12, `I_${x}(1,${b})`);
  }
  assert.equal(incompleteBeta(0, 2, 3), 0);
  assert.equal(incompleteBeta(1, 2, 3), 1);
  assert.throws(() => incompleteBeta(1.5, 1, 1), RangeError);
});

test('two-sided t p-values: exact forms for df 1, 2, 3 and table critical values', () => {
  for (const t of [0, 0.3, 1, 2.5, 7, -4]) {
    const a = Math.abs(t);
    close(tTwoSidedP(t, 1), 1 - (2 / Math.PI) * Math.atan(a), 1e-12, `df1 t=${t}`);
    close(tTwoSidedP(t, 2), 1 - a / Math.sqrt(2 + t * t), 1e-12, `df2 t=${t}`);
    const s3 = Math.sqrt(3);
    close(
      tTwoSidedP(t, 3),
      1 - (2 / Math.PI) * (a / (s3 * (1 + (t * t) / 3)) + Math.atan(a / s3)),
      1e-12,
      `df3 t=${t}`,
    );
  }
  // Critical values t_{0.975, df} and t_{0.995, df} from standard tables (two-sided 0.05 and 0.01).
  close(tTwoSidedP(2.776445105, 4), 0.05, 1e-8, 'df4');
  close(tTwoSidedP(2.228138852, 10), 0.05, 1e-8, 'df10');
  close(tTwoSidedP(2.749995654, 30), 0.01, 1e-8, 'df30');
  close(tTwoSidedP(12.70620474, 1), 0.05, 1e-8, 'df1 table');
  assert.equal(tTwoSidedP(Infinity, 5), 0);
  assert.ok(Number.isNaN(tTwoSidedP(NaN, 5)));
});

test('mean and sample std', () => {
  assert.equal(mean([1, 2, 3, 4]), 2.5);
  close(sampleStd([1, 2, 3, 4])!, Math.sqrt(5 / 3), 1e-15);
  assert.equal(sampleStd([5]), null);
  assert.ok(Number.isNaN(mean([])));
});

test('paired comparison pairs by seed, counts wins by direction, gives t and p', () => {
  const method = new Map([
    [1, 3],
    [2, 5],
    [3, 4],
  ]);
  const base = new Map([
    [1, 1],
    [2, 2],
    [3, 4],
    [4, 9],
  ]);
  const c = pairedComparison(method, base, true);
  assert.deepEqual(c.seeds, [1, 2, 3]);
  assert.equal(c.n, 3);
  // Differences 2, 3, 0 worked by hand: mean 5/3, sd sqrt(7/3), se sd/sqrt(3).
  close(c.meanDiff!, 5 / 3, 1e-15);
  close(c.stdErr!, Math.sqrt(7 / 3) / Math.sqrt(3), 1e-15);
  const t = 5 / 3 / (Math.sqrt(7 / 3) / Math.sqrt(3));
  close(c.t!, t, 1e-12);
  close(c.p!, 1 - t / Math.sqrt(2 + t * t), 1e-12);
  assert.deepEqual([c.wins, c.losses, c.ties], [2, 0, 1]);
  // For a loss (lower is better) the same differences are losses, and the sign of t stays method - baseline.
  const l = pairedComparison(method, base, false);
  assert.deepEqual([l.wins, l.losses, l.ties], [0, 2, 1]);
  close(l.t!, t, 1e-12);
});

test('paired comparison with too few pairs or constant differences has no t', () => {
  const one = pairedComparison(new Map([[1, 2]]), new Map([[1, 1]]), true);
  assert.equal(one.n, 1);
  assert.equal(one.meanDiff, 1);
  assert.equal(one.stdErr, null);
  assert.equal(one.t, null);
  assert.equal(one.p, null);
  const same = pairedComparison(
    new Map([
      [1, 2],
      [2, 3],
    ]),
    new Map([
      [1, 1],
      [2, 2],
    ]),
    true,
  );
  assert.equal(same.stdErr, 0);
  assert.equal(same.t, null);
  const none = pairedComparison(new Map([[1, 2]]), new Map([[2, 1]]), true);
  assert.equal(none.n, 0);
  assert.equal(none.meanDiff, null);
});

test('t quantiles match the published two-sided table; the paired interval is mean ± t · std err', () => {
  // Closed forms for df 1 (Cauchy: tan(pi (p - 1/2))) and df 2 ((2p - 1) / sqrt(2 p (1 - p))), with
  // p = (1 + level) / 2; df 10 and 4 from the printed t table.
  const p = 0.975;
  const table: Array<[number, number, number]> = [
    [0.95, 1, Math.tan(Math.PI * (p - 0.5))],
    [0.95, 2, (2 * p - 1) / Math.sqrt(2 * p * (1 - p))],
    [0.95, 10, 2.228138852],
    [0.99, 4, 4.604094871],
  ];
  for (const [level, df, t] of table)
    assert.ok(Math.abs(tQuantile(level, df) - t) < 2e-9, `t(${level}, ${df}) = ${tQuantile(level, df)}`);
  assert.throws(() => tQuantile(1, 3), RangeError);
  // three seeds: differences 0.1, 0.2, 0.3 -> mean 0.2, sd 0.1, std err 0.1/sqrt(3)
  const c = pairedComparison(
    new Map([
      [1, 1.1],
      [2, 1.2],
      [3, 1.3],
    ]),
    new Map([
      [1, 1],
      [2, 1],
      [3, 1],
    ]),
    true,
  );
  const [lo, hi] = pairedInterval(c)!;
  const half = ((2 * p - 1) / Math.sqrt(2 * p * (1 - p))) * (0.1 / Math.sqrt(3));
  assert.ok(Math.abs(lo - (0.2 - half)) < 1e-9 && Math.abs(hi - (0.2 + half)) < 1e-9, `${lo} ${hi}`);
  // one pair: no interval
  assert.equal(pairedInterval(pairedComparison(new Map([[1, 2]]), new Map([[1, 1]]), true)), null);
});
