/**
 * `nuggets eval <model> --tasks gsm8k,mmlu,... --out results.json`: the evaluation harness on a model
 * (+ an unmerged PEFT adapter), writing an lm-evaluation-harness-shaped results JSON (and, with
 * --samples, a JSONL of every per-sample record); src/eval/evaluate.ts does the work. A progress bar
 * per task phase goes to stderr (plain lines when stderr is not a terminal); a summary table goes to
 * stdout.
 *
 * Options come from the `eval` schema (flags and YAML alike), plus `--output` (= --out).
 * - `--shots 0,8`: each count runs for every task that takes shots, results keyed "<task>_<n>shot".
 * - `--chat-format template` wraps prompts with the tokenizer's chat template.
 * - `--judge`: for alpaca_eval_proxy, a URL of an OpenAI-compatible server (model name from
 *   --judge-model, else the first one the server lists; key from --judge-api-key-env) or a local model.
 * The work is the library's `evaluate` (src/api/steps.ts).
 */
import { Option, type Command } from 'commander';
import { addSchemaOptions, foldAlias, resolveOptions } from '../config/cli.js';
import { evaluate } from '../api/steps.js';

export function registerEval(program: Command): void {
  const cmd = program
    .command('eval')
    .description(
      'evaluate a model (+ adapter) on GSM8K, MMLU, Super-NI, AlpacaEval proxy, HumanEval, perplexity',
    )
    .argument('[model]', 'HF model folder or llama2.c checkpoint (or --model, or model: in --config)');
  addSchemaOptions(cmd, 'eval');
  cmd
    .addOption(new Option('--output <path>', 'same as --out'))
    .action(async (model: string | undefined, flags: Record<string, unknown>) => {
      const { output, ...rest } = flags as { output?: string } & Record<string, unknown>;
      foldAlias(
        rest,
        'model',
        model,
        'eval',
        () => `two models given: ${model} and --model ${String(rest.model)}`,
      );
      foldAlias(rest, 'out', output, 'eval', () => 'give --out or --output, not both');
      await evaluate(resolveOptions('eval', rest), { out: process.stdout, err: process.stderr });
    });
}
