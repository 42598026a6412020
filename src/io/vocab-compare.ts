/**
 * Do two tokenizers share one vocabulary? Transfer (docs/method.md step 3) copies embedding and
 * lm_head rows by token id, so every id must mean the same token in teacher and student.
 *
 * The formats spell the same vocabulary differently, so ids are compared as normalised entries,
 * not as decoded text:
 *   - special tokens by role: an id that is BOS, EOS, UNK or PAD in both tokenizers matches when
 *     the role is the same, whatever the token is called (llama2.c's tokenizer.bin stores BOS as
 *     "\n<s>\n", HF's tokenizer.json as "<s>");
 *   - other pieces by their text after normalisation: llama2.c's "\n<...>\n" decoration dropped,
 *     byte tokens "<0xNN>" in one spelling, SentencePiece's U+2581 read as the space it stands for.
 * Decoded text would not do: a SentencePiece decoder strips a leading space, so HF decodes the
 * byte token <0x20> alone to "" where llama2.c prints " ".
 */
import { InputError } from '../errors.js';
import type { Tokenizer } from '../model/tokenizer.js';
import { HfTokenizer } from './tokenizer-hf.js';
import { Llama2cTokenizer } from './tokenizer-llama2c.js';

export type SpecialRole = 'bos' | 'eos' | 'unk' | 'pad';

/** One vocabulary id in comparable form. */
export interface VocabEntry {
  /** The piece as the tokenizer stores it (for messages). */
  raw: string;
  /** The piece after normalisePiece. */
  piece: string;
  /** The special role of this id (first of bos, eos, unk, pad), or null. */
  role: SpecialRole | null;
}

/** A tokenizer's vocabulary as `size` entries, id by id. */
export interface Vocabulary {
  size: number;
  entry(id: number): VocabEntry;
}

const DECORATED = /^\n(<[^<>\n]+>)\n$/;
const BYTE_TOKEN = /^<0x([0-9A-Fa-f]{2})>$/;

/** A piece in the form both formats agree on (see the file comment). */
export function normalisePiece(raw: string): string {
  const decorated = DECORATED.exec(raw);
  if (decorated) return decorated[1];
  const byte = BYTE_TOKEN.exec(raw);
  if (byte) return `<0x${byte[1].toUpperCase()}>`;
  return raw.replace(/\u2581/g, ' ');
}

/** The ids of each special role a tokenizer declares. */
function rolesOf(t: Tokenizer): Array<[SpecialRole, number | null]> {
  const unk = t instanceof HfTokenizer || t instanceof Llama2cTokenizer ? t.unkId : null;
  const pad = t instanceof HfTokenizer ? t.padId : null;
  return [
    ['bos', t.bosId],
    ['eos', t.eosId],
    ['unk', unk],
    ['pad', pad],
  ];
}

/** The stored piece of an id: tokenizer.bin's bytes, tokenizer.json's token, else the token's text. */
function rawPiece(t: Tokenizer, id: number): string {
  if (t instanceof Llama2cTokenizer) return new TextDecoder().decode(t.pieces[id]);
  if (t instanceof HfTokenizer) return t.idToToken(id) ?? '';
  return t.tokenText(id);
}

export function vocabularyOf(t: Tokenizer): Vocabulary {
  const roles = rolesOf(t);
  return {
    size: t.vocabSize,
    entry(id: number): VocabEntry {
      const raw = rawPiece(t, id);
      const role = roles.find(([, rid]) => rid === id)?.[0] ?? null;
      return { raw, piece: normalisePiece(raw), role };
    },
  };
}

/** Same token: the same role when both ids have one, else the same normalised piece. */
export function sameEntry(a: VocabEntry, b: VocabEntry): boolean {
  if (a.role !== null && b.role !== null) return a.role === b.role;
  return a.piece === b.piece;
}

export type VocabDifference =
  | { kind: 'size'; teacher: number; student: number }
  | { kind: 'token'; id: number; teacher: VocabEntry; student: VocabEntry };

/** The first way two vocabularies differ (size, then the lowest id), or null when they are one. */
export function firstVocabDifference(teacher: Vocabulary, student: Vocabulary): VocabDifference | null {
  if (teacher.size !== student.size) return { kind: 'size', teacher: teacher.size, student: student.size };
  for (let id = 0; id < teacher.size; id++) {
    const a = teacher.entry(id),
      b = student.entry(id);
    if (!sameEntry(a, b)) return { kind: 'token', id, teacher: a, student: b };
  }
  return null;
}

function shown(e: VocabEntry, side: 'teacher' | 'student'): string {
  return `${JSON.stringify(e.raw)} (${side}${e.role === null ? '' : `, ${e.role}`})`;
}

/** Refuses tokenizers whose vocabularies differ, naming the first differing id. */
export function checkSameVocabulary(t: Tokenizer, s: Tokenizer, tName: string, sName: string): void {
  const d = firstVocabDifference(vocabularyOf(t), vocabularyOf(s));
  if (d === null) return;
  const where = `${tName} -> ${sName}`;
  if (d.kind === 'size') {
    throw new InputError(
      where,
      `tokenizers differ: the teacher's has ${d.teacher} tokens, the student's ${d.student}`,
    );
  }
  throw new InputError(
    where,
    `tokenizers differ at token ${d.id}: ${shown(d.teacher, 'teacher')} vs ${shown(d.student, 'student')}; teacher and student must share the tokenizer`,
  );
}
