/**
 * `nuggets extract`: teacher + student + sensitivity -> an initialisation folder (docs/method.md steps
 * 2-4 and the controls; src/transfer/extract-folder.ts does the work). Options come from the `extract`
 * schema (flags and YAML alike), plus `--force` and `--no-progress`; the work is the library's
 * `extract` (src/api/steps.ts).
 *
 *   nuggets extract --teacher <model|self> --student <model> --sensitivity sens.safetensors -o init/
 *
 * `--heads` turns the block structure into `heads` (windows on attention-head and key/value-group
 * boundaries). `--teacher self` uses the student as its own teacher (a control): its sensitivity
 * must then be the student's own (`nuggets sense --teacher <student>`).
 */
import { Option, type Command } from 'commander';
import { addSchemaOptions, resolveOptions } from '../config/cli.js';
import { extract as extractStep } from '../api/steps.js';

export function registerExtract(program: Command): void {
  const cmd = program
    .command('extract')
    .description(
      'teacher + student + sensitivity -> LoRA initialisation folder (PEFT adapter + manifest.json; docs/method.md steps 2-4)',
    );
  addSchemaOptions(cmd, 'extract');
  cmd
    .addOption(new Option('--force', 'overwrite an initialisation already in the output folder'))
    .addOption(new Option('--no-progress', 'no progress bar'))
    .action((flags: Record<string, unknown>) => {
      const { force, progress, ...rest } = flags as {
        force?: boolean;
        progress?: boolean;
      } & Record<string, unknown>;
      const opts = resolveOptions('extract', rest);
      extractStep({ ...opts, force, progress });
    });
}
