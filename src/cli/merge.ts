/**
 * `nuggets merge`: the untouched student + the adapter `nuggets train` wrote -> an ordinary Hugging
 * Face model folder (W_final = W_s - scale·B0·A0 + scale·B1·A1, docs/method.md step 7) with tokenizer files
 * and a README.md model card. Options come from the `merge` schema; the work is the library's `merge` (src/api/steps.ts, over src/train/merge.ts).
 */
import type { Command } from 'commander';
import { merge } from '../api/steps.js';
import { addSchemaOptions, resolveOptions } from '../config/cli.js';
import { typedArgs } from './argv.js';

export function registerMerge(program: Command): void {
  const cmd = program
    .command('merge')
    .description(
      'merge a trained LoRA adapter into the student and write a Hugging Face model folder with a model card',
    );
  addSchemaOptions(cmd, 'merge');
  cmd.action((flags: Record<string, unknown>, self: Command) => {
    const r = merge(resolveOptions('merge', flags), { argv: typedArgs(self) });
    process.stdout.write(
      `merged ${r.modules} adapted matrices into ${r.out}${r.untied ? ' (lm_head untied from the embedding)' : ''}: ${r.files.join(', ')}\n`,
    );
  });
}
