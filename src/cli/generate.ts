/**
 * `nuggets generate <model> --prompt ...`: text from a model (HF folder or llama2.c checkpoint), with an
 * optional PEFT LoRA adapter, streamed to stdout token by token (src/model/generate.ts: KV cache,
 * greedy or temperature / top-k / top-p sampling from a seed, stop strings, a token budget).
 *
 * Options come from the `generate` schema (src/config/schemas.ts: flags and YAML alike), plus three
 * command-line conveniences: `--max-tokens` (= --max-new-tokens), `--stop <text>` (repeatable; \n and
 * \t are read as newline and tab) and `--chat` (= --chat-format template when the tokenizer has a chat
 * template, else tulu).
 *
 * The text printed is the continuation of the prompt: decode(prompt tail + new) minus decode(prompt
 * tail), as src/eval/model-lm.ts does (src/model/continuation.ts: SentencePiece-style decoders strip the
 * leading space of the first piece they see, and "Once upon a time" + " there" must not print "timethere"). An empty prompt
 * starts from BOS; the text then is exactly what llama2.c prints (the golden test of docs/formats.md).
 */
import { InvalidArgumentError, Option, type Command } from 'commander';
import { dirname, join } from 'node:path';
import { InputError } from '../errors.js';
import { addSchemaOptions, foldAlias, resolveOptions, type OptionsOf } from '../config/cli.js';
import { loadModelLM } from '../eval/model-lm.js';
import type { Tokenizer } from '../model/tokenizer.js';
import { applyChatTemplate } from '../io/chat-template.js';
import { renderPrompt, TULU } from '../data/chat.js';
import { tokenizePieces } from '../data/encode.js';
import { ContinuationTokenizer } from '../model/continuation.js';
import { generate as generateTokens, type FinishReason } from '../model/generate.js';
import { generate } from '../api/steps.js';

type GenerateOpts = OptionsOf<'generate'>;

/** `\n`, `\t`, `\r` and `\\` in a --stop value, so a newline stop can be typed on any shell. */
export function unescapeStop(s: string): string {
  return s.replace(/\\([ntr\\])/g, (_, c: string) => ({ n: '\n', t: '\t', r: '\r', '\\': '\\' })[c]!);
}

/** Prompt ids: plain text after BOS (just BOS when empty), or one user turn in a chat format. */
export function promptIds(
  tok: Tokenizer,
  prompt: string,
  format: GenerateOpts['chatFormat'],
  tokSource: string,
): number[] {
  if (format === 'plain') {
    if (prompt !== '') return tok.encode(prompt, { addBos: true });
    if (tok.bosId === null)
      throw new InputError(
        tokSource,
        'the tokenizer has no BOS token, so generation needs a non-empty --prompt',
      );
    return [tok.bosId];
  }
  if (format === 'tulu')
    return tokenizePieces(renderPrompt([{ role: 'user', content: prompt }], TULU), tok, { addBos: true }).ids;
  if (!tok.chatTemplate)
    throw new InputError(tokSource, 'the tokenizer has no chat template; use --chat-format tulu');
  return applyChatTemplate(tok, [{ role: 'user', content: prompt }], { add_generation_prompt: true }).ids;
}

export interface GenerateCliResult {
  text: string;
  tokens: number;
  promptTokens: number;
  finishReason: FinishReason;
  seconds: number;
}

/** Loads the model (+ adapter), encodes the prompt and generates, calling `write` with text as it becomes final. */
export function runGenerate(
  o: GenerateOpts & { stop: string[]; chat: boolean },
  write: (text: string) => void,
): GenerateCliResult {
  // the adapter (PEFT semantics, unmerged) is attached as eval and serve attach it
  const { lm, info } = loadModelLM(o.model, { adapter: o.adapter || undefined, tokenizer: o.tokenizer });
  const { model, tokenizer: tok } = lm;
  const c = model.config;
  // where the tokenizer came from (src/io/load.ts): given, or beside the model
  const tokSource =
    o.tokenizer ?? (info.format === 'llama2c' ? join(dirname(o.model), 'tokenizer.bin') : o.model);
  const format = o.chat ? (tok.chatTemplate ? 'template' : 'tulu') : o.chatFormat;
  const ids = promptIds(tok, o.prompt, format, tokSource);
  if (ids.length === 0) throw new InputError('--prompt', 'encodes to no tokens');
  if (ids.length > c.maxPositionEmbeddings) {
    throw new InputError(
      '--prompt',
      `is ${ids.length} tokens, longer than the model's context of ${c.maxPositionEmbeddings} (${o.model})`,
    );
  }
  const t0 = performance.now();
  let text = '';
  const [r] = generateTokens(model, [ids], {
    maxNewTokens: o.maxNewTokens,
    temperature: o.temperature,
    topP: o.topP,
    topK: o.topK,
    seed: o.seed,
    stop: o.stop,
    tokenizer: new ContinuationTokenizer(tok, ids),
    onToken: (e) => {
      if (e.text) {
        text += e.text;
        if (o.stream) write(e.text);
      }
    },
  });
  if (!o.stream) write(text);
  return {
    text,
    tokens: r.tokens.length,
    promptTokens: ids.length,
    finishReason: r.finishReason,
    seconds: (performance.now() - t0) / 1000,
  };
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
