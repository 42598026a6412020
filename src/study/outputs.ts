/**
 * Where the pipeline's commands leave their outputs inside a job folder, read back by the runner and
 * the report: the trained adapter that `nuggets eval` applies to the untouched student.
 */
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { InputError } from '../errors.js';

const isAdapter = (dir: string) => existsSync(join(dir, 'adapter_config.json'));

/**
 * The adapter to evaluate on the untouched student. When training started from an init folder (the
 * subtract trick, METHOD.md step 5) only the plain rank-2r adapter [B1 | B0], [A1 ; -A0] gives the
 * trained model on the untouched student (step 7), so a "plain" adapter folder wins; otherwise the
 * trained adapter itself.
 */
export function findTrainedAdapter(trainDir: string): string {
  if (!existsSync(trainDir)) throw new InputError(trainDir, 'no training output folder');
  const subdirs = readdirSync(trainDir, { withFileTypes: true }).filter((d) => d.isDirectory() && !d.name.startsWith('.') && !/^checkpoint-\d+$/.test(d.name));
  const plain = subdirs.find((d) => /plain/i.test(d.name) && isAdapter(join(trainDir, d.name)));
  if (plain) return join(trainDir, plain.name);
  for (const name of ['adapter', 'final']) if (isAdapter(join(trainDir, name))) return join(trainDir, name);
  if (isAdapter(trainDir)) return trainDir;
  throw new InputError(trainDir, 'no trained adapter (adapter_config.json) found after training');
}
