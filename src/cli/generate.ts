/**
 * `nuggets generate <model> --prompt ...`: text from a model (HF folder or llama2.c checkpoint), with an
 * optional PEFT LoRA adapter, streamed to stdout token by token (src/eval/generate-text.ts does the
 * work; the library's `generate` in src/api/steps.ts runs it).
 *
 * Options come from the `generate` schema (src/config/schemas.ts: flags and YAML alike), plus three
 * command-line conveniences: `--max-tokens` (= --max-new-tokens), `--stop <text>` (repeatable; \n and
 * \t are read as newline and tab) and `--chat` (= --chat-format template when the tokenizer has a chat
 * template, else tulu).
 */
import { InvalidArgumentError, Option, type Command } from 'commander';
import { InputError } from '../errors.js';
import { addSchemaOptions, foldAlias, resolveOptions } from '../config/cli.js';
import { generate } from '../api/steps.js';

/** `\n`, `\t`, `\r` and `\\` in a --stop value, so a newline stop can be typed on any shell. */
export function unescapeStop(s: string): string {
  return s.replace(/\\([ntr\\])/g, (_, c: string) => ({ n: '\n', t: '\t', r: '\r', '\\': '\\' })[c]!);
}

export function registerGenerate(program: Command): void {
  const cmd = program
    .command('generate')
    .description(
      'generate text from a model (HF folder or llama2.c checkpoint), optionally with a LoRA adapter',
    )
    .argument('[model]', 'HF model folder or llama2.c checkpoint (or --model, or model: in --config)');
  addSchemaOptions(cmd, 'generate');
  cmd
    .addOption(
      new Option('--max-tokens <integer>', 'same as --max-new-tokens').argParser((v: string) => {
        const n = Number(v);
        if (!Number.isInteger(n)) throw new InvalidArgumentError('expected an integer.');
        return n;
      }),
    )
    .addOption(
      new Option(
        '--stop <text>',
        'stop before this text (repeat for several; \\n and \\t are newline and tab)',
      ).argParser((v: string, prev: string[] | undefined) => [...(prev ?? []), unescapeStop(v)]),
    )
    .addOption(
      new Option(
        '--chat',
        "wrap the prompt as a user turn: the tokenizer's chat template, or tulu when it has none",
      ),
    )
    .action((model: string | undefined, flags: Record<string, unknown>) => {
      const { maxTokens, stop, chat, ...rest } = flags as {
        maxTokens?: number;
        stop?: string[];
        chat?: boolean;
      } & Record<string, unknown>;
      foldAlias(
        rest,
        'model',
        model,
        'generate',
        () => `two models given: ${model} and --model ${String(rest.model)}`,
      );
      foldAlias(
        rest,
        'maxNewTokens',
        maxTokens,
        'generate',
        () => 'give --max-tokens or --max-new-tokens, not both',
      );
      if (chat && rest.chatFormat !== undefined)
        throw new InputError('generate', 'give --chat or --chat-format, not both');
      const o = resolveOptions('generate', rest);
      const r = generate({ ...o, stop, chat, onText: (t) => process.stdout.write(t) });
      process.stdout.write('\n');
      if (process.stderr.isTTY) {
        const rate = r.seconds > 0 ? (r.tokens / r.seconds).toFixed(1) : 'inf';
        process.stderr.write(
          `[${r.promptTokens} prompt tokens, ${r.tokens} generated (${r.finishReason}), ${rate} tokens/s]\n`,
        );
      }
    });
}
