/**
 * A byte-level BPE tokenizer.json (GPT-2 / Qwen2 style) with exactly the vocabulary size a config asks
 * for, for random-weight models at real shapes (`nuggets random-model`). Real vocabularies cannot be
 * shipped or downloaded here; what matters for memory and speed is the size of the embedding and the
 * head, and for correctness that every id is a real token that round-trips through encode/decode.
 *
 * Layout: the special tokens sit at the config's bos/eos ids (as in the real checkpoints: Llama's <s> = 1,
 * </s> = 2, Qwen2's <|endoftext|> = 151643); the 256 byte tokens fill the first free ids; every further
 * id is a merge of two earlier tokens (all byte pairs in a fixed order, then pair + byte, ...), so the
 * merges list is valid BPE and every string of the vocabulary is reachable.
 */

/** GPT-2's byte -> printable character table (bytes that print as themselves keep their character). */
export function bytesToUnicode(): string[] {
  const keep: number[] = [];
  for (let b = 33; b <= 126; b++) keep.push(b);
  for (let b = 161; b <= 172; b++) keep.push(b);
  for (let b = 174; b <= 255; b++) keep.push(b);
  const table: string[] = new Array(256);
  let extra = 0;
  for (let b = 0; b < 256; b++) {
    table[b] = keep.includes(b) ? String.fromCharCode(b) : String.fromCharCode(256 + extra++);
  }
  return table;
}

export interface SyntheticTokenizer {
  /** tokenizer.json content. */
  tokenizer: Record<string, unknown>;
  /** tokenizer_config.json content. */
  config: Record<string, unknown>;
}

/**
 * @param vocabSize the config's vocab_size (every id in [0, vocabSize) gets a token)
 * @param specials id -> content of the special tokens (e.g. {1: '<s>', 2: '</s>'})
 */
export function syntheticByteLevelBpe(
  vocabSize: number,
  specials: Map<number, string>,
  names: { bos?: string | null; eos?: string | null } = {},
): SyntheticTokenizer {
  for (const id of specials.keys()) {
    if (!Number.isSafeInteger(id) || id < 0 || id >= vocabSize)
      throw new Error(`special token id ${id} is outside the vocabulary [0, ${vocabSize})`);
  }
  if (vocabSize < 256 + specials.size)
    throw new Error(`a byte-level vocabulary needs at least ${256 + specials.size} ids, not ${vocabSize}`);
  const bytes = bytesToUnicode();
  // Byte order for the merges: space-marked and ASCII letters first, so common text merges early.
  const space = bytes[32];
  const order = [
    space,
    ...'etaoinshrdlcumwfgypbvkjxqz'.split(''),
    ...'ETAOINSHRDLCUMWFGYPBVKJXQZ'.split(''),
    ...'0123456789'.split(''),
  ];
  for (const c of bytes) if (!order.includes(c)) order.push(c);

  const vocab: Record<string, number> = {};
  const merges: string[] = [];
  let next = 0;
  const nextFree = () => {
    while (specials.has(next)) next++;
    return next++;
  };
  for (const c of bytes) vocab[c] = nextFree();
  // Level k: every token of level k-1 followed by every byte, in order, until the vocabulary is full.
  let level: string[] = order;
  const total = vocabSize - specials.size;
  let count = 256;
  while (count < total) {
    const grown: string[] = [];
    for (const left of level) {
      for (const right of order) {
        if (count >= total) break;
        const s = left + right;
        if (s in vocab) continue;
        vocab[s] = nextFree();
        merges.push(`${left} ${right}`);
        grown.push(s);
        count++;
      }
      if (count >= total) break;
    }
    level = grown;
  }
  const added = [...specials.entries()]
    .sort((a, b) => a[0] - b[0])
    .map(([id, content]) => ({
      id,
      content,
      single_word: false,
      lstrip: false,
      rstrip: false,
      normalized: false,
      special: true,
    }));
  for (const { id, content } of added) vocab[content] = id;
  const tokenizer = {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: added,
    normalizer: null,
    pre_tokenizer: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true },
    post_processor: null,
    decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: null,
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: false,
      byte_fallback: false,
      ignore_merges: false,
      vocab,
      merges,
    },
  };
  const config = {
    tokenizer_class: 'PreTrainedTokenizerFast',
    bos_token: names.bos ?? null,
    eos_token: names.eos ?? null,
    model_max_length: 1_000_000,
    clean_up_tokenization_spaces: false,
    // A plain Tulu-style template, so chat commands work on the random model too.
    chat_template:
      "{% for m in messages %}{{ '<|' + m['role'] + '|>\\n' + m['content'] + '\\n' }}{% endfor %}" +
      "{% if add_generation_prompt %}{{ '<|assistant|>\\n' }}{% endif %}",
  };
  return { tokenizer, config };
}
