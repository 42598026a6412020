/**
 * `nuggets distill-data`: the teacher answers every prompt of a training file, and the rows are
 * written with its answers (sequence-level distillation; the output feeds a plain `nuggets train`).
 * Options come from the `distill-data` schema (src/config/schemas.ts); the work is the library's
 * `distillData` (src/api/steps.ts, over src/distill/sequence.ts).
 */
import type { Command } from 'commander';
import { addSchemaOptions, foldAlias, resolveOptions } from '../config/cli.js';
import { distillData } from '../api/steps.js';

export function registerDistillData(program: Command): void {
  const cmd = program
    .command('distill-data')
    .description(
      "the teacher's answers to the training prompts, as training data (sequence-level distillation)",
    )
    .argument('[teacher]', 'teacher model (or --teacher, or teacher: in --config)');
  addSchemaOptions(cmd, 'distill-data');
  cmd.action((teacher: string | undefined, flags: Record<string, unknown>) => {
    foldAlias(
      flags,
      'teacher',
      teacher,
      'distill-data',
      () => `two teachers given: ${teacher} and --teacher ${String(flags.teacher)}`,
    );
    const opts = resolveOptions('distill-data', flags);
    const r = distillData(opts, (line) => process.stderr.write(line + '\n'));
    process.stdout.write(r.summary + '\n');
  });
}
