import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync, mkdirSync, copyFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { HfTokenizer, loadTokenizer, StreamDecoder } from '../src/io/tokenizer-hf.js';
import { Llama2cTokenizer } from '../src/io/tokenizer-llama2c.js';
import { buildTokenizerJson, buildTokenizerConfig, extractMerges } from '../src/io/convert.js';
import { renderChat, applyChatTemplate } from '../src/io/chat-template.js';
import { InputError } from '../src/errors.js';

const l2c = Llama2cTokenizer.fromFile('data/stories260k/tokenizer.bin', 512);
const tjson = buildTokenizerJson(l2c);
const tconfig = buildTokenizerConfig(512);
const hf = new HfTokenizer(tjson, tconfig, 'converted');
const text = readFileSync('data/tinystories/tinystories_val.txt', 'utf8');

/** The first 200+ stories: the file has ~10.8 lines per story (8659 lines, ~800 stories; SOURCE.md). */
const lines = text.split('\n').slice(0, 2400);

test('converted tokenizer.json encodes TinyStories exactly like llama2.c and decodes back', () => {
  let tokens = 0;
  for (const line of lines) {
    const ids = hf.encode(line);
    assert.deepEqual(ids, l2c.encode(line), JSON.stringify(line.slice(0, 80)));
    assert.equal(hf.decode(ids), line);
    tokens += ids.length;
  }
  assert.ok(tokens > 80000, `${tokens} tokens`);
  // Whole multi-line chunks (newlines go through byte fallback <0x0A>).
  const chunk = text.slice(0, 10000);
  const ids = hf.encode(chunk, { addBos: true });
  assert.deepEqual(ids, l2c.encode(chunk, { addBos: true }));
  assert.ok(ids.includes(3 + 0x0a));
  assert.equal(hf.decode(ids, { skipSpecial: true }), chunk);
  // Leading spaces, non-ASCII (vocabulary pieces and byte fallback), empty text.
  for (const s of ['  two leading', ' x', 'naïve café “quote” — 😀 日本', '', 'a\tb\r\nc', ' ']) {
    assert.deepEqual(hf.encode(s), l2c.encode(s), JSON.stringify(s));
    assert.equal(hf.decode(hf.encode(s)), s);
  }
});

test('converted tokenizer: ids, specials and token texts agree with tokenizer.bin', () => {
  assert.equal(hf.vocabSize, 512);
  assert.equal(hf.bosId, 1);
  assert.equal(hf.eosId, 2);
  assert.equal(hf.idToToken(265), '\u2581the');
  assert.equal(hf.idToToken(3 + 0x41), '<0x41>');
  assert.equal(hf.tokenText(265), ' the');
  assert.equal(hf.tokenText(265), l2c.tokenText(265));
  assert.deepEqual(
    hf.encode('Once upon a time', { addBos: true }),
    l2c.encode('Once upon a time', { addBos: true }),
  );
  assert.equal(hf.decode([1, ...hf.encode('Hi there'), 2], { skipSpecial: true }), 'Hi there');
  assert.equal(hf.decode([1, ...hf.encode('Hi there')]), '<s> Hi there'); // as transformers prints it
  assert.throws(() => hf.decode([600]), RangeError);
});

test('merge extraction follows transformers generate_merges ordering', () => {
  // Pieces with equal scores keep id order per piece; longer left halves first on score ties.
  const pieces = ['a', 'b', 'c', 'ab', 'bc', 'abc'];
  const scores = [0, 0, 0, -1, -2, -1];
  assert.deepEqual(extractMerges(pieces, scores), [
    ['ab', 'c'],
    ['a', 'bc'],
    ['a', 'b'],
    ['b', 'c'],
  ]);
  const merges = (tjson.model as { merges: string[] }).merges;
  assert.equal(merges[0], '\u2581 t'); // the top-scored merged piece " t"
  assert.ok(merges.includes('\u2581t he') || merges.includes('\u2581th e'));
});

test('Metaspace pre-tokenizer layout (transformers legacy=false) gives the same ids', () => {
  const meta = {
    ...tjson,
    normalizer: null,
    pre_tokenizer: { type: 'Metaspace', replacement: '\u2581', prepend_scheme: 'first', split: false },
    decoder: {
      type: 'Sequence',
      decoders: [
        { type: 'Replace', pattern: { String: '\u2581' }, content: ' ' },
        { type: 'ByteFallback' },
        { type: 'Fuse' },
        { type: 'Strip', content: ' ', start: 1, stop: 0 },
      ],
    },
  };
  const m = new HfTokenizer(meta, tconfig, 'metaspace');
  for (const line of lines.slice(0, 300)) {
    if (line.startsWith(' ')) continue; // Metaspace does not add a second space before a leading one
    assert.deepEqual(m.encode(line), l2c.encode(line));
    assert.equal(m.decode(m.encode(line)), line);
  }
});

