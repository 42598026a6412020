/**
 * Decoding generated tokens as the continuation of their prompt, for `nuggets generate` and
 * `nuggets serve` (src/eval/model-lm.ts does the same over the whole prompt after generation).
 *
 * SentencePiece-style decoders strip the leading space of the first piece they see, so decoding the
 * new tokens alone turns "Once upon a time" + " there" into "timethere" and "A:" + " 18" into
 * "A:18". The text of new tokens is therefore decode(prompt tail + new) minus decode(prompt tail).
 */
import type { Tokenizer } from './tokenizer.js';

/**
 * A Tokenizer whose decode(ids) is the text `ids` add after the prompt; everything else is the base
 * tokenizer's. Hand it to generate() (src/model/generate.ts) as `tokenizer`, so stop strings and
 * streamed text see the continuation as it will be printed.
 */
export class ContinuationTokenizer implements Tokenizer {
  /**
   * Prompt tokens decoded with the new ones: enough for the leading-space rule and byte-fallback
   * characters, and keeps each streaming step cheap for long prompts.
   */
  private static readonly CONTEXT = 16;
  private readonly tail: number[];
  private readonly before: string;

  constructor(
    private readonly base: Tokenizer,
    prompt: readonly number[],
  ) {
    // BOS stays in the window when the prompt is short: it decides the leading-space rule (llama2.c)
    this.tail = prompt.slice(Math.max(0, prompt.length - ContinuationTokenizer.CONTEXT));
    this.before = base.decode(this.tail, { skipSpecial: true });
  }

  get vocabSize(): number {
    return this.base.vocabSize;
  }
  get bosId(): number | null {
    return this.base.bosId;
  }
  get eosId(): number | null {
    return this.base.eosId;
  }
  get chatTemplate(): string | null {
    return this.base.chatTemplate;
  }
  encode(text: string, opts?: { addBos?: boolean }): number[] {
    return this.base.encode(text, opts);
  }
  tokenText(id: number): string {
    return this.base.tokenText(id);
  }
  decode(ids: number[]): string {
    const full = this.base.decode([...this.tail, ...ids], { skipSpecial: true });
    // when the new tokens change the tail's own text (e.g. complete a byte-fallback character), decode them alone
    return full.startsWith(this.before)
      ? full.slice(this.before.length)
      : this.base.decode(ids, { skipSpecial: true });
  }
}
