/** Seed examples for docs/method.md step 1, from the data pipeline, and the loss record of each. */
import type { EncodedExample } from '../../data/encode.js';
import { nextTokenTargets } from '../../data/encode.js';
import { InputError } from '../../errors.js';
import type { SeedLoss, SenseExample } from './types.js';

/** Seed examples from the data pipeline (src/data/encode.ts), indexed from `first`. */
export function toSenseExamples(encoded: readonly EncodedExample[], first = 0): SenseExample[] {
  return encoded.map((e, i) => fromIds(first + i, e.ids, e.answerMask, e.source, e.line, e.truncated));
}

/** A seed example from ids and an answer mask (1 = answer token), as the data pipeline produces. */
export function fromIds(
  index: number,
  ids: ArrayLike<number>,
  answerMask: ArrayLike<number>,
  source: string,
  line: number | null = null,
  truncated = false,
): SenseExample {
  const idArr = Int32Array.from(ids);
  const targets = nextTokenTargets(idArr, answerMask);
  let n = 0;
  for (const t of targets) if (t >= 0) n++;
  if (n === 0)
    throw new InputError(source, 'no answer token to predict (the answer is empty or was cut off)');
  return { index, source, line, ids: idArr, targets, nTargets: n, truncated };
}

export function seedLoss(ex: SenseExample, loss: number): SeedLoss {
  return {
    index: ex.index,
    line: ex.line,
    loss,
    tokens: ex.ids.length,
    answerTokens: ex.nTargets,
    truncated: ex.truncated,
  };
}
