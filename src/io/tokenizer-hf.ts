/**
 * tokenizer.json (+ tokenizer_config.json) through @huggingface/tokenizers, the maintained pure-JS
 * implementation of the HF tokenizers pipeline (normalizer, pre-tokenizer, BPE/Unigram/WordPiece model
 * with byte fallback, decoder). Checked on the two real families: SentencePiece-style Llama BPE (byte
 * fallback, Prepend/Replace normalizer or Metaspace) and GPT-2/Qwen2-style ByteLevel BPE.
 *
 * encode() never applies the tokenizer's post-processor: `addBos` alone decides about BOS, so every
 * format behaves the same way (a chat template that writes its own BOS text must be encoded with
 * addBos false, as transformers' apply_chat_template does).
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { Tokenizer as HfLib } from '@huggingface/tokenizers';
import { InputError } from '../errors.js';
import { readJsonFile } from './json.js';
import type { Tokenizer } from '../model/tokenizer.js';
import { Llama2cTokenizer } from './tokenizer-llama2c.js';

type Json = Record<string, unknown>;

/** A special token in tokenizer_config.json: a string or an AddedToken dict {content, ...}. */
function tokenString(v: unknown): string | null {
  if (typeof v === 'string') return v;
  if (v && typeof v === 'object' && typeof (v as Json).content === 'string')
    return (v as Json).content as string;
  return null;
}

export class HfTokenizer implements Tokenizer {
  readonly vocabSize: number;
  readonly bosId: number | null;
  readonly eosId: number | null;
  readonly padId: number | null;
  /** The unknown-token id (tokenizer_config.json unk_token, else the model's unk_token), or null. */
  readonly unkId: number | null;
  readonly chatTemplate: string | null;
  readonly bosToken: string | null;
  readonly eosToken: string | null;
  private readonly lib: HfLib;
  private readonly cleanup: boolean;
  private readonly metaspace: string | null;

  /**
   * @param fallbackIds bos/eos ids from config.json or generation_config.json, used when
   *   tokenizer_config.json does not name the tokens.
   */
  constructor(
    tokenizerJson: unknown,
    tokenizerConfig: unknown,
    readonly source: string,
    fallbackIds: { bos?: number | null; eos?: number | null } = {},
    chatTemplate: string | null = null,
  ) {
    if (typeof tokenizerJson !== 'object' || tokenizerJson === null || Array.isArray(tokenizerJson)) {
      throw new InputError(source, 'tokenizer.json is not a JSON object');
    }
    const tj = tokenizerJson as Json;
    const model = tj.model as Json | undefined;
    if (!model || typeof model !== 'object') throw new InputError(source, 'tokenizer.json has no "model"');
    const known = ['BPE', 'WordPiece', 'Unigram', 'WordLevel'];
    if (typeof model.type === 'string' && !known.includes(model.type)) {
      throw new InputError(
        source,
        `tokenizer model type "${model.type}" is not supported (supported: ${known.join(', ')})`,
      );
    }
    const cfg = (tokenizerConfig ?? {}) as Json;
    try {
      // The library wants every pipeline key present; older files leave some out.
      const full = {
        normalizer: null,
        pre_tokenizer: null,
        post_processor: null,
        decoder: null,
        added_tokens: [],
        ...tj,
      };
      this.lib = new HfLib(full, cfg);
    } catch (e) {
      throw new InputError(source, `cannot build the tokenizer: ${(e as Error).message}`);
    }
    let max = -1;
    for (const id of this.lib.get_vocab(true).values()) max = Math.max(max, id);
    this.vocabSize = max + 1;
    this.cleanup = cfg.clean_up_tokenization_spaces === true;
    this.bosToken = tokenString(cfg.bos_token);
    this.eosToken = tokenString(cfg.eos_token);
    const idOf = (t: string | null, fallback: number | null | undefined, what: string): number | null => {
      if (t !== null) {
        const id = this.lib.token_to_id(t);
        if (id === undefined)
          throw new InputError(
            source,
            `${what} ${JSON.stringify(t)} from tokenizer_config.json is not in the vocabulary`,
          );
        return id;
      }
      return fallback ?? null;
    };
    this.bosId = idOf(this.bosToken, fallbackIds.bos, 'bos_token');
    this.eosId = idOf(this.eosToken, fallbackIds.eos, 'eos_token');
    this.padId = idOf(tokenString(cfg.pad_token), null, 'pad_token');
    const unk = tokenString(cfg.unk_token) ?? (typeof model.unk_token === 'string' ? model.unk_token : null);
    this.unkId = unk === null ? null : (this.lib.token_to_id(unk) ?? null);
    this.chatTemplate = chatTemplate ?? pickTemplate(cfg.chat_template);
    // SentencePiece-style vocabularies mark spaces with U+2581 and their decoder strips the first one.
    const pre = JSON.stringify([tj.pre_tokenizer ?? null, tj.normalizer ?? null, tj.decoder ?? null]);
    this.metaspace = pre.includes('\u2581') || pre.includes('\\u2581') ? '\u2581' : null;
  }

