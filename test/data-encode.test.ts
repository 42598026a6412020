import { existsSync } from 'node:fs';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import {
  TULU,
  piecesToText,
  renderExample,
  renderPrompt,
  splitSpecials,
  type ChatFormat,
  type Piece,
} from '../src/data/chat.js';
import {
  collate,
  encodeExamples,
  epochRng,
  makeBatches,
  nextTokenTargets,
  tokenizePieces,
  type EncodedExample,
} from '../src/data/encode.js';
import { readExamples, toExample, type Example } from '../src/data/examples.js';
import { splitHeldOut } from '../src/data/split.js';
import { Rng } from '../src/engine/rng.js';
import { InputError } from '../src/errors.js';
import { Llama2cTokenizer } from '../src/io/tokenizer-llama2c.js';
import type { Tokenizer } from '../src/model/tokenizer.js';

const shared = (p: string) => fileURLToPath(new URL(`../../shared/${p}`, import.meta.url));

/**
 * A tiny greedy longest-match tokenizer with multi-character tokens, including "\nA", so that the
 * prompt/answer seam can be crossed by a merge. Single characters are 1000 + code point.
 */
class FakeTokenizer implements Tokenizer {
  readonly vocabSize = 2000;
  readonly bosId: number | null = 1;
  readonly eosId: number | null = 2;
  readonly chatTemplate = null;
  readonly multi = new Map<string, number>([
    ['<|user|>', 10],
    ['<|assistant|>', 11],
    ['<|system|>', 12],
    ['\n\n', 13],
    ['\nA', 14],
    ['Answer', 15],
  ]);
  encode(text: string, opts: { addBos?: boolean } = {}): number[] {
    const out: number[] = opts.addBos && this.bosId !== null ? [this.bosId] : [];
    let i = 0;
    while (i < text.length) {
      let best = '';
      for (const k of this.multi.keys()) if (k.length > best.length && text.startsWith(k, i)) best = k;
      if (best) {
        out.push(this.multi.get(best)!);
        i += best.length;
      } else {
        out.push(1000 + text.charCodeAt(i));
        i++;
      }
    }
    return out;
  }
  tokenText(id: number): string {
    if (id === 1) return '<s>';
    if (id === 2) return '</s>';
    for (const [k, v] of this.multi) if (v === id) return k;
    return String.fromCharCode(id - 1000);
  }
  decode(ids: number[]): string {
    return ids.map((i) => this.tokenText(i)).join('');
  }
}
const fake = new FakeTokenizer();
const chat = (messages: Array<[string, string]>, line = 1): Example =>
  toExample('t.jsonl', { line, value: { messages: messages.map(([role, content]) => ({ role, content })) } });
const flags = (ps: Piece[]) =>
  ps.map((p) =>
    'text' in p ? `${p.target ? 'T' : 'c'}:${p.text}` : `${p.target ? 'T' : 'c'}:[${p.special}]`,
  );

test('Tulu single turn: the reference layout, answer + EOS are the targets', () => {
  const ps = renderExample(
    chat([
      ['user', '  What is 2+2? \n'],
      ['assistant', ' 4 '],
    ]),
    TULU,
  );
  assert.equal(piecesToText(ps), '<|user|>\nWhat is 2+2?\n\n<|assistant|>\n4</s>');
  assert.deepEqual(flags(ps), ['c:<|user|>\nWhat is 2+2?\n\n', 'c:<|assistant|>\n', 'T:4', 'T:[eos]']);
});

test('Tulu multi-turn: system and earlier turns are context, earlier answers end with EOS, only the last answer is trained', () => {
  const ps = renderExample(
    chat([
      ['system', 'Be brief.'],
      ['user', 'q1'],
      ['assistant', 'a1'],
      ['user', 'q2'],
      ['assistant', 'a2'],
    ]),
    TULU,
  );
  assert.equal(
    piecesToText(ps),
    '<|system|>\nBe brief.\n\n<|user|>\nq1\n\n<|assistant|>\na1</s><|user|>\nq2\n\n<|assistant|>\na2</s>',
  );
  assert.deepEqual(
    ps.filter((p) => p.target).map((p) => ('text' in p ? p.text : p.special)),
    ['a2', 'eos'],
  );
  // The generation prompt is the same context with the assistant header last.
  assert.equal(
    piecesToText(renderPrompt([{ role: 'user', content: 'q1' }], TULU)),
    '<|user|>\nq1\n\n<|assistant|>\n',
  );
});

