/**
 * Statistics for the study table: the paired comparison of a method against plain LoRA over the
 * seeds both ran (docs/method.md: "report spread over seeds" — the paper reports 1-2 point gains
 * with no variance, so the table must say how large the seed-to-seed noise is next to each
 * difference). The mean and sample standard deviation over seeds are eval/stats.ts's.
 *
 * The p-value is the two-sided Student t test on the per-seed differences (df = n - 1), computed
 * from the regularised incomplete beta function: p = I_{df/(df+t^2)}(df/2, 1/2).
 */
import { mean, sampleStd } from '../eval/stats.js';

/** log Gamma(x) for x > 0 (Lanczos, g = 7, 9 terms; ~1e-15 relative). */
export function logGamma(x: number): number {
  const c = [
    0.99999999999980993, 676.5203681218851, -1259.1392167224028, 771.32342877765313, -176.61502916214059,
    12.507343278686905, -0.13857109526572012, 9.9843695780195716e-6, 1.5056327351493116e-7,
  ];
  if (x < 0.5) return Math.log(Math.PI / Math.abs(Math.sin(Math.PI * x))) - logGamma(1 - x);
  x -= 1;
  let a = c[0];
  const t = x + 7.5;
  for (let i = 1; i < 9; i++) a += c[i] / (x + i);
  return 0.5 * Math.log(2 * Math.PI) + (x + 0.5) * Math.log(t) - t + Math.log(a);
}

/** Continued fraction of the incomplete beta function (modified Lentz). */
function betaContinuedFraction(a: number, b: number, x: number): number {
  const tiny = 1e-300;
  let c = 1;
  let d = 1 - ((a + b) * x) / (a + 1);
  if (Math.abs(d) < tiny) d = tiny;
  d = 1 / d;
  let h = d;
  for (let m = 1; m <= 1000; m++) {
    const m2 = 2 * m;
    let aa = (m * (b - m) * x) / ((a + m2 - 1) * (a + m2));
    d = 1 + aa * d;
    if (Math.abs(d) < tiny) d = tiny;
    c = 1 + aa / c;
    if (Math.abs(c) < tiny) c = tiny;
    d = 1 / d;
    h *= d * c;
    aa = (-(a + m) * (a + b + m) * x) / ((a + m2) * (a + m2 + 1));
    d = 1 + aa * d;
    if (Math.abs(d) < tiny) d = tiny;
    c = 1 + aa / c;
    if (Math.abs(c) < tiny) c = tiny;
    d = 1 / d;
    const del = d * c;
    h *= del;
    if (Math.abs(del - 1) < 1e-15) break;
  }
  return h;
}

/** Regularised incomplete beta I_x(a, b) for a, b > 0 and 0 <= x <= 1. */
export function incompleteBeta(x: number, a: number, b: number): number {
  if (!(x >= 0 && x <= 1)) throw new RangeError(`incompleteBeta: x must be in [0, 1], got ${x}`);
  if (x === 0 || x === 1) return x;
  const lnFront = logGamma(a + b) - logGamma(a) - logGamma(b) + a * Math.log(x) + b * Math.log(1 - x);
  // The continued fraction converges fast for x < (a+1)/(a+b+2); use the symmetry otherwise.
  if (x < (a + 1) / (a + b + 2)) return (Math.exp(lnFront) * betaContinuedFraction(a, b, x)) / a;
  return 1 - (Math.exp(lnFront) * betaContinuedFraction(b, a, 1 - x)) / b;
}

/** Two-sided p-value of Student's t with `df` degrees of freedom: P(|T| >= |t|). */
export function tTwoSidedP(t: number, df: number): number {
  if (!(df > 0)) throw new RangeError(`tTwoSidedP: df must be positive, got ${df}`);
  if (Number.isNaN(t)) return NaN;
  if (!Number.isFinite(t)) return 0;
  return Math.min(1, incompleteBeta(df / (df + t * t), df / 2, 0.5));
}

/** Paired comparison of a method against the baseline over the seeds both have. */
export interface PairedComparison {
  /** Seeds present in both (sorted). */
  seeds: number[];
  n: number;
  /** mean(method - baseline); positive means the method's number is larger. */
  meanDiff: number | null;
  /** Standard error of meanDiff: sd(diffs) / sqrt(n); null below two pairs. */
  stdErr: number | null;
  /** meanDiff / stdErr; null below two pairs or when every difference is the same. */
  t: number | null;
  /** Two-sided p of t with n - 1 degrees of freedom; null when t is. */
  p: number | null;
  /** Seeds where the method did better / worse / the same as the baseline (direction from higherIsBetter). */
  wins: number;
  losses: number;
  ties: number;
}

/**
 * Pairs `method` and `baseline` values by seed. `higherIsBetter` decides what a win is (accuracy:
 * larger; a loss: smaller); the differences themselves are always method - baseline.
 */
export function pairedComparison(
  method: ReadonlyMap<number, number>,
  baseline: ReadonlyMap<number, number>,
  higherIsBetter: boolean,
): PairedComparison {
  const seeds = [...method.keys()].filter((s) => baseline.has(s)).sort((a, b) => a - b);
  const diffs = seeds.map((s) => method.get(s)! - baseline.get(s)!);
  let wins = 0,
    losses = 0,
    ties = 0;
  for (const d of diffs) {
    if (d === 0) ties++;
    else if (d > 0 === higherIsBetter) wins++;
    else losses++;
  }
  const n = diffs.length;
  const meanDiff = n > 0 ? mean(diffs) : null;
  const sd = sampleStd(diffs);
  const stdErr = sd === null ? null : sd / Math.sqrt(n);
  let t: number | null = null;
  let p: number | null = null;
  if (stdErr !== null && stdErr > 0 && meanDiff !== null) {
    t = meanDiff / stdErr;
    p = tTwoSidedP(t, n - 1);
  }
  return { seeds, n, meanDiff, stdErr, t, p, wins, losses, ties };
}

/**
 * The two-sided Student t quantile: the t > 0 with P(|T| >= t) = 1 - level for `df` degrees of
 * freedom (bisection on tTwoSidedP, to ~1e-12), e.g. 4.3027 for level 0.95 and df 2.
 */
export function tQuantile(level: number, df: number): number {
  if (!(level > 0 && level < 1)) throw new RangeError(`tQuantile: level must be in (0, 1), got ${level}`);
  const alpha = 1 - level;
  let lo = 0;
  let hi = 1;
  while (tTwoSidedP(hi, df) > alpha) hi *= 2;
  for (let i = 0; i < 200 && hi - lo > 1e-12 * hi; i++) {
    const mid = (lo + hi) / 2;
    if (tTwoSidedP(mid, df) > alpha) lo = mid;
    else hi = mid;
  }
  return (lo + hi) / 2;
}

/**
 * The paired t confidence interval of meanDiff (meanDiff ± t_{(1+level)/2, n-1} · stdErr); null below
 * two pairs. Every difference equal gives the point itself.
 */
export function pairedInterval(c: PairedComparison, level = 0.95): [number, number] | null {
  if (c.meanDiff === null || c.stdErr === null || c.n < 2) return null;
  const half = tQuantile(level, c.n - 1) * c.stdErr;
  return [c.meanDiff - half, c.meanDiff + half];
}