  /** Reads tokenizer.json, tokenizer_config.json, and bos/eos fallbacks and chat templates beside them. */
  static fromFolder(folder: string): HfTokenizer {
    const tjPath = join(folder, 'tokenizer.json');
    const tj = readJsonFile(tjPath);
    const tcPath = join(folder, 'tokenizer_config.json');
    const tc = existsSync(tcPath) ? readJsonFile(tcPath) : {};
    let bos: number | null | undefined, eos: number | null | undefined;
    for (const f of ['generation_config.json', 'config.json']) {
      const p = join(folder, f);
      if (!existsSync(p)) continue;
      const j = readJsonFile(p) as Json;
      const first = (v: unknown) => (Array.isArray(v) ? v[0] : v);
      if (bos === undefined && typeof j.bos_token_id === 'number') bos = j.bos_token_id;
      if (eos === undefined && typeof first(j.eos_token_id) === 'number')
        eos = first(j.eos_token_id) as number;
    }
    // Newer transformers save the template beside tokenizer_config.json.
    let template: string | null = null;
    const jinja = join(folder, 'chat_template.jinja');
    const ctJson = join(folder, 'chat_template.json');
    if (existsSync(jinja)) template = readFileSync(jinja, 'utf8');
    else if (existsSync(ctJson)) template = pickTemplate((readJsonFile(ctJson) as Json).chat_template);
    return new HfTokenizer(
      tj,
      tc,
      tjPath,
      { bos, eos },
      template ?? pickTemplate((tc as Json).chat_template),
    );
  }

  encode(text: string, opts: { addBos?: boolean } = {}): number[] {
    const ids = text.length === 0 ? [] : this.lib.encode(text, { add_special_tokens: false }).ids;
    if (opts.addBos && this.bosId !== null) return [this.bosId, ...ids];
    return ids;
  }

  decode(ids: number[], opts: { skipSpecial?: boolean } = {}): string {
    for (const id of ids) this.check(id);
    if (ids.length === 0) return '';
    return this.lib.decode(ids, {
      skip_special_tokens: opts.skipSpecial ?? false,
      clean_up_tokenization_spaces: this.cleanup,
    });
  }

  /**
   * One token's text with its leading space (a SentencePiece decoder strips the first space of a
   * sequence, which a single token would lose). Partial UTF-8 bytes come out as U+FFFD: to stream
   * exact text, decode the growing id list and print what was added.
   */
  tokenText(id: number): string {
    this.check(id);
    const text = this.lib.decode([id], { skip_special_tokens: false, clean_up_tokenization_spaces: false });
    const piece = this.lib.id_to_token(id) ?? '';
    if (this.metaspace && piece.startsWith(this.metaspace) && !text.startsWith(' ')) return ' ' + text;
    return text;
  }

