import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { Llama2cTokenizer } from '../src/io/tokenizer-llama2c.js';
import { InputError } from '../src/errors.js';

const TOK = 'data/stories260k/tokenizer.bin';
const tok = Llama2cTokenizer.fromFile(TOK, 512);

/** A literal port of llama2.c run.c encode(): full rescans, sprintf-style concatenation, strict '>'. */
function referenceEncode(t: Llama2cTokenizer, text: string, bos: boolean): number[] {
  const vocab = t.pieces.map((p) => Buffer.from(p).toString('latin1'));
  const lookup = (s: string) => vocab.indexOf(s);
  const tokens: number[] = [];
  if (bos) tokens.push(1);
  const bytes = Buffer.from(text, 'utf8');
  if (bytes.length > 0) tokens.push(lookup(' '));
  let buf: number[] = [];
  for (let c = 0; c < bytes.length; c++) {
    if ((bytes[c] & 0xc0) !== 0x80) buf = [];
    buf.push(bytes[c]);
    if (c + 1 < bytes.length && (bytes[c + 1] & 0xc0) === 0x80 && buf.length < 4) continue;
    const id = lookup(Buffer.from(buf).toString('latin1'));
    if (id !== -1) tokens.push(id);
    else for (const b of buf) tokens.push(b + 3);
    buf = [];
  }
  for (;;) {
    let bestScore = Math.fround(-1e10),
      bestId = -1,
      bestIdx = -1;
    for (let i = 0; i < tokens.length - 1; i++) {
      const id = lookup(vocab[tokens[i]] + vocab[tokens[i + 1]]);
      if (id !== -1 && t.scores[id] > bestScore) {
        bestScore = t.scores[id];
        bestId = id;
        bestIdx = i;
      }
    }
    if (bestIdx === -1) break;
    tokens.splice(bestIdx, 2, bestId);
  }
  return tokens;
}

test('reads stories260K tokenizer.bin: 512 pieces, specials, byte tokens, scores', () => {
  assert.equal(tok.vocabSize, 512);
  assert.equal(tok.maxTokenLength, 7);
  assert.equal(Buffer.from(tok.pieces[1]).toString(), '\n<s>\n');
  assert.equal(Buffer.from(tok.pieces[3]).toString(), '<0x00>');
  assert.equal(Buffer.from(tok.pieces[258]).toString(), '<0xFF>');
  assert.equal(Buffer.from(tok.pieces[259]).toString(), ' t');
  assert.equal(tok.scores[260], -1);
  assert.equal(tok.pieceId(' the'), 265);
});

test('encode matches a hand-traced llama2.c encoding and the literal reference', () => {
  // " the" is piece 265: the merges of " ", t, h, e end in it.
  const ids = tok.encode('the', { addBos: true });
  assert.deepEqual(ids, [1, 265]);
  assert.deepEqual(tok.encode(''), []);
  assert.deepEqual(tok.encode('', { addBos: true }), [1]);
  const text = 'Once upon a time, there was a little girl named Lily.';
  assert.deepEqual(tok.encode(text, { addBos: true }), referenceEncode(tok, text, true));
  // Byte fallback: characters missing from the 512-piece vocabulary become byte + 3.
  const emoji = tok.encode('😀');
  const bytes = [...Buffer.from('😀')];
  assert.deepEqual(
    emoji.slice(-4),
    bytes.map((b) => b + 3),
  );
});

test('encode equals the literal llama2.c port on TinyStories lines and random text', () => {
  const lines = readFileSync('data/tinystories/tinystories_val.txt', 'utf8')
    .split('\n')
    .filter((l) => l.trim())
    .slice(0, 40);
  for (const line of lines) assert.deepEqual(tok.encode(line), referenceEncode(tok, line, false), line);
  fc.assert(
    fc.property(
      fc.string({
        unit: fc.constantFrom('a', 'b', 't', 'h', 'e', ' ', 'é', '—', 'x', '😀', '\n', 'T', 'o'),
        maxLength: 40,
      }),
      (s) => {
        assert.deepEqual(tok.encode(s, { addBos: true }), referenceEncode(tok, s, true));
      },
    ),
    { numRuns: 300, seed: 7 },
  );
  fc.assert(
    fc.property(fc.string({ unit: 'binary', maxLength: 30 }), (s) => {
      assert.deepEqual(tok.encode(s), referenceEncode(tok, s, false));
    }),
    { numRuns: 200, seed: 11 },
  );
});

test('decode inverts encode; strips one leading space after BOS; bytes fuse into UTF-8', () => {
  const lines = readFileSync('data/tinystories/tinystories_val.txt', 'utf8').split('\n').slice(0, 200);
  for (const line of lines) {
    assert.equal(tok.decode(tok.encode(line)), line);
    assert.equal(tok.decode(tok.encode(line, { addBos: true }), { skipSpecial: true }), line);
  }
  assert.equal(tok.decode(tok.encode('naïve 😀 café')), 'naïve 😀 café');
  // BOS then " Once": llama2.c prints "Once" (leading space stripped), later pieces keep theirs.
  const once = tok.encode('Once');
  assert.equal(tok.tokenText(once[0])[0], ' ');
  assert.equal(tok.decode([1, ...once], { skipSpecial: true }), 'Once');
  assert.equal(tok.decode([1, ...once]), '\n<s>\nOnce');
  assert.equal(tok.tokenText(265), ' the');
  assert.equal(tok.tokenText(3 + 0x41), 'A');
  assert.equal(tok.tokenText(3 + 0xe2), '\ufffd');
  assert.throws(() => tok.decode([512]), RangeError);
});

test('bad tokenizer.bin files give InputError naming the file', () => {
  const dir = mkdtempSync(join(tmpdir(), 'nuggets-tok-'));
  const good = readFileSync(TOK);
  const cases: Array<[string, Buffer, number | undefined, RegExp]> = [
    ['empty', Buffer.alloc(0), undefined, /too short/],
    ['truncated', good.subarray(0, good.length - 3), 512, /past the end|truncated/],
    ['wrong vocab', good, 500, /after its 500 tokens/],
    ['short vocab', good, 600, /holds 512 tokens but the model's vocab_size is 600/],
  ];
  const badLen = Buffer.from(good);
  badLen.writeInt32LE(-5, 4 + 4);
  cases.push(['negative length', badLen, 512, /token 0: byte length -5/]);
  for (const [name, buf, vocab, re] of cases) {
    const p = join(dir, `${name}.bin`);
    writeFileSync(p, buf);
    assert.throws(
      () => Llama2cTokenizer.fromFile(p, vocab),
      (e: unknown) => e instanceof InputError && e.message.startsWith(p) && re.test(e.message),
      name,
    );
  }
});