test('tokenising: BOS first, prompt and answer encoded together, answer starts at len(encode(prompt)) as in the reference', () => {
  // "\nA" merges across the seam: the reference counts that token as prompt (labels[:len(prompt ids)] = -100).
  for (const answer of ['Answer: 4', 'xyz', 'A']) {
    const ex = chat([
      ['user', 'q'],
      ['assistant', answer],
    ]);
    const { ids, mask } = tokenizePieces(renderExample(ex, TULU), fake);
    const promptText = '<|user|>\nq\n\n<|assistant|>\n';
    const refIds = [1, ...fake.encode(promptText + answer), 2];
    const promptLen = 1 + fake.encode(promptText).length;
    assert.deepEqual(ids, refIds);
    assert.deepEqual(
      mask,
      refIds.map((_, i) => (i >= promptLen ? 1 : 0)),
    );
  }
  const { ids } = tokenizePieces(
    renderExample(
      chat([
        ['user', 'q'],
        ['assistant', 'Answer'],
      ]),
      TULU,
    ),
    fake,
  );
  assert.deepEqual(ids, [
    1,
    10,
    1000 + 10,
    1000 + 113,
    13,
    11,
    14,
    1000 + 110,
    1000 + 115,
    1000 + 119,
    1000 + 101,
    1000 + 114,
    2,
  ]);
});

test('text examples: BOS + text + EOS, every text token and EOS is a target', () => {
  const ex = toExample('t.jsonl', { line: 3, value: { text: 'hi' } });
  const { examples } = encodeExamples([ex], fake, { format: TULU, maxLength: 100, overflow: 'truncate' });
  assert.deepEqual([...examples[0].ids], [1, 1104, 1105, 2]);
  assert.deepEqual([...examples[0].answerMask], [0, 1, 1, 1]);
  assert.equal(examples[0].nTargets, 3);
  assert.deepEqual([...nextTokenTargets(examples[0].ids, examples[0].answerMask)], [1104, 1105, 2, -1]);
  // Without BOS the first token cannot be predicted: it is not counted.
  const noBos = encodeExamples([ex], fake, {
    format: TULU,
    maxLength: 100,
    overflow: 'truncate',
    addBos: false,
  });
  assert.equal(noBos.examples[0].nTargets, 2);
});

// The paper's seed files have no licence: they are read from ../shared, and the test skips without it.
const paperSeeds = shared('data/paraknowtransfer/gsm/sample_gsm.jsonl');
const noPaperSeeds = existsSync(paperSeeds)
  ? false
  : `${paperSeeds} not present: the paper's seed files have no licence, so they are not bundled and are read from ../shared (beside the checkout) when it is there`;

test(
  'the real stories260K tokenizer: every seed answer decodes back exactly from its answer tokens',
  { skip: noPaperSeeds },
  () => {
    const tok = Llama2cTokenizer.fromFile(
      fileURLToPath(new URL('../data/stories260k/tokenizer.bin', import.meta.url)),
    );
    const exs = readExamples(paperSeeds);
    const { examples, report } = encodeExamples(exs, tok, {
      format: TULU,
      maxLength: 2048,
      overflow: 'truncate',
    });
    assert.equal(report.kept, 32);
    examples.forEach((e, i) => {
      assert.equal(e.ids[0], tok.bosId);
      const answerIds = [...e.ids].filter((_, t) => e.answerMask[t] === 1);
      assert.equal(answerIds.at(-1), tok.eosId);
      const ex = exs[i];
      assert.ok(ex.kind === 'chat');
      assert.equal(tok.decode(answerIds.slice(0, -1)), ex.messages[1].content.trim());
      // The answer is one contiguous span at the end.
      const first = e.answerMask.indexOf(1);
      assert.ok([...e.answerMask.slice(first)].every((m) => m === 1));
    });
  },
);

