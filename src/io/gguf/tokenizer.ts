/**
 * The tokenizer.ggml.* metadata of a GGUF model, as convert_hf_to_gguf.py writes it:
 *
 * - SentencePiece-style BPE (a tokenizer.json with byte_fallback and U+2581 pieces, or a llama2.c
 *   tokenizer.bin): tokenizer.ggml.model "llama", tokens, scores and token types. llama.cpp merges the
 *   adjacent pair whose concatenation has the highest score, so the scores are the tokenizer.bin's
 *   own, or for a tokenizer.json minus the rank of the first merge that makes the piece (the merges
 *   were sorted by SentencePiece score when the file was made, so the order is the same).
 * - Byte-level BPE (GPT-2, Llama 3, Qwen2): tokenizer.ggml.model "gpt2", tokens, token types, merges
 *   and tokenizer.ggml.pre naming the pre-tokenizer regex llama.cpp should use.
 *
 * Token types (llama_token_type): 1 normal, 2 unknown, 3 control, 4 user defined, 5 unused, 6 byte.
 * A model whose vocab_size is larger than its tokenizer gets "[PADn]" tokens of type unused, as
 * convert_hf_to_gguf pads them, because llama.cpp takes the vocabulary size from the token list.
 */
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { InputError } from '../../errors.js';
import type { ModelConfig } from '../../model/config.js';
import { sentencePieces } from '../convert.js';
import { readJsonFile } from '../json.js';
import type { Tokenizer } from '../../model/tokenizer.js';
import { HfTokenizer } from '../tokenizer-hf.js';
import { Llama2cTokenizer } from '../tokenizer-llama2c.js';
import { gv, type GgufValue } from './writer.js';

export enum TokenType {
  NORMAL = 1,
  UNKNOWN = 2,
  CONTROL = 3,
  USER_DEFINED = 4,
  UNUSED = 5,
  BYTE = 6,
}

const BYTE_PIECE = /^<0x[0-9A-Fa-f]{2}>$/;

type Json = Record<string, unknown>;

interface Vocab {
  model: 'llama' | 'gpt2';
  pre: string | null;
  tokens: string[];
  scores: number[] | null;
  types: number[];
  merges: string[] | null;
  bos: number | null;
  eos: number | null;
  unk: number | null;
  pad: number | null;
  addBos: boolean;
  addEos: boolean;
}

/** llama.cpp's pre-tokenizer names for the split regexes convert_hf_to_gguf recognises (by hash there). */
const PRE_BY_REGEX: ReadonlyArray<[string, string]> = [
  [
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
    'llama-bpe',
  ],
  [
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
    'qwen2',
  ],
  ["'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+", 'gpt-2'],
];

function preTokenizerName(tj: Json): string {
  const pt = tj.pre_tokenizer as Json | null | undefined;
  const parts: Json[] = !pt ? [] : pt.type === 'Sequence' ? ((pt.pretokenizers as Json[]) ?? []) : [pt];
  for (const p of parts) {
    const regex = ((p.pattern as Json | undefined)?.Regex ?? null) as string | null;
    if (p.type === 'Split' && regex) {
      const hit = PRE_BY_REGEX.find(([r]) => r === regex);
      return hit ? hit[1] : 'default';
    }
  }
  // A bare ByteLevel pre-tokenizer with its built-in regex is GPT-2's.
  if (parts.some((p) => p.type === 'ByteLevel' && p.use_regex !== false)) return 'gpt-2';
  return 'default';
}

function isByteLevel(tj: Json): boolean {
  const has = (node: unknown): boolean => {
    if (!node || typeof node !== 'object') return false;
    const n = node as Json;
    if (n.type === 'ByteLevel') return true;
    return Object.values(n).some((v) => (Array.isArray(v) ? v.some(has) : has(v)));
  };
  return has(tj.pre_tokenizer) || has(tj.decoder);
}

