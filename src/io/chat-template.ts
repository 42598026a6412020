/**
 * Chat templates (the Jinja `chat_template` of tokenizer_config.json) rendered with @huggingface/jinja,
 * the way transformers' apply_chat_template does: trim_blocks/lstrip_blocks on, `messages`,
 * `bos_token`, `eos_token`, `add_generation_prompt` (and any extra variables) in scope, raise_exception
 * available. The rendered text is tokenized without adding special tokens (the template writes them).
 */
import { Template } from '@huggingface/jinja';
import { InputError } from '../errors.js';
import type { Tokenizer } from '../model/tokenizer.js';

/** A chat turn; any further fields a template reads (tool_calls, name, ...) pass through. */
export interface ChatMessage {
  role: string;
  content: string;
}

export interface ChatOptions {
  bos_token?: string;
  eos_token?: string;
  add_generation_prompt?: boolean;
  /** Further template variables (tools, documents, date_string, ...). */
  extra?: Record<string, unknown>;
  /** Where the template came from, for error messages. */
  source?: string;
}

const compiled = new Map<string, Template>();

export function renderChat(template: string, messages: ChatMessage[], opts: ChatOptions = {}): string {
  const source = opts.source ?? 'chat template';
  let t = compiled.get(template);
  if (!t) {
    try {
      t = new Template(template);
    } catch (e) {
      throw new InputError(source, `chat template does not parse: ${(e as Error).message}`);
    }
    compiled.set(template, t);
  }
  try {
    return t.render({
      ...opts.extra,
      messages,
      bos_token: opts.bos_token ?? '',
      eos_token: opts.eos_token ?? '',
      add_generation_prompt: opts.add_generation_prompt ?? false,
    });
  } catch (e) {
    throw new InputError(source, `chat template failed: ${(e as Error).message}`);
  }
}

/** Token strings of a tokenizer's BOS/EOS (HfTokenizer knows them; otherwise their decoded text). */
function specialText(tok: Tokenizer, which: 'bos' | 'eos'): string {
  const named = (tok as { bosToken?: string | null; eosToken?: string | null })[
    which === 'bos' ? 'bosToken' : 'eosToken'
  ];
  if (typeof named === 'string') return named;
  const id = which === 'bos' ? tok.bosId : tok.eosId;
  return id === null ? '' : tok.decode([id]);
}

/** Renders the tokenizer's own chat template and encodes it (no BOS added beyond what the template writes). */
export function applyChatTemplate(
  tok: Tokenizer,
  messages: ChatMessage[],
  opts: { add_generation_prompt?: boolean; template?: string; extra?: Record<string, unknown> } = {},
): { text: string; ids: number[] } {
  const template = opts.template ?? tok.chatTemplate;
  if (!template) throw new InputError('tokenizer', 'has no chat_template; pass one explicitly');
  const text = renderChat(template, messages, {
    bos_token: specialText(tok, 'bos'),
    eos_token: specialText(tok, 'eos'),
    add_generation_prompt: opts.add_generation_prompt,
    extra: opts.extra,
  });
  return { text, ids: tok.encode(text, { addBos: false }) };
}
