/** Shared helpers of the test/train-*.test.ts files (not a test file itself). */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Rng } from '../src/engine/rng.js';
import type { EncodedExample } from '../src/data/encode.js';
import type { TrainHyper } from '../src/train/trainer.js';

export function tempDir(tag: string): string {
  return mkdtempSync(join(tmpdir(), `nuggets-${tag}-`));
}

/**
 * Random encoded examples: lengths in [minLen, maxLen], a prompt of 1..3 tokens after BOS (id 1),
 * the rest answer tokens (so every example has at least one target).
 */
export function randomExamples(
  n: number,
  vocab: number,
  seed: number,
  minLen = 5,
  maxLen = 9,
): EncodedExample[] {
  const rng = new Rng(seed);
  const out: EncodedExample[] = [];
  for (let i = 0; i < n; i++) {
    const len = minLen + rng.int(maxLen - minLen + 1);
    const ids = new Int32Array(len);
    ids[0] = 1;
    for (let t = 1; t < len; t++) ids[t] = 3 + rng.int(vocab - 3);
    const prompt = 1 + rng.int(3);
    const answerMask = new Uint8Array(len);
    for (let t = prompt + 1; t < len; t++) answerMask[t] = 1;
    let nTargets = 0;
    for (let t = 1; t < len; t++) nTargets += answerMask[t];
    out.push({
      ids,
      answerMask,
      nTargets,
      fullLength: len,
      truncated: false,
      source: `mem:${i + 1}`,
      line: i + 1,
    });
  }
  return out;
}

export function hyper(over: Partial<TrainHyper> = {}): TrainHyper {
  return {
    epochs: 1,
    learningRate: 1e-2,
    batchSize: 4,
    microBatchSize: 2,
    scheduler: 'linear',
    warmupRatio: 0.1,
    weightDecay: 0.01,
    adamBeta1: 0.9,
    adamBeta2: 0.999,
    adamEpsilon: 1e-8,
    maxGradNorm: 1,
    seed: 5,
    loggingSteps: 1,
    saveSteps: 0,
    keepCheckpoints: 10,
    ...over,
  };
}
