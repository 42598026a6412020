/**
 * `nuggets train`: LoRA fine-tuning of a student (METHOD.md steps 5-6), optionally from an
 * initialisation folder written by `nuggets extract`. Options come from the `train` schema
 * (src/config/schemas.ts), as flags or from a YAML file (--config); everything below the command line
 * is src/train/run.ts. Progress goes to stderr (a bar on a terminal, plain lines otherwise); the
 * one-line summary goes to stdout.
 */
import type { Command } from 'commander';
import { InputError } from '../errors.js';
import { addSchemaOptions, resolveOptions } from '../config/cli.js';
import { runTrain } from '../train/run.js';

export function registerTrain(program: Command): void {
  const cmd = program
    .command('train')
    .description('LoRA fine-tuning of a student, from an extract folder (subtract trick), the PEFT default init or PiSSA')
    .argument('[student]', 'student model (or --student, or student: in --config)');
  addSchemaOptions(cmd, 'train');
  cmd.action((student: string | undefined, flags: Record<string, unknown>) => {
    if (student !== undefined) {
      if (flags.student !== undefined && flags.student !== student) throw new InputError('train', `two students given: ${student} and --student ${String(flags.student)}`);
      flags.student = student;
    }
    const opts = resolveOptions('train', flags);
    const argv = process.argv.slice(2);
    const r = runTrain(opts, { argv, say: (line) => process.stderr.write(line + '\n') });
    process.stdout.write(r.summary + '\n');
  });
}