test('GPT-2 ByteLevel BPE fixture: hand-traced ids, round trips', () => {
  const g = HfTokenizer.fromFolder('fixtures/io/gpt2-bytelevel');
  // "Hello" (He+ll+o), " world" (Ġwor+ld), "!", " The", " cat", "'s", " 123" -> Ġ 12 3.
  assert.deepEqual(g.encode("Hello world! The cat's 123"), [267, 264, 0, 274, 270, 271, 220, 272, 18]);
  assert.equal(g.decode([267, 264, 0, 274, 270, 271, 220, 272, 18]), "Hello world! The cat's 123");
  assert.equal(g.bosId, 275);
  assert.equal(g.eosId, 275);
  assert.deepEqual(g.encode('the', { addBos: true }), [275, 83, 257]);
  assert.equal(g.tokenText(264), ' world');
  for (const s of ['café 😀 naïve', '  spaced\n\nlines\t', '<|endoftext|>x'])
    assert.equal(g.decode(g.encode(s)), s);
  assert.deepEqual(g.encode('a<|endoftext|>b'), [64, 275, 65]);
  assert.equal(g.decode(g.encode('a<|endoftext|>b'), { skipSpecial: true }), 'ab');
});

test('Qwen2 fixture: regex Split + ByteLevel, NFC, ChatML specials and chat template', () => {
  const q = HfTokenizer.fromFolder('fixtures/io/qwen2-bytelevel');
  // The Qwen2 regex splits digits one by one.
  assert.deepEqual(q.encode("Hello world! The cat's 123"), [267, 264, 0, 274, 270, 271, 220, 16, 17, 18]);
  assert.deepEqual(q.encode('<|im_start|>user\nHi<|im_end|>'), [276, 84, 82, 68, 81, 198, 39, 72, 277]);
  // NFC: a decomposed é encodes like the composed one (bytes C3 A9).
  assert.deepEqual(q.encode('cafe\u0301'), [66, 64, 69, 127, 102]);
  assert.deepEqual(q.encode('café'), [66, 64, 69, 127, 102]);
  assert.equal(q.bosId, null);
  assert.equal(q.eosId, 277);
  assert.equal(q.padId, 275);
  assert.deepEqual(q.encode('x', { addBos: true }), q.encode('x'));
  const msgs = [{ role: 'user', content: 'Hi' }];
  const { text: chat, ids } = applyChatTemplate(q, msgs, { add_generation_prompt: true });
  assert.equal(
    chat,
    '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n',
  );
  assert.equal(ids[0], 276);
  assert.equal(ids.filter((i) => i === 277).length, 2);
  assert.equal(q.decode(ids), chat);
});

test('renderChat: Llama-2 and Zephyr style templates, bos/eos, raise_exception, errors', () => {
  const llama2 =
    "{% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}{% set system_message = messages[0]['content'] %}{% else %}{% set loop_messages = messages %}{% set system_message = false %}{% endif %}{% for message in loop_messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}{% if loop.index0 == 0 and system_message != false %}{% set content = '<<SYS>>\\n' + system_message + '\\n<</SYS>>\\n\\n' + message['content'] %}{% else %}{% set content = message['content'] %}{% endif %}{% if message['role'] == 'user' %}{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}{% elif message['role'] == 'assistant' %}{{ ' '  + content.strip() + ' ' + eos_token }}{% endif %}{% endfor %}";
  const msgs = [
    { role: 'system', content: 'Be brief.' },
    { role: 'user', content: 'Hi ' },
    { role: 'assistant', content: 'Hello.' },
    { role: 'user', content: 'Bye' },
  ];
  assert.equal(
    renderChat(llama2, msgs, { bos_token: '<s>', eos_token: '</s>' }),
    '<s>[INST] <<SYS>>\nBe brief.\n<</SYS>>\n\nHi [/INST] Hello. </s><s>[INST] Bye [/INST]',
  );
  assert.throws(
    () => renderChat(llama2, [msgs[1], msgs[1]], { source: 'tc.json' }),
    (e: unknown) =>
      e instanceof InputError && /tc\.json: chat template failed: .*must alternate/.test(e.message),
  );
  // trim_blocks / lstrip_blocks as transformers renders them.
  const zephyr =
    "{% for message in messages %}\n{% if message['role'] == 'user' %}\n{{ '<|user|>\n' + message['content'] + eos_token }}\n{% elif message['role'] == 'assistant' %}\n{{ '<|assistant|>\n'  + message['content'] + eos_token }}\n{% endif %}\n{% if loop.last and add_generation_prompt %}\n{{ '<|assistant|>' }}\n{% endif %}\n{% endfor %}";
  assert.equal(
    renderChat(zephyr, [{ role: 'user', content: 'Hi' }], { eos_token: '</s>', add_generation_prompt: true }),
    '<|user|>\nHi</s>\n<|assistant|>\n',
  );
  assert.throws(() => renderChat('{% for x in %}', []), InputError);
  // The converted stories260K tokenizer has no template.
  assert.equal(hf.chatTemplate, null);
  assert.throws(() => applyChatTemplate(hf, msgs), /no chat_template/);
});

