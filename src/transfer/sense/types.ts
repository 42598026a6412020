/** The shapes every part of docs/method.md step 1 (teacher sensitivity) shares. */
import type { ModelConfig } from '../../model/config.js';
import type { WeightSource } from '../../model/weights.js';
import type { SpillMode } from './boundaries.js';

/** One seed example, tokenised: ids and the next-token targets aligned to positions (-1 = ignored). */
export interface SenseExample {
  /** 0-based index among the seeds used (the first k of the file), kept through sharding. */
  index: number;
  /** "file:line" (or another label) for messages. */
  source: string;
  line: number | null;
  ids: Int32Array;
  targets: Int32Array;
  /** Targets >= 0: the loss denominator (answer tokens that are predicted). */
  nTargets: number;
  truncated: boolean;
}

export interface SeedLoss {
  index: number;
  line: number | null;
  /** Answer-only mean token cross-entropy (nats). */
  loss: number;
  tokens: number;
  answerTokens: number;
  truncated: boolean;
}

export type ProgressFn = (done: number, total: number, fields: Record<string, string | number>) => void;

export interface SenseRunOptions {
  /** Layer by layer (default) or the whole model in memory. */
  streaming?: boolean;
  /** Aborting stops at the next step with SenseAborted (the CLI wires SIGINT/SIGTERM to it). */
  signal?: AbortSignal;
  onProgress?: ProgressFn;
  /**
   * Streaming only: keep the layer-boundary states in memory ('never'), in scratch files ('always'),
   * or in files when they would exceed 1 GiB ('auto', the default); see boundaries.ts.
   */
  spill?: SpillMode;
  /** Where the spilled states' scratch folder is made (default os.tmpdir()). */
  scratchDir?: string;
}

export interface SenseRun {
  losses: SeedLoss[];
  tokens: number;
  answerTokens: number;
  seconds: number;
  streaming: boolean;
}

export interface TeacherSource {
  config: ModelConfig;
  weights: WeightSource;
}
