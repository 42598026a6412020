/**
 * Rendering examples into text pieces with a per-piece "is this the answer?" flag, before tokenising.
 *
 * A rendered example is a list of pieces: text, or a special token (BOS/EOS) given by id rather than
 * by its spelling, so that tokenizers that do not parse "</s>" inside text (llama2.c's tokenizer.bin)
 * still get a real EOS. `target` marks the pieces the loss is computed on (the answer).
 *
 * Tulu format, exactly as the reference (ParaKnowTransfer `get_content`, docs/method.md steps 1 and 6):
 *   system    -> "<|system|>\n" + content.strip() + "\n\n"
 *   user      -> "<|user|>\n" + content.strip() + "\n\n"
 *   assistant -> "<|assistant|>\n" + content.strip() + EOS          (no newline after EOS)
 * The prompt is `messages[:-1]` rendered + "<|assistant|>\n"; the answer is the last assistant
 * content + EOS. Earlier assistant turns are context only (the reference trains the last turn).
 * Text after an EOS piece is tokenised as a fresh run (a SentencePiece tokenizer gives it its dummy
 * prefix space again), as the legacy LlamaTokenizer the reference used does after "</s>" in text.
 * Note: open-instruct's own Tulu layout differs ("\n" rather than "\n\n" after a user turn, "\n"
 * after each EOS); the paper's code is the reference here.
 *
 * Chat-template format: the tokenizer's Jinja template rendered twice, the whole conversation and the
 * prompt (`messages[:-1]` with add_generation_prompt); the prompt must be a prefix of the whole, and
 * the rest is the answer. BOS/EOS spellings inside the rendered text become special pieces.
 */
import { InputError } from '../errors.js';
import type { ChatMessage, Example } from './examples.js';

export type Piece = { text: string; target: boolean } | { special: 'bos' | 'eos'; target: boolean };

/** Renders messages to text the way a chat template does (see src/data/template.ts for the Jinja one). */
export type RenderFn = (messages: ChatMessage[], addGenerationPrompt: boolean) => string;

export type ChatFormat =
  | { kind: 'tulu' }
  | {
      kind: 'template';
      render: RenderFn;
      /** Spellings of BOS/EOS as the template writes them (e.g. "<s>", "</s>"); null when none. */
      bosToken: string | null;
      eosToken: string | null;
    };

export const TULU: ChatFormat = { kind: 'tulu' };

/** Python's str.strip() for the whitespace that matters here. */
function strip(s: string): string {
  return s.trim();
}

function tuluTurn(m: ChatMessage): string {
  switch (m.role) {
    case 'system':
      return `<|system|>\n${strip(m.content)}\n\n`;
    case 'user':
      return `<|user|>\n${strip(m.content)}\n\n`;
    case 'assistant':
      return `<|assistant|>\n${strip(m.content)}`;
  }
}

/** Context pieces for turns (not targets); assistant turns close with EOS as the reference does. */
function tuluContext(messages: ChatMessage[]): Piece[] {
  const out: Piece[] = [];
  for (const m of messages) {
    out.push({ text: tuluTurn(m), target: false });
    if (m.role === 'assistant') out.push({ special: 'eos', target: false });
  }
  return out;
}

/** Splits rendered text on BOS/EOS spellings into pieces with the given target flag. */
export function splitSpecials(text: string, target: boolean, bosToken: string | null, eosToken: string | null): Piece[] {
  const out: Piece[] = [];
  const marks = [bosToken, eosToken].filter((t): t is string => t !== null && t !== '');
  let rest = text;
  while (rest.length > 0) {
    let at = -1;
    let which = '';
    for (const m of marks) {
      const i = rest.indexOf(m);
      if (i >= 0 && (at < 0 || i < at || (i === at && m.length > which.length))) {
        at = i;
        which = m;
      }
    }
    if (at < 0) {
      out.push({ text: rest, target });
      break;
    }
    if (at > 0) out.push({ text: rest.slice(0, at), target });
    // One spelling for both (GPT-2 style "<|endoftext|>"): it is BOS only at the very start.
    const isBos = which === bosToken && (bosToken !== eosToken || (out.length === 0 && at === 0 && rest === text));
    out.push({ special: isBos ? 'bos' : 'eos', target });
    rest = rest.slice(at + which.length);
  }
  return out;
}

function renderTemplate(fmt: Extract<ChatFormat, { kind: 'template' }>, messages: ChatMessage[], source: string): Piece[] {
  let full: string;
  let prompt: string;
  try {
    full = fmt.render(messages, false);
    prompt = fmt.render(messages.slice(0, -1), true);
  } catch (e) {
    throw new InputError(source, `the chat template failed on this example: ${e instanceof Error ? e.message : String(e)}`);
  }
  if (!full.startsWith(prompt)) {
    throw new InputError(
      source,
      'the chat template does not render the prompt (messages without the answer, with add_generation_prompt) as a prefix ' +
        'of the whole conversation, so the answer tokens cannot be located; use the tulu format',
    );
  }
  return [
    ...splitSpecials(prompt, false, fmt.bosToken, fmt.eosToken),
    ...splitSpecials(full.slice(prompt.length), true, fmt.bosToken, fmt.eosToken),
  ];
}

/** Pieces of a training / seed example: prompt context (target false), then the answer (+ EOS) as target. */
export function renderExample(ex: Example, format: ChatFormat, opts: { addEos?: boolean } = {}): Piece[] {
  const addEos = opts.addEos ?? true;
  if (ex.kind === 'text') {
    const out: Piece[] = [{ text: ex.text, target: true }];
    if (addEos) out.push({ special: 'eos', target: true });
    return out;
  }
  if (format.kind === 'template') return renderTemplate(format, ex.messages, ex.source);
  const answer = ex.messages[ex.messages.length - 1];
  const out = tuluContext(ex.messages.slice(0, -1));
  out.push({ text: '<|assistant|>\n', target: false });
  out.push({ text: strip(answer.content), target: true });
  if (addEos) out.push({ special: 'eos', target: true });
  return out;
}

/**
 * Pieces of a generation prompt: the conversation so far (its last message normally the user's),
 * followed by the assistant header, so the model writes the answer next.
 */
export function renderPrompt(messages: ChatMessage[], format: ChatFormat): Piece[] {
  if (format.kind === 'template') {
    const text = format.render(messages, true);
    return splitSpecials(text, false, format.bosToken, format.eosToken);
  }
  return [...tuluContext(messages), { text: '<|assistant|>\n', target: false }];
}

/** The pieces joined back into text (special pieces spelled as given), for display and tests. */
export function piecesToText(pieces: Piece[], spell: { bos: string; eos: string } = { bos: '<s>', eos: '</s>' }): string {
  return pieces.map((p) => ('text' in p ? p.text : spell[p.special])).join('');
}
