/**
 * `nuggets convert`: a llama2.c checkpoint + tokenizer.bin -> an HF model folder that transformers and
 * nuggets' HF path load: config.json, model.safetensors (q/k rows permuted for rotate_half RoPE, exactly
 * as HF's convert_llama_weights_to_hf.py does), tokenizer.json (Llama-2 style SentencePiece BPE rebuilt
 * from tokenizer.bin the way transformers' LlamaConverter does), tokenizer_config.json and
 * generation_config.json.
 */
import { writeJsonAtomic } from './atomic.js';
import { writeHfModel } from './checkpoint.js';
import { InputError } from '../errors.js';
import { readLlama2c, toHfLayout } from './llama2c.js';
import { Llama2cTokenizer } from './tokenizer-llama2c.js';
import { join } from 'node:path';

const SPIECE = '\u2581';

/** The SentencePiece pieces of tokenizer.bin: llama2.c wrote U+2581 as ' ' and BOS/EOS as "\n<s>\n"/"\n</s>\n". */
export function sentencePieces(tok: Llama2cTokenizer): string[] {
  const dec = new TextDecoder('utf-8', { fatal: true });
  return tok.pieces.map((bytes, id) => {
    if (id === 0) return '<unk>';
    if (id === 1) return '<s>';
    if (id === 2) return '</s>';
    let s: string;
    try {
      s = dec.decode(bytes);
    } catch {
      throw new InputError(
        tok.source,
        `token ${id} is not valid UTF-8, so it cannot be a tokenizer.json piece`,
      );
    }
    return s.replaceAll(' ', SPIECE);
  });
}

/**
 * BPE merges from pieces and scores as transformers' SentencePieceExtractor / generate_merges does:
 * every split of every piece into two pieces of the vocabulary, grouped per piece in (id left, id right)
 * order, then stably sorted by (score, len(left), len(right)) descending.
 */
export function extractMerges(pieces: string[], scores: ArrayLike<number>): Array<[string, string]> {
  const vocab = new Map<string, number>();
  pieces.forEach((p, i) => vocab.set(p, i));
  const merges: Array<{ l: string; r: string; score: number; ll: number; lr: number }> = [];
  // dict(vocab_scores) keeps the last score of a duplicated piece but its first position.
  const order: string[] = [];
  const scoreOf = new Map<string, number>();
  pieces.forEach((p, i) => {
    if (!scoreOf.has(p)) order.push(p);
    scoreOf.set(p, scores[i]);
  });
  for (const piece of order) {
    const chars = Array.from(piece); // Python slices by code point
    const local: typeof merges = [];
    for (let k = 1; k < chars.length; k++) {
      const l = chars.slice(0, k).join(''),
        r = chars.slice(k).join('');
      if (vocab.has(l) && vocab.has(r))
        local.push({ l, r, score: scoreOf.get(piece)!, ll: k, lr: chars.length - k });
    }
    local.sort((a, b) => vocab.get(a.l)! - vocab.get(b.l)! || vocab.get(a.r)! - vocab.get(b.r)!);
    merges.push(...local);
  }
  merges.sort((a, b) => b.score - a.score || b.ll - a.ll || b.lr - a.lr);
  return merges.map((m) => [m.l, m.r]);
}

/** A Llama-2 style tokenizer.json for a llama2.c tokenizer (legacy Prepend+Replace normalizer, byte fallback). */
export function buildTokenizerJson(tok: Llama2cTokenizer): Record<string, unknown> {
  const pieces = sentencePieces(tok);
  const vocab: Record<string, number> = {};
  pieces.forEach((p, i) => {
    if (Object.prototype.hasOwnProperty.call(vocab, p)) {
      throw new InputError(
        tok.source,
        `piece ${JSON.stringify(p)} appears twice (ids ${vocab[p]} and ${i}); tokenizer.json needs unique pieces`,
      );
    }
    vocab[p] = i;
  });
  const merges = extractMerges(pieces, tok.scores);
  // The classic "left right" string form, unless a piece holds a space (then the [left, right] form).
  const merged = merges.some(([l, r]) => l.includes(' ') || r.includes(' '))
    ? merges
    : merges.map(([l, r]) => `${l} ${r}`);
  const special = (id: number, content: string) => ({
    id,
    content,
    single_word: false,
    lstrip: false,
    rstrip: false,
    normalized: false,
    special: true,
  });
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: [special(0, '<unk>'), special(1, '<s>'), special(2, '</s>')],
    normalizer: {
      type: 'Sequence',
      normalizers: [
        { type: 'Prepend', prepend: SPIECE },
        { type: 'Replace', pattern: { String: ' ' }, content: SPIECE },
      ],
    },
    pre_tokenizer: null,
    post_processor: {
      type: 'TemplateProcessing',
      single: [{ SpecialToken: { id: '<s>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }],
      pair: [
        { SpecialToken: { id: '<s>', type_id: 0 } },
        { Sequence: { id: 'A', type_id: 0 } },
        { SpecialToken: { id: '<s>', type_id: 1 } },
        { Sequence: { id: 'B', type_id: 1 } },
      ],
      special_tokens: { '<s>': { id: '<s>', ids: [1], tokens: ['<s>'] } },
    },
    decoder: {
      type: 'Sequence',
      decoders: [
        { type: 'Replace', pattern: { String: SPIECE }, content: ' ' },
        { type: 'ByteFallback' },
        { type: 'Fuse' },
        { type: 'Strip', content: ' ', start: 1, stop: 0 },
      ],
    },
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: '<unk>',
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: true,
      byte_fallback: true,
      ignore_merges: false,
      vocab,
      merges: merged,
    },
  };
}

export function buildTokenizerConfig(maxLength: number): Record<string, unknown> {
  const added = (content: string) => ({
    content,
    lstrip: false,
    normalized: false,
    rstrip: false,
    single_word: false,
    special: true,
  });
  return {
    add_bos_token: true,
    add_eos_token: false,
    added_tokens_decoder: { '0': added('<unk>'), '1': added('<s>'), '2': added('</s>') },
    bos_token: '<s>',
    eos_token: '</s>',
    unk_token: '<unk>',
    pad_token: null,
    clean_up_tokenization_spaces: false,
    legacy: true,
    model_max_length: maxLength,
    sp_model_kwargs: {},
    tokenizer_class: 'LlamaTokenizer',
  };
}

/** Converts a llama2.c model (+ tokenizer.bin) into an HF folder; returns the files written. */
export function convertLlama2cToHf(
  binPath: string,
  tokenizerBinPath: string,
  outFolder: string,
  opts: { maxShardBytes?: number } = {},
): string[] {
  const { config, weights } = toHfLayout(readLlama2c(binPath));
  const tok = Llama2cTokenizer.fromFile(tokenizerBinPath, config.vocabSize);
  const tokenizerJson = buildTokenizerJson(tok);
  const weightFiles = writeHfModel(outFolder, { ...config, torchDtype: 'float32' }, weights, {
    dtype: 'F32',
    maxShardBytes: opts.maxShardBytes,
  });
  writeJsonAtomic(join(outFolder, 'tokenizer.json'), tokenizerJson);
  writeJsonAtomic(
    join(outFolder, 'tokenizer_config.json'),
    buildTokenizerConfig(config.maxPositionEmbeddings),
  );
  writeJsonAtomic(join(outFolder, 'generation_config.json'), {
    _from_model_config: true,
    bos_token_id: 1,
    eos_token_id: 2,
  });
  return ['config.json', ...weightFiles, 'tokenizer.json', 'tokenizer_config.json', 'generation_config.json'];
}
