/**
 * The options of `nuggets pretrain`: their type is the `pretrain` schema's output
 * (src/config/schemas.ts), so the CLI, config files and library callers share one definition and
 * one set of defaults.
 */
import type { z } from 'zod';
import { fieldsOf } from '../../config/fields.js';
import { pretrainSchema } from '../../config/schemas.js';
import { InputError } from '../../errors.js';
import { parseShardSize } from '../../io/checkpoint.js';
import type { ModelConfig } from '../../model/config.js';

export type PretrainOptions = z.output<typeof pretrainSchema>;
type PretrainInput = z.input<typeof pretrainSchema>;

/** The options that have a schema default (optional in the input, always present in the output). */
export type PretrainDefaults = {
  [
    K in keyof PretrainOptions as object extends Pick<PretrainInput, K & keyof PretrainInput>
      ? undefined extends PretrainOptions[K]
        ? never
        : K
      : never
  ]: PretrainOptions[K];
};

/** The schema's default of every option that has one (for library callers and tests). */
export const PRETRAIN_DEFAULTS = Object.freeze(
  Object.fromEntries(fieldsOf(pretrainSchema).flatMap((f) => (f.hasDefault ? [[f.key, f.default]] : []))),
) as Readonly<PretrainDefaults>;

export interface PretrainIo {
  /** The command line to record in RECIPE.md. */
  command?: string;
  /** Status lines (default: stderr). */
  log?: (line: string) => void;
  /** Stop after this many updates in this session as if interrupted (tests of resume). */
  stopAfter?: number;
}

export interface PretrainResult {
  out: string;
  config: ModelConfig;
  steps: number;
  totalSteps: number;
  /** Mean training loss of the last logging window. */
  trainLoss: number;
  /** Held-out loss at the end (null without held-out data). */
  valLoss: number | null;
  /** Held-out loss before the first update of this run (null without held-out data or on resume). */
  initialValLoss: number | null;
  tokensPerStep: number;
  seconds: number;
  /** True when stopped early by `stopAfter` (no model folder written). */
  interrupted: boolean;
}

export function fail(problem: string): InputError {
  return new InputError('nuggets pretrain', problem);
}

/**
 * The checks of the schema that a library caller (who bypasses it) could still violate, with the
 * flag named.
 */
export function checkOptions(o: PretrainOptions): void {
  const posInt = (k: keyof PretrainOptions, min = 1) => {
    const v = o[k] as number;
    if (!(Number.isInteger(v) && v >= min))
      throw fail(
        `--${String(k).replace(/[A-Z]/g, (c) => '-' + c.toLowerCase())} must be an integer >= ${min}, got ${v}`,
      );
  };
  posInt('seqLen', 2);
  posInt('epochs');
  posInt('maxSteps', 0);
  posInt('batchSize');
  posInt('microBatchSize');
  posInt('warmupSteps', 0);
  posInt('evalSteps', 0);
  posInt('loggingSteps');
  posInt('saveSteps', 0);
  posInt('keepCheckpoints');
  if (o.batchSize % o.microBatchSize !== 0)
    throw fail(
      `--micro-batch-size ${o.microBatchSize} must divide --batch-size ${o.batchSize} (every micro-batch has the same number of tokens)`,
    );
  if (!(o.learningRate > 0 && Number.isFinite(o.learningRate)))
    throw fail(`--learning-rate must be a positive number, got ${o.learningRate}`);
  if (!(o.initStd > 0)) throw fail(`--init-std must be positive, got ${o.initStd}`);
  parseShardSize(o.maxShardSize); // a bad size fails before any training
}
