// Vocabulary comparison between tokenizer formats: the llama2.c tokenizer.bin of stories260K and
// its tokenizer.json (zoo/stories260k, converted by `nuggets convert`; zoo/student-tiny uses the same
// tok512) are one vocabulary; swapped pieces, another role at an id or another size are not.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { InputError } from '../src/errors.js';
import { HfTokenizer } from '../src/io/tokenizer-hf.js';
import { Llama2cTokenizer } from '../src/io/tokenizer-llama2c.js';
import {
  checkSameVocabulary,
  firstVocabDifference,
  normalisePiece,
  vocabularyOf,
} from '../src/io/vocab-compare.js';

const ROOT = join(import.meta.dirname, '..');
const llama2c = Llama2cTokenizer.fromFile(join(ROOT, 'data', 'stories260k', 'tokenizer.bin'));
const hfFolder = join(ROOT, 'zoo', 'stories260k');
const hfJson = () => JSON.parse(readFileSync(join(hfFolder, 'tokenizer.json'), 'utf8'));
const hfConfig = () => JSON.parse(readFileSync(join(hfFolder, 'tokenizer_config.json'), 'utf8'));

/** The zoo tokenizer.json with the pieces of ids a and b exchanged. */
function swapped(a: number, b: number): HfTokenizer {
  const j = hfJson();
  const vocab = j.model.vocab as Record<string, number>;
  const pa = Object.keys(vocab).find((k) => vocab[k] === a)!;
  const pb = Object.keys(vocab).find((k) => vocab[k] === b)!;
  vocab[pa] = b;
  vocab[pb] = a;
  return new HfTokenizer(j, hfConfig(), 'swapped/tokenizer.json');
}

test('normalisePiece: llama2.c decorations, byte-token spelling, SentencePiece spaces', () => {
  assert.equal(normalisePiece('\n<s>\n'), '<s>');
  assert.equal(normalisePiece('\n</s>\n'), '</s>');
  assert.equal(normalisePiece('<0x0a>'), '<0x0A>');
  assert.equal(normalisePiece('<0x0A>'), '<0x0A>');
  assert.equal(normalisePiece('\u2581the\u2581end'), ' the end');
  assert.equal(normalisePiece(' ha'), ' ha');
  assert.equal(normalisePiece('\n'), '\n');
  assert.equal(normalisePiece('<0x0A>x'), '<0x0A>x');
});

test('llama2.c tokenizer.bin and its converted tokenizer.json are one vocabulary (decoded text is not)', () => {
  for (const folder of ['stories260k', 'student-tiny']) {
    const hf = HfTokenizer.fromFolder(join(ROOT, 'zoo', folder));
    assert.equal(firstVocabDifference(vocabularyOf(llama2c), vocabularyOf(hf)), null, folder);
    assert.equal(firstVocabDifference(vocabularyOf(hf), vocabularyOf(llama2c)), null, folder);
    checkSameVocabulary(llama2c, hf, 'teacher', folder);
  }
  const hf = HfTokenizer.fromFolder(hfFolder);
  // What the old text comparison tripped on: BOS/EOS spelled differently, and <0x20> decoding to "" in HF.
  assert.equal(llama2c.tokenText(1), '\n<s>\n');
  assert.equal(hf.tokenText(1), '<s>');
  assert.notEqual(llama2c.tokenText(35), hf.tokenText(35));
  const [a, b] = [vocabularyOf(llama2c).entry(1), vocabularyOf(hf).entry(1)];
  assert.deepEqual(a, { raw: '\n<s>\n', piece: '<s>', role: 'bos' });
  assert.deepEqual(b, { raw: '<s>', piece: '<s>', role: 'bos' });
  assert.deepEqual(vocabularyOf(hf).entry(0), { raw: '<unk>', piece: '<unk>', role: 'unk' });
  assert.deepEqual(vocabularyOf(hf).entry(300), { raw: '\u2581ha', piece: ' ha', role: null });
  assert.deepEqual(vocabularyOf(llama2c).entry(300), { raw: ' ha', piece: ' ha', role: null });
});

test('genuinely different vocabularies are refused, naming the first differing id', () => {
  const other = swapped(301, 300);
  assert.deepEqual(firstVocabDifference(vocabularyOf(llama2c), vocabularyOf(other)), {
    kind: 'token',
    id: 300,
    teacher: { raw: ' ha', piece: ' ha', role: null },
    student: { raw: '\u2581S', piece: ' S', role: null },
  });
  assert.throws(
    () => checkSameVocabulary(llama2c, other, 'tok.bin', 'other'),
    (e: unknown) =>
      e instanceof InputError &&
      e.message ===
        'tok.bin -> other: tokenizers differ at token 300: " ha" (teacher) vs "▁S" (student); teacher and student must share the tokenizer',
  );
  // a byte token moved: ids 13 (<0x0A>) and 14 (<0x0B>) swapped
  const d = firstVocabDifference(vocabularyOf(llama2c), vocabularyOf(swapped(13, 14)));
  assert.equal(d?.kind === 'token' && d.id, 13);
});

test('special tokens match by role: another role at an id differs, a missing role falls back to the piece', () => {
  // BOS and EOS exchanged in tokenizer_config.json: ids 1 and 2 keep their pieces but swap roles
  const cfg = hfConfig();
  [cfg.bos_token, cfg.eos_token] = [cfg.eos_token, cfg.bos_token];
  const exchanged = new HfTokenizer(hfJson(), cfg, 'exchanged');
  const d = firstVocabDifference(vocabularyOf(llama2c), vocabularyOf(exchanged));
  assert.equal(d?.kind === 'token' && `${d.id} ${d.teacher.role} ${d.student.role}`, '1 bos eos');
  assert.throws(
    () => checkSameVocabulary(llama2c, exchanged, 't', 's'),
    /differ at token 1: "\\n<s>\\n" \(teacher, bos\) vs "<s>" \(student, eos\)/,
  );
  // no bos/eos/unk named anywhere: "<s>" is still the llama2.c "\n<s>\n" by its piece
  const j = hfJson();
  const bare = new HfTokenizer(j, {}, 'bare');
  j.model.unk_token = null;
  const noRoles = new HfTokenizer(j, {}, 'bare');
  assert.equal(bare.bosId, null);
  assert.equal(noRoles.unkId, null);
  assert.equal(firstVocabDifference(vocabularyOf(llama2c), vocabularyOf(noRoles)), null);
  // a pad token declared on EOS's id keeps EOS's role (first of bos, eos, unk, pad)
  const padded = new HfTokenizer(hfJson(), { ...hfConfig(), pad_token: '</s>' }, 'padded');
  assert.equal(padded.padId, 2);
  assert.equal(vocabularyOf(padded).entry(2).role, 'eos');
  assert.equal(firstVocabDifference(vocabularyOf(llama2c), vocabularyOf(padded)), null);
});

test('another vocabulary size is refused with both sizes', () => {
  const bigger = new Llama2cTokenizer(
    [...llama2c.pieces, Buffer.from(' extra')],
    Float32Array.from([...llama2c.scores, -1]),
    llama2c.maxTokenLength,
    'bigger',
  );
  assert.deepEqual(firstVocabDifference(vocabularyOf(bigger), vocabularyOf(llama2c)), {
    kind: 'size',
    teacher: 513,
    student: 512,
  });
  assert.throws(
    () => checkSameVocabulary(bigger, llama2c, 'a', 'b'),
    (e: unknown) =>
      e instanceof InputError &&
      e.message === "a -> b: tokenizers differ: the teacher's has 513 tokens, the student's 512",
  );
});
