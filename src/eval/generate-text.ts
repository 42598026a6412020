/**
 * The `generate` step end to end: text from a model (HF folder or llama2.c checkpoint) with an optional
 * PEFT LoRA adapter (attached unmerged, as eval and serve attach it), handed to a callback as it
 * becomes final (src/model/generate.ts: KV cache, greedy or temperature / top-k / top-p sampling from
 * a seed, stop strings, a token budget).
 *
 * The text is the continuation of the prompt: decode(prompt tail + new) minus decode(prompt tail), as
 * model-lm.ts does (src/model/continuation.ts: SentencePiece-style decoders strip the leading space of
 * the first piece they see, and "Once upon a time" + " there" must not print "timethere"). An empty
 * prompt starts from BOS; the text then is exactly what llama2.c prints (the golden test of
 * docs/formats.md).
 *
 * The library's `generate` (src/api/steps.ts) validates the options and calls `runGenerate`.
 */
import { dirname, join } from 'node:path';
import type { OptionsOf } from '../config/parse.js';
import { InputError } from '../errors.js';
import { applyChatTemplate } from '../io/chat-template.js';
import { renderPrompt, TULU } from '../data/chat.js';
import { tokenizePieces } from '../data/encode.js';
import { ContinuationTokenizer } from '../model/continuation.js';
import { generate as generateTokens, type FinishReason } from '../model/generate.js';
import type { Tokenizer } from '../model/tokenizer.js';
import { loadModelLM } from './model-lm.js';

type GenerateOpts = OptionsOf<'generate'>;

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
    return tokenizePieces(renderPrompt([{ role: 'user', content: prompt }], TULU), tok, {
      addBos: true,
      mask: false,
    }).ids;
  if (!tok.chatTemplate)
    throw new InputError(tokSource, 'the tokenizer has no chat template; use --chat-format tulu');
  return applyChatTemplate(tok, [{ role: 'user', content: prompt }], { add_generation_prompt: true }).ids;
}

/** The text generated, its token counts, why it stopped and how long it took. */
export interface GenerateTextResult {
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
): GenerateTextResult {
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