  /** The token string of an id as stored in the vocabulary (e.g. "▁the", "Ġthe"). */
  idToToken(id: number): string | undefined {
    return this.lib.id_to_token(id);
  }

  tokenToId(token: string): number | undefined {
    return this.lib.token_to_id(token);
  }

  private check(id: number): void {
    if (!Number.isInteger(id) || id < 0 || id >= this.vocabSize) {
      throw new RangeError(`${this.source}: token id ${id} is outside 0..${this.vocabSize - 1}`);
    }
  }
}

/** chat_template may be a string or a list of {name, template} (the "default" one is used). */
function pickTemplate(v: unknown): string | null {
  if (typeof v === 'string') return v;
  if (Array.isArray(v)) {
    const named = v.find((t) => t && (t as Json).name === 'default') ?? v[0];
    const t = named && (named as Json).template;
    return typeof t === 'string' ? t : null;
  }
  return null;
}

/**
 * The tokenizer of a model folder: tokenizer.json when present, else a llama2.c tokenizer.bin. A path
 * to a tokenizer.bin or tokenizer.json file works too.
 */
export function loadTokenizer(pathOrFolder: string, vocabSize?: number): Tokenizer {
  if (pathOrFolder.endsWith('.bin')) return Llama2cTokenizer.fromFile(pathOrFolder, vocabSize);
  if (pathOrFolder.endsWith('tokenizer.json')) return HfTokenizer.fromFolder(dirname(pathOrFolder));
  if (existsSync(join(pathOrFolder, 'tokenizer.json'))) return HfTokenizer.fromFolder(pathOrFolder);
  if (existsSync(join(pathOrFolder, 'tokenizer.bin')))
    return Llama2cTokenizer.fromFile(join(pathOrFolder, 'tokenizer.bin'), vocabSize);
  if (existsSync(join(pathOrFolder, 'tokenizer.model'))) {
    throw new InputError(
      pathOrFolder,
      'has only a SentencePiece tokenizer.model; a tokenizer.json is needed (transformers writes one with save_pretrained of the fast tokenizer)',
    );
  }
  throw new InputError(pathOrFolder, 'no tokenizer.json (or llama2.c tokenizer.bin) here');
}

/**
 * Incremental detokenization for streaming generation, for any Tokenizer (the prefix/read-offset scheme
 * of HF text-generation-inference): each new id decodes a short window together with a few earlier ids, so
 * leading-space stripping and multi-byte characters split over byte-fallback tokens come out right; text
 * is held back while it ends in an incomplete character (U+FFFD).
 */
export class StreamDecoder {
  private ids: number[] = [];
  private prefixOffset = 0;
  private readOffset = 0;

  constructor(
    private readonly tok: Tokenizer,
    private readonly opts: { skipSpecial?: boolean } = { skipSpecial: true },
  ) {}

  /** Adds one id; returns the text it completes ('' when it only starts a character). */
  push(id: number): string {
    this.ids.push(id);
    const prefix = this.tok.decode(this.ids.slice(this.prefixOffset, this.readOffset), this.opts);
    const full = this.tok.decode(this.ids.slice(this.prefixOffset), this.opts);
    if (full.length > prefix.length && !full.endsWith('\ufffd') && full.startsWith(prefix)) {
      this.prefixOffset = this.readOffset;
      this.readOffset = this.ids.length;
      return full.slice(prefix.length);
    }
    return '';
  }

  /** Whatever is still held back (an incomplete character at the end of generation). */
  flush(): string {
    const prefix = this.tok.decode(this.ids.slice(this.prefixOffset, this.readOffset), this.opts);
    const full = this.tok.decode(this.ids.slice(this.prefixOffset), this.opts);
    this.prefixOffset = this.readOffset = this.ids.length;
    return full.startsWith(prefix) ? full.slice(prefix.length) : '';
  }
}
