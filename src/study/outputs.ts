/**
 * Where the pipeline's commands leave their outputs inside a job folder, read back by the runner:
 * the trained adapter that `nuggets eval` applies to the untouched student.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { InputError } from '../errors.js';

/**
 * The adapter to evaluate on the untouched student: `nuggets train` writes it at the top of its
 * output folder (src/train/export.ts). After a subtract-trick init (teacher, PiSSA, self...) that is
 * the plain rank-2r adapter [B1 | B0], [A1 ; -A0] of docs/method.md step 7, the only one that gives the
 * trained model on the untouched student; the trained factors alone sit in trained_adapter/ and must
 * not be used here.
 */
export function findTrainedAdapter(trainDir: string): string {
  if (!existsSync(join(trainDir, 'adapter_config.json'))) {
    throw new InputError(trainDir, 'no trained adapter (adapter_config.json) after training');
  }
  return trainDir;
}
