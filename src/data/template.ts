/**
 * The tokenizer's own chat template (Jinja, tokenizer_config.json `chat_template`) as a ChatFormat,
 * rendered by src/io/chat-template.ts as transformers' apply_chat_template does. Kept apart from
 * chat.ts so that the Tulu path does not load the Jinja engine.
 */
import { InputError } from '../errors.js';
import { renderChat } from '../io/chat-template.js';
import type { Tokenizer } from '../model/tokenizer.js';
import type { ChatFormat } from './chat.js';

/** BOS/EOS as the template spells them: the tokenizer's named token (HF), else the token's text. */
function spelling(tok: Tokenizer, which: 'bos' | 'eos'): string | null {
  const named = (tok as { bosToken?: unknown; eosToken?: unknown })[which === 'bos' ? 'bosToken' : 'eosToken'];
  if (typeof named === 'string' && named !== '') return named;
  const id = which === 'bos' ? tok.bosId : tok.eosId;
  return id === null ? null : tok.tokenText(id);
}

/** A chat-template format from a tokenizer that has one; refuses clearly when it has none. */
export function templateFormat(tok: Tokenizer, source = 'tokenizer'): ChatFormat {
  const template = tok.chatTemplate;
  if (template === null) {
    throw new InputError(source, 'the tokenizer has no chat template (tokenizer_config.json "chat_template"); use the tulu format');
  }
  const bosToken = spelling(tok, 'bos');
  const eosToken = spelling(tok, 'eos');
  return {
    kind: 'template',
    bosToken,
    eosToken,
    render: (messages, addGenerationPrompt) =>
      renderChat(template, messages.map((m) => ({ role: m.role, content: m.content })), {
        bos_token: bosToken ?? '',
        eos_token: eosToken ?? '',
        add_generation_prompt: addGenerationPrompt,
        source,
      }),
  };
}
