import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { renderExample, renderPrompt, piecesToText } from '../src/data/chat.js';
import { encodeExamples, tokenizePieces } from '../src/data/encode.js';
import { toExample, type ChatMessage } from '../src/data/examples.js';
import { templateFormat } from '../src/data/template.js';
import { InputError } from '../src/errors.js';
import { HfTokenizer } from '../src/io/tokenizer-hf.js';
import { Llama2cTokenizer } from '../src/io/tokenizer-llama2c.js';

const here = (p: string) => fileURLToPath(new URL(p, import.meta.url));

test("the tokenizer's chat template (Qwen2 ChatML fixture): same ids as encoding the rendered text, answer from len(encode(prompt))", () => {
  const tok = HfTokenizer.fromFolder(here('../fixtures/io/qwen2-bytelevel'));
  const fmt = templateFormat(tok);
  assert.ok(fmt.kind === 'template');
  assert.equal(fmt.eosToken, '<|im_end|>');
  const messages: ChatMessage[] = [
    { role: 'user', content: 'Hi there' },
    { role: 'assistant', content: 'Sure.' },
    { role: 'user', content: 'What is 2+2?' },
    { role: 'assistant', content: 'It is 4.' },
  ];
  const ex = toExample('t.jsonl', { line: 5, value: { messages } });
  const pieces = renderExample(ex, fmt);
  const full = fmt.render(messages, false);
  const prompt = fmt.render(messages.slice(0, -1), true);
  assert.equal(piecesToText(pieces, { bos: '', eos: '<|im_end|>' }), full);
  const { ids, mask } = tokenizePieces(pieces, tok);
  // The tokenizer parses "<|im_end|>" in text as its special token: splitting it out changes nothing.
  assert.deepEqual(ids, tok.encode(full, { addBos: false }));
  const promptLen = tok.encode(prompt, { addBos: false }).length;
  assert.deepEqual(
    mask,
    ids.map((_, i) => (i >= promptLen ? 1 : 0)),
  );
  assert.equal(tok.decode(ids.filter((_, i) => mask[i] === 1)), 'It is 4.<|im_end|>\n');
  const { examples } = encodeExamples([ex], tok, { format: fmt, maxLength: 4096, overflow: 'refuse' });
  assert.equal(examples[0].nTargets, ids.length - promptLen);
  // Generation prompt: the template with add_generation_prompt.
  assert.equal(
    piecesToText(renderPrompt(messages.slice(0, 1), fmt), { bos: '', eos: '<|im_end|>' }),
    fmt.render(messages.slice(0, 1), true),
  );
});

test('a tokenizer without a chat template is refused with a hint', () => {
  const tok = Llama2cTokenizer.fromFile(
    fileURLToPath(new URL('../data/stories260k/tokenizer.bin', import.meta.url)),
  );
  assert.throws(
    () => templateFormat(tok, 'tok.bin'),
    (e: unknown) =>
      e instanceof InputError && e.source === 'tok.bin' && /no chat template.*tulu/.test(e.problem),
  );
});