function mergeStrings(merges: unknown, source: string): string[] {
  if (!Array.isArray(merges)) throw new InputError(source, 'tokenizer.json model has no "merges" list');
  return merges.map((m) => {
    if (typeof m === 'string') return m;
    if (Array.isArray(m) && m.length === 2 && m.every((x) => typeof x === 'string')) return `${m[0]} ${m[1]}`;
    throw new InputError(
      source,
      `tokenizer.json has a merge that is neither "a b" nor ["a", "b"]: ${JSON.stringify(m)}`,
    );
  });
}

/**
 * Whether encoding adds BOS: tokenizer_config.json's add_bos_token when it says, else whether the
 * tokenizer.json post-processor puts a special token before the text (Llama 3 does it that way).
 */
function addsBos(cfg: Json, tj: Json): boolean | null {
  if (typeof cfg.add_bos_token === 'boolean') return cfg.add_bos_token;
  const pp = tj.post_processor as Json | null | undefined;
  const procs: Json[] = !pp ? [] : pp.type === 'Sequence' ? ((pp.processors as Json[]) ?? []) : [pp];
  for (const p of procs) {
    if (p.type !== 'TemplateProcessing' || !Array.isArray(p.single)) continue;
    const first = p.single[0] as Json | undefined;
    return first !== undefined && 'SpecialToken' in first;
  }
  return null;
}

/** The vocabulary of an HF tokenizer.json (BPE only: what llama.cpp runs for LLaMA-family models). */
function hfVocab(path: string, tok: Tokenizer): Vocab {
  const tj = readJsonFile(path) as Json;
  const model = tj.model as Json;
  if (model?.type !== 'BPE') {
    throw new InputError(
      path,
      `tokenizer model type "${String(model?.type)}" cannot be exported to GGUF here (only BPE tokenizers: SentencePiece-style or byte-level)`,
    );
  }
  const vocab = model.vocab as Record<string, number>;
  const added = ((tj.added_tokens as Json[]) ?? []).map((a) => ({
    id: a.id as number,
    content: a.content as string,
    special: a.special === true,
  }));
  let n = 0;
  for (const id of Object.values(vocab)) n = Math.max(n, id + 1);
  for (const a of added) n = Math.max(n, a.id + 1);
  const tokens: (string | undefined)[] = new Array(n);
  for (const [piece, id] of Object.entries(vocab)) tokens[id] = piece;
  for (const a of added) tokens[a.id] = a.content;
  const missing = tokens.findIndex((t) => t === undefined);
  if (missing >= 0) throw new InputError(path, `tokenizer.json has no token with id ${missing}`);
  const merges = mergeStrings(model.merges, path);
  const specialIds = new Set(added.filter((a) => a.special).map((a) => a.id));
  const addedIds = new Set(added.map((a) => a.id));
  const unkPiece = typeof model.unk_token === 'string' ? model.unk_token : null;
  const unk = unkPiece !== null && unkPiece in vocab ? vocab[unkPiece] : null;
  const cfgPath = join(dirname(path), 'tokenizer_config.json');
  const cfg = existsSync(cfgPath) ? (readJsonFile(cfgPath) as Json) : {};
  const byteLevel = isByteLevel(tj);
  const base = {
    tokens: tokens as string[],
    bos: tok.bosId,
    eos: tok.eosId,
    unk,
    pad: tok instanceof HfTokenizer ? tok.padId : null,
  };
  if (byteLevel) {
    return {
      ...base,
      model: 'gpt2',
      pre: preTokenizerName(tj),
      scores: null,
      merges,
      types: base.tokens.map((_, id) =>
        specialIds.has(id) ? TokenType.CONTROL : addedIds.has(id) ? TokenType.USER_DEFINED : TokenType.NORMAL,
      ),
      addBos: addsBos(cfg, tj) ?? false,
      addEos: cfg.add_eos_token === true,
    };
  }
  if (model.byte_fallback !== true) {
    throw new InputError(
      path,
      'is neither a byte-level BPE nor a SentencePiece-style BPE with byte_fallback; llama.cpp has no tokenizer for it',
    );
  }
  // score: minus the rank of the first merge that makes the piece
  const rank = new Map<string, number>();
  merges.forEach((m, i) => {
    const sp = m.indexOf(' ');
    const piece = m.slice(0, sp) + m.slice(sp + 1);
    if (!rank.has(piece)) rank.set(piece, i);
  });
  return {
    ...base,
    model: 'llama',
    pre: 'default',
    merges: null,
    scores: base.tokens.map((t) => (rank.has(t) ? -rank.get(t)! : 0)),
    types: base.tokens.map((t, id) =>
      id === unk
        ? TokenType.UNKNOWN
        : specialIds.has(id)
          ? TokenType.CONTROL
          : BYTE_PIECE.test(t)
            ? TokenType.BYTE
            : addedIds.has(id)
              ? TokenType.USER_DEFINED
              : TokenType.NORMAL,
    ),
    addBos: addsBos(cfg, tj) ?? true,
    addEos: cfg.add_eos_token === true,
  };
}

