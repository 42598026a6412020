/**
 * `nuggets train`: LoRA fine-tuning of a student (docs/method.md steps 5-6), optionally from an
 * initialisation folder written by `nuggets extract`. Options come from the `train` schema
 * (src/config/schemas.ts), as flags or from a YAML file (--config); everything below the command line
 * is the library's `train` (src/api/steps.ts, over src/train/run.ts). Progress goes to stderr (a bar on a terminal, plain lines otherwise); the
 * one-line summary goes to stdout.
 */
import type { Command } from 'commander';
import { train } from '../api/steps.js';
import { addSchemaOptions, foldAlias, resolveOptions } from '../config/cli.js';
import { typedArgs } from './argv.js';

export function registerTrain(program: Command): void {
  const cmd = program
    .command('train')
    .description(
      'LoRA fine-tuning of a student, from an extract folder (subtract trick), the PEFT default init or PiSSA',
    )
    .argument('[student]', 'student model (or --student, or student: in --config)');
  addSchemaOptions(cmd, 'train');
  cmd.action((student: string | undefined, flags: Record<string, unknown>, self: Command) => {
    foldAlias(
      flags,
      'student',
      student,
      'train',
      () => `two students given: ${student} and --student ${String(flags.student)}`,
    );
    const opts = resolveOptions('train', flags);
    const r = train(opts, { argv: typedArgs(self), say: (line) => process.stderr.write(line + '\n') });
    process.stdout.write(r.summary + '\n');
  });
}
