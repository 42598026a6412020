/**
 * Prompt wrapping. "plain" leaves each task's standard (lm-evaluation-harness style) prompt as is.
 * "tulu" wraps the task text as a user turn in the format the students are fine-tuned on
 * (docs/method.md step 6): `<|user|>\n{question}\n\n<|assistant|>\n`. A function can be passed instead
 * (for example one built from a tokenizer's chat template with src/io/chat-template.ts): it gets the
 * user text and must return the full prompt up to where the assistant's reply starts.
 *
 * In chat mode some tasks start the assistant turn with a fixed prefix ("Answer:" for GSM8K,
 * "The answer is:" for MMLU), as open-instruct's evaluation scripts do for the Tulu-format models
 * the paper evaluates; the prefix is joined with a space unless the wrapped prompt already ends in
 * whitespace (open-instruct's rule).
 */
import { applyChatTemplate } from '../io/chat-template.js';
import type { Tokenizer } from '../model/tokenizer.js';

export type ChatWrap = (user: string) => string;
export type ChatFormat = 'plain' | 'tulu' | ChatWrap;

export function tuluWrap(user: string): string {
  return `<|user|>\n${user}\n\n<|assistant|>\n`;
}

export function isChat(format: ChatFormat | undefined): boolean {
  return format !== undefined && format !== 'plain';
}

export function chatWrapOf(format: ChatFormat): ChatWrap {
  if (format === 'tulu') return tuluWrap;
  if (typeof format === 'function') return format;
  throw new Error(`chatWrapOf: "${String(format)}" is not a chat format`);
}

/** Wraps `user` as a chat turn and appends the assistant-side prefix (may be ''). */
export function chatPrompt(format: ChatFormat, user: string, assistantPrefix: string): string {
  const wrapped = chatWrapOf(format)(user);
  if (assistantPrefix === '') return wrapped;
  const last = wrapped.at(-1);
  return last === undefined || last === '\n' || last === ' '
    ? wrapped + assistantPrefix
    : `${wrapped} ${assistantPrefix}`;
}

/** A short name for the results config. */
export function chatFormatName(format: ChatFormat | undefined): string {
  if (format === undefined || format === 'plain') return 'plain';
  if (format === 'tulu') return 'tulu';
  return 'template';
}

/**
 * Prompt for free-form instruction tasks (Super-NI, AlpacaEval): in chat mode the instruction is the
 * user turn; in plain mode it is the instruction text followed by one newline, so the answer starts
 * on the next line.
 */
export function instructionPrompt(format: ChatFormat, text: string): string {
  return isChat(format) ? chatPrompt(format, text, '') : `${text.trimEnd()}\n`;
}

/** Stop strings for free-form answers: a blank line in plain mode, end-of-turn markers in chat mode. */
export function instructionStop(format: ChatFormat): string[] {
  return isChat(format) ? ['</s>', '<|user|>', '<|im_end|>', '<|eot_id|>'] : ['\n\n'];
}

/**
 * A ChatWrap from a tokenizer's chat template (or an explicit Jinja template): the user text as one
 * user message, rendered with add_generation_prompt so the prompt ends where the reply begins.
 */
export function chatTemplateWrap(tok: Tokenizer, template?: string): ChatWrap {
  return (user) =>
    applyChatTemplate(tok, [{ role: 'user', content: user }], { add_generation_prompt: true, template }).text;
}
