/**
 * The tokenizer interface every format implements (src/io: tokenizer.json through a maintained
 * package, llama2.c tokenizer.bin). Generation drives it, so it lives with the model.
 */
export interface Tokenizer {
  readonly vocabSize: number;
  readonly bosId: number | null;
  readonly eosId: number | null;
  /** Encode text. addBos prepends BOS (when the tokenizer has one). */
  encode(text: string, opts?: { addBos?: boolean }): number[];
  /** Decode ids to text; skipSpecial drops BOS/EOS/pad. */
  decode(ids: number[], opts?: { skipSpecial?: boolean }): string;
  /** The text of a single token (for streaming output). */
  tokenText(id: number): string;
  /** A chat template (Jinja source) when the tokenizer folder has one. */
  readonly chatTemplate: string | null;
}