test('loadTokenizer picks tokenizer.json or tokenizer.bin; bad files are InputErrors', () => {
  const dir = mkdtempSync(join(tmpdir(), 'nuggets-tokhf-'));
  assert.ok(loadTokenizer('data/stories260k/tokenizer.bin') instanceof Llama2cTokenizer);
  assert.ok(loadTokenizer('data/stories260k') instanceof Llama2cTokenizer);
  assert.ok(loadTokenizer('fixtures/io/gpt2-bytelevel') instanceof HfTokenizer);
  assert.ok(loadTokenizer('fixtures/io/gpt2-bytelevel/tokenizer.json') instanceof HfTokenizer);
  const bad = (name: string, tj: string, tc: string | null, re: RegExp) => {
    const d = join(dir, name);
    mkdirSync(d);
    writeFileSync(join(d, 'tokenizer.json'), tj);
    if (tc !== null) writeFileSync(join(d, 'tokenizer_config.json'), tc);
    assert.throws(
      () => loadTokenizer(d),
      (e: unknown) => e instanceof InputError && e.message.includes(d) && re.test(e.message),
      name,
    );
  };
  bad('notjson', '{"model": ', null, /tokenizer\.json: not valid JSON/);
  bad('nomodel', '{}', null, /has no "model"/);
  bad(
    'unigramx',
    JSON.stringify({ model: { type: 'Mystery' } }),
    null,
    /model type "Mystery" is not supported/,
  );
  bad(
    'badbos',
    JSON.stringify(tjson),
    JSON.stringify({ bos_token: '<nope>' }),
    /bos_token "<nope>" .* not in the vocabulary/,
  );
  const d = join(dir, 'spm');
  mkdirSync(d);
  writeFileSync(join(d, 'tokenizer.model'), 'x');
  assert.throws(() => loadTokenizer(d), /only a SentencePiece tokenizer\.model/);
  assert.throws(() => loadTokenizer(join(dir, 'empty-nothing')), InputError);
  // chat_template.jinja beside tokenizer_config.json wins.
  const t = join(dir, 'tmpl');
  mkdirSync(t);
  copyFileSync('fixtures/io/gpt2-bytelevel/tokenizer.json', join(t, 'tokenizer.json'));
  writeFileSync(join(t, 'chat_template.jinja'), '{{ messages[0].content }}!');
  assert.equal(renderChat(HfTokenizer.fromFolder(t).chatTemplate!, [{ role: 'user', content: 'yo' }]), 'yo!');
});

test('StreamDecoder: pushing ids one by one yields exactly the decoded text, for both tokenizer kinds', () => {
  const samples = ['Once upon a time, 😀 a naïve “cat” said: 日本!\nThe end.', text.slice(0, 600)];
  for (const tok of [hf, l2c, HfTokenizer.fromFolder('fixtures/io/qwen2-bytelevel')]) {
    for (const s of samples) {
      const ids = tok.encode(s, { addBos: true });
      const sd = new StreamDecoder(tok);
      let out = '';
      const pieces: string[] = [];
      for (const id of ids) {
        const p = sd.push(id);
        assert.ok(!p.includes('\ufffd'), `partial character leaked: ${JSON.stringify(p)}`);
        pieces.push(p);
        out += p;
      }
      out += sd.flush();
      assert.equal(out, tok.decode(ids, { skipSpecial: true }));
      assert.equal(out, s);
      assert.ok(pieces.filter((p) => p.length > 0).length > 5);
    }
  }
});