test('truncate: cut at maxLength, counted by line; examples with no answer token left are skipped and counted', () => {
  const exs = [
    chat(
      [
        ['user', 'q'],
        ['assistant', 'short'],
      ],
      1,
    ),
    chat(
      [
        ['user', 'q'],
        ['assistant', 'a much longer answer'],
      ],
      2,
    ),
    chat(
      [
        ['user', 'a very long question indeed'],
        ['assistant', 'x'],
      ],
      3,
    ),
  ];
  // BOS + prompt "<|user|>\nq\n\n<|assistant|>\n" are 7 tokens; maxLength 13 keeps 6 answer tokens.
  const { examples, report } = encodeExamples(exs, fake, {
    format: TULU,
    maxLength: 13,
    overflow: 'truncate',
  });
  assert.deepEqual(report.truncatedLines, [2, 3]);
  assert.deepEqual(report.skippedLines, [3]);
  assert.equal(report.kept, 2);
  assert.deepEqual(
    examples.map((e) => [e.line, e.ids.length, e.nTargets, e.truncated, e.fullLength]),
    [
      [1, 13, 6, false, 13],
      [2, 13, 6, true, 28],
    ],
  );
  assert.equal(report.targetTokens, 12);
  assert.equal(report.tokens, 26);
});

test('refuse: every over-long line is listed in one error naming the file', () => {
  const exs = [1, 2, 3].map((l) =>
    chat(
      [
        ['user', 'q'],
        ['assistant', 'x'.repeat(l * 5)],
      ],
      l * 10,
    ),
  );
  assert.throws(
    () => encodeExamples(exs, fake, { format: TULU, maxLength: 14, overflow: 'refuse' }),
    (e: unknown) =>
      e instanceof InputError &&
      e.source === 't.jsonl' &&
      /2 example\(s\) longer than the max length 14 tokens \(longest 23\) at line\(s\) 20, 30/.test(
        e.problem,
      ),
  );
  assert.throws(
    () =>
      encodeExamples(
        [
          chat([
            ['user', 'q'.repeat(50)],
            ['assistant', 'x'],
          ]),
        ],
        fake,
        { format: TULU, maxLength: 8, overflow: 'truncate' },
      ),
    /no example has an answer token left/,
  );
});

test('chat-template format: rendered twice, the rest after the prompt is the answer, BOS/EOS spellings become ids', () => {
  // A ChatML-like template with a BOS in the text: no second BOS may be added.
  const render = (ms: Array<{ role: string; content: string }>, gen: boolean) =>
    '<s>' +
    ms.map((m) => `<|im_start|>${m.role}\n${m.content}<|im_end|>\n`).join('') +
    (gen ? '<|im_start|>assistant\n' : '');
  const fmt: ChatFormat = { kind: 'template', render, bosToken: '<s>', eosToken: '<|im_end|>' };
  const ps = renderExample(
    chat([
      ['user', 'q'],
      ['assistant', 'ans'],
    ]),
    fmt,
  );
  assert.deepEqual(flags(ps), [
    'c:[bos]',
    'c:<|im_start|>user\nq',
    'c:[eos]',
    'c:\n<|im_start|>assistant\n',
    'T:ans',
    'T:[eos]',
    'T:\n',
  ]);
  const { ids, mask } = tokenizePieces(ps, fake);
  assert.equal(ids.filter((i) => i === 1).length, 1);
  assert.equal(ids[0], 1);
  assert.deepEqual(
    ids.filter((_, i) => mask[i]),
    [1097, 1110, 1115, 2, 1010],
  );
  // A template whose prompt is not a prefix of the conversation is refused, naming the example.
  const bad: ChatFormat = {
    kind: 'template',
    render: (ms, gen) => (gen ? 'X' : 'Y') + ms.length,
    bosToken: null,
    eosToken: null,
  };
  assert.throws(
    () =>
      renderExample(
        chat(
          [
            ['user', 'q'],
            ['assistant', 'a'],
          ],
          9,
        ),
        bad,
      ),
    (e: unknown) => e instanceof InputError && e.source === 't.jsonl:9',
  );
  // One spelling for BOS and EOS: BOS only at the very start.
  assert.deepEqual(flags(splitSpecials('<e>a<e>', false, '<e>', '<e>')), ['c:[bos]', 'c:a', 'c:[eos]']);
});

