/** Shared helpers of the test/eval-*.test.ts files (not a test file itself). */
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type {
  EvalLM,
  GenerateRequest,
  LoglikelihoodRequest,
  LoglikelihoodResult,
  RollingRequest,
  RollingResult,
} from '../src/eval/lm.js';
import type { TaskContext } from '../src/eval/task.js';

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
export const DATA = join(ROOT, 'data');
export const FIXTURES = join(ROOT, 'fixtures', 'eval');
export const SHARED_DATA = join(ROOT, '..', 'shared', 'data');

/**
 * A scripted EvalLM for plumbing tests where the model is irrelevant: answers come from the given
 * functions, and every call's batch is recorded.
 */
export class ScriptedLM implements EvalLM {
  readonly calls: { method: string; size: number }[] = [];
  loglikelihoodRolling?: (reqs: RollingRequest[]) => Promise<RollingResult[]>;
  constructor(
    readonly name: string,
    private readonly gen: (r: GenerateRequest) => string = () => '',
    private readonly ll: (r: LoglikelihoodRequest) => LoglikelihoodResult = () => ({
      logprob: -1,
      greedy: false,
    }),
    rolling?: (r: RollingRequest) => RollingResult,
  ) {
    if (rolling) {
      this.loglikelihoodRolling = async (reqs) => {
        this.calls.push({ method: 'loglikelihoodRolling', size: reqs.length });
        return reqs.map(rolling);
      };
    }
  }
  async generate(reqs: GenerateRequest[]): Promise<string[]> {
    this.calls.push({ method: 'generate', size: reqs.length });
    return reqs.map(this.gen);
  }
  async loglikelihood(reqs: LoglikelihoodRequest[]): Promise<LoglikelihoodResult[]> {
    this.calls.push({ method: 'loglikelihood', size: reqs.length });
    return reqs.map(this.ll);
  }
}

export function ctxFor(lm: EvalLM, over: Partial<TaskContext> = {}): TaskContext {
  return { lm, batchSize: 4, seed: 1234, chatFormat: 'plain', progress: () => {}, ...over };
}
