/** Aggregation helpers, matching lm-evaluation-harness's `mean` and `mean_stderr`. */

export function mean(xs: readonly number[]): number {
  if (xs.length === 0) return NaN;
  let s = 0;
  for (const x of xs) s += x;
  return s / xs.length;
}

/** Standard error of the mean: sample standard deviation (n - 1 denominator) over sqrt(n); null below 2 samples. */
export function meanStderr(xs: readonly number[]): number | null {
  const n = xs.length;
  if (n < 2) return null;
  const m = mean(xs);
  let ss = 0;
  for (const x of xs) ss += (x - m) * (x - m);
  return Math.sqrt(ss / (n - 1)) / Math.sqrt(n);
}

/** Stderr of an unweighted mean of independent group means: sqrt(sum se_i^2) / k. */
export function macroStderr(groupStderrs: readonly (number | null)[]): number | null {
  if (groupStderrs.length === 0 || groupStderrs.some((s) => s === null)) return null;
  let ss = 0;
  for (const s of groupStderrs) ss += (s as number) * (s as number);
  return Math.sqrt(ss) / groupStderrs.length;
}