const enc = (ids: number[], mask: number[], line: number): EncodedExample => ({
  ids: Int32Array.from(ids),
  answerMask: Uint8Array.from(mask),
  nTargets: mask.slice(1).reduce((a, b) => a + b, 0),
  fullLength: ids.length,
  truncated: false,
  source: `t:${line}`,
  line,
});

test('collate: right padding, attention mask, targets aligned to positions (ids[t+1] on answer tokens, else -1)', () => {
  const b = collate([enc([1, 5, 6, 7], [0, 0, 1, 1], 1), enc([1, 8], [0, 1], 2)], { padId: 0 });
  assert.equal(b.B, 2);
  assert.equal(b.T, 4);
  assert.deepEqual([...b.ids], [1, 5, 6, 7, 1, 8, 0, 0]);
  assert.deepEqual([...b.attentionMask], [1, 1, 1, 1, 1, 1, 0, 0]);
  assert.deepEqual([...b.targets], [-1, 6, 7, -1, 8, -1, -1, -1]);
  assert.equal(b.nTargets, 3);
  assert.deepEqual(b.lines, [1, 2]);
  assert.equal(collate([enc([1, 2, 3], [0, 1, 1], 1)], { padMultiple: 8 }).T, 8);
});

test('makeBatches: sizes, deterministic seeded shuffle covering every example once', () => {
  const exs = Array.from({ length: 10 }, (_, i) => enc([1, 100 + i, 2], [0, 1, 1], i + 1));
  const plain = makeBatches(exs, 4);
  assert.deepEqual(
    plain.map((b) => b.B),
    [4, 4, 2],
  );
  assert.deepEqual(plain[0].lines, [1, 2, 3, 4]);
  const a = makeBatches(exs, 3, { shuffle: true, rng: new Rng(7) });
  const b = makeBatches(exs, 3, { shuffle: true, rng: new Rng(7) });
  assert.deepEqual(a, b);
  const order = a.flatMap((x) => x.lines);
  assert.notDeepEqual(order, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
  assert.deepEqual(
    [...order].sort((x, y) => x - y),
    [1, 2, 3, 4, 5, 6, 7, 8, 9, 10],
  );
  // The same order as a Fisher-Yates shuffle of the indices with the same stream.
  const idx = new Rng(7).shuffle(Array.from({ length: 10 }, (_, i) => i));
  assert.deepEqual(
    order,
    idx.map((i) => i + 1),
  );
  // Per-epoch RNGs: reproducible, different per epoch.
  assert.deepEqual(epochRng(42, 1).getState(), epochRng(42, 1).getState());
  assert.notDeepEqual(epochRng(42, 0).getState(), epochRng(42, 1).getState());
  assert.throws(() => makeBatches(exs, 0), /positive integer/);
});

test('held-out split: seeded, disjoint, order kept, counts and fractions', () => {
  const xs = Array.from({ length: 20 }, (_, i) => i);
  const s = splitHeldOut(xs, 5, 1);
  assert.equal(s.heldOut.length, 5);
  assert.deepEqual(
    [...s.train, ...s.heldOut].sort((a, b) => a - b),
    xs,
  );
  assert.deepEqual(
    s.train,
    [...s.train].sort((a, b) => a - b),
  );
  assert.deepEqual(splitHeldOut(xs, 5, 1), s);
  assert.notDeepEqual(splitHeldOut(xs, 5, 2).heldOut, s.heldOut);
  assert.equal(splitHeldOut(xs, 0.1, 1).heldOut.length, 2);
  assert.equal(splitHeldOut(xs, 0, 1).train.length, 20);
  assert.throws(() => splitHeldOut(xs, 20, 1), InputError);
});
