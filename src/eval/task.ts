/** What every task runner receives from runEval. */
import type { EvalLM } from './lm.js';
import type { ChatFormat } from './prompt.js';

export interface TaskContext {
  lm: EvalLM;
  batchSize: number;
  /** Evaluate only the first `limit` documents (per subject for MMLU), as lm-eval's --limit. */
  limit?: number;
  seed: number;
  chatFormat: ChatFormat;
  /** Progress of the current task: `phase` is e.g. "generate" or "loglikelihood". */
  progress: (phase: string, done: number, total: number) => void;
}

/** First `limit` items (all when limit is undefined). */
export function applyLimit<T>(items: readonly T[], limit: number | undefined): T[] {
  if (limit === undefined) return [...items];
  if (!Number.isInteger(limit) || limit < 1)
    throw new Error(`limit must be a positive integer, got ${limit}`);
  return items.slice(0, limit);
}
