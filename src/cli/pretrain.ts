/**
 * `nuggets pretrain`: full-parameter language-model training from scratch or continued
 * (src/train/pretrain.ts does the work). Options come from the `pretrain` schema
 * (src/config/schemas.ts), as flags or a YAML file. The command that reproduces the run (every option
 * that differs from its default, as flags) is recorded in the output folder's RECIPE.md.
 *
 *   nuggets pretrain --data stories.jsonl --tokenizer data/stories260k/tokenizer.bin \
 *     --hidden-size 48 --num-layers 3 --num-heads 6 --num-kv-heads 2 --intermediate-size 128 \
 *     --out zoo/student-tiny
 */
import type { Command } from 'commander';
import { addSchemaOptions, resolveOptions, toFlags } from '../config/cli.js';
import { shellQuote } from '../config/shell.js';
import { pretrain } from '../api/steps.js';

export function registerPretrain(program: Command): void {
  const cmd = program
    .command('pretrain')
    .description(
      'train a LLaMA-family model on text from scratch (or continue one): the bundled zoo is built with it',
    );
  addSchemaOptions(cmd, 'pretrain');
  cmd.action((flags: Record<string, unknown>) => {
    const o = resolveOptions('pretrain', flags);
    // Every option that differs from its default, as flags: the command that reproduces this run
    // (also when the options came from a config file).
    const command = shellQuote(['nuggets', 'pretrain', ...toFlags('pretrain', o)]);
    const r = pretrain(o, { command });
    process.stdout.write(
      JSON.stringify({
        out: r.out,
        steps: r.steps,
        trainLoss: Math.round(r.trainLoss * 1e4) / 1e4,
        valLoss: r.valLoss === null ? null : Math.round(r.valLoss * 1e4) / 1e4,
        seconds: Math.round(r.seconds),
      }) + '\n',
    );
  });
}
