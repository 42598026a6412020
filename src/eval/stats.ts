/**
 * Aggregation helpers, matching lm-evaluation-harness's `mean` and `mean_stderr`; the study table
 * uses the same mean and sample standard deviation over training seeds.
 */

export function mean(xs: readonly number[]): number {
  if (xs.length === 0) return NaN;
  let s = 0;
  for (const x of xs) s += x;
  return s / xs.length;
}

/** Sample standard deviation (n - 1 denominator); null below two values. */
export function sampleStd(xs: readonly number[]): number | null {
  const n = xs.length;
  if (n < 2) return null;
  const m = mean(xs);
  let ss = 0;
  for (const x of xs) ss += (x - m) * (x - m);
  return Math.sqrt(ss / (n - 1));
}

/** Standard error of the mean: sampleStd over sqrt(n); null below 2 samples. */
export function meanStderr(xs: readonly number[]): number | null {
  const sd = sampleStd(xs);
  return sd === null ? null : sd / Math.sqrt(xs.length);
}

/** Stderr of an unweighted mean of independent group means: sqrt(sum se_i^2) / k. */
export function macroStderr(groupStderrs: readonly (number | null)[]): number | null {
  if (groupStderrs.length === 0 || groupStderrs.some((s) => s === null)) return null;
  let ss = 0;
  for (const s of groupStderrs) ss += (s as number) * (s as number);
  return Math.sqrt(ss) / groupStderrs.length;
}