/** The vocabulary of a llama2.c tokenizer.bin: its pieces (U+2581 for spaces) and its own scores. */
function llama2cVocab(tok: Llama2cTokenizer): Vocab {
  const tokens = sentencePieces(tok);
  return {
    model: 'llama',
    pre: 'default',
    tokens,
    scores: Array.from(tok.scores),
    merges: null,
    types: tokens.map((t, id) =>
      id === 0
        ? TokenType.UNKNOWN
        : id === tok.bosId || id === tok.eosId
          ? TokenType.CONTROL
          : BYTE_PIECE.test(t)
            ? TokenType.BYTE
            : TokenType.NORMAL,
    ),
    bos: tok.bosId,
    eos: tok.eosId,
    unk: 0,
    pad: null,
    addBos: true,
    addEos: false,
  };
}

/**
 * The tokenizer metadata for a model: from the tokenizer.json an HF tokenizer was read from, or from a
 * llama2.c tokenizer, padded to the model's vocab_size.
 */
export function tokenizerMetadata(
  tok: Tokenizer,
  config: ModelConfig,
  source: string,
): Map<string, GgufValue> {
  let v: Vocab;
  if (tok instanceof Llama2cTokenizer) v = llama2cVocab(tok);
  else if (tok instanceof HfTokenizer) v = hfVocab(tok.source, tok);
  else throw new InputError(source, 'this tokenizer cannot be written to GGUF');
  if (v.tokens.length > config.vocabSize) {
    throw new InputError(
      source,
      `tokenizer has ${v.tokens.length} tokens but the model's vocab_size is ${config.vocabSize}`,
    );
  }
  for (let id = v.tokens.length; id < config.vocabSize; id++) {
    v.tokens.push(`[PAD${id}]`);
    v.types.push(TokenType.UNUSED);
    v.scores?.push(-1000);
  }
  const eos = config.eosTokenId[0] ?? v.eos;
  const bos = config.bosTokenId ?? v.bos;
  const md = new Map<string, GgufValue>();
  md.set('tokenizer.ggml.model', gv.str(v.model));
  md.set('tokenizer.ggml.pre', gv.str(v.pre ?? 'default'));
  md.set('tokenizer.ggml.tokens', gv.strs(v.tokens));
  if (v.scores) md.set('tokenizer.ggml.scores', gv.f32s(v.scores));
  md.set('tokenizer.ggml.token_type', gv.i32s(v.types));
  if (v.merges) md.set('tokenizer.ggml.merges', gv.strs(v.merges));
  if (bos !== null) md.set('tokenizer.ggml.bos_token_id', gv.u32(bos));
  if (eos !== null) md.set('tokenizer.ggml.eos_token_id', gv.u32(eos));
  if (v.unk !== null) md.set('tokenizer.ggml.unknown_token_id', gv.u32(v.unk));
  const pad = config.padTokenId ?? v.pad;
  if (pad !== null) md.set('tokenizer.ggml.padding_token_id', gv.u32(pad));
  md.set('tokenizer.ggml.add_bos_token', gv.bool(v.addBos));
  md.set('tokenizer.ggml.add_eos_token', gv.bool(v.addEos));
  if (tok.chatTemplate) md.set('tokenizer.chat_template', gv.str(tok.chatTemplate));
  return md;
}
