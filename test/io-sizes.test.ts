/**
 * Sizes are checked before anything is allocated: a small llama2.c file whose header claims
 * millions of layers, an HF config.json claiming 10 million layers, and a huge JSONL line are each
 * refused at once with one line naming the file, instead of gigabytes and minutes of work.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { InputError } from '../src/errors.js';
import { readLlama2c } from '../src/io/llama2c.js';
import { readExamples } from '../src/data/examples.js';
import { firstInvalidUtf8Line, readJsonl, streamJsonl } from '../src/data/jsonl.js';
import { ROOT } from './model-helpers.js';

test(
  'llama2.c: a 1 MB file whose header says 16,777,216 layers is refused before any layout or allocation',
  { timeout: 20_000 },
  () => {
    const path = join(mkdtempSync(join(tmpdir(), 'sizes-l2c-')), 'bomb.bin');
    const buf = Buffer.alloc(1 << 20);
    // dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size, seq_len
    [64, 128, 1 << 24, 4, 4, 32, 16].forEach((v, i) => buf.writeInt32LE(v, 4 * i));
    writeFileSync(path, buf);
    const rss = process.memoryUsage().rss;
    assert.throws(
      () => readLlama2c(path),
      (e: unknown) =>
        e instanceof InputError &&
        e.source === path &&
        /should be \d+ bytes .* but is 1048576 bytes/.test(e.message),
    );
    assert.ok(process.memoryUsage().rss - rss < 200 * 2 ** 20, 'no large allocation');
  },
);

test(
  'HF: a config.json claiming 10 million layers is refused by counting, in a process with 256 MB of heap',
  { timeout: 60_000 },
  () => {
    const dir = mkdtempSync(join(tmpdir(), 'sizes-hf-'));
    const src = join(ROOT, 'zoo', 'student-tiny');
    for (const f of ['model.safetensors', 'tokenizer.json', 'tokenizer_config.json'])
      copyFileSync(join(src, f), join(dir, f));
    const cfg = JSON.parse(readFileSync(join(src, 'config.json'), 'utf8'));
    cfg.num_hidden_layers = 1e7;
    writeFileSync(join(dir, 'config.json'), JSON.stringify(cfg));
    const r = spawnSync(
      process.execPath,
      [
        '--max-old-space-size=256',
        '--import',
        'tsx',
        '-e',
        `import('./src/io/checkpoint.ts').then((m) => { try { m.openHfModel(${JSON.stringify(dir)}); console.log('loaded'); } catch (e) { console.log(e.name + ': ' + e.message); } })`,
      ],
      { cwd: ROOT, encoding: 'utf8', timeout: 50_000 },
    );
    assert.equal(r.status, 0, r.stderr.slice(-500));
    assert.match(
      r.stdout,
      /^InputError: .*model\.safetensors: missing tensor "model\.layers\.\d\.[^"]+": .*config\.json \(10000000 layers.*\) requires 9000000\d tensors but the weights hold only \d+\n$/,
    );
  },
);

test(
  'JSONL: a 20 MB line is refused before parsing, naming file:line; the limit is an option',
  { timeout: 20_000 },
  async () => {
    const path = join(mkdtempSync(join(tmpdir(), 'sizes-jsonl-')), 'seeds.jsonl');
    const ok = JSON.stringify({ prompt: 'Q?', answer: 'A.' });
    writeFileSync(path, `${ok}\n${JSON.stringify({ prompt: 'x'.repeat(20 << 20), answer: 'y' })}\n`);
    assert.throws(
      () => readExamples(path),
      (e: unknown) =>
        e instanceof InputError &&
        e.source === `${path}:2` &&
        /longer than the limit of 4194304/.test(e.message),
    );
    assert.equal(
      readExamples(path, { limit: 1 }).length,
      1,
      'lines beyond the limit of records are not read',
    );
    assert.throws(() => readJsonl(path, { maxLineChars: 10 }), /seeds\.jsonl:1: line of 29 characters/);
    await assert.rejects(async () => {
      for await (const _ of streamJsonl(path)) void _;
    }, /seeds\.jsonl:2: line of \d+ characters is longer than the limit/);
  },
);

test('JSONL: invalid UTF-8 gives one warning naming the line', async () => {
  const path = join(mkdtempSync(join(tmpdir(), 'sizes-utf8-')), 'rows.jsonl');
  const good = Buffer.from('{"text": "fine"}\n');
  const bad = Buffer.concat([Buffer.from('{"text": "bad '), Buffer.from([0xff, 0xfe]), Buffer.from('"}\n')]);
  writeFileSync(path, Buffer.concat([good, good, bad, bad]));
  assert.equal(firstInvalidUtf8Line(readFileSync(path)), 3);
  assert.equal(firstInvalidUtf8Line(good), null);
  const warnings: string[] = [];
  const rows = readJsonl(path, { warn: (l) => warnings.push(l) });
  assert.equal(rows.length, 4);
  assert.deepEqual(warnings.length, 1);
  assert.match(warnings[0], /rows\.jsonl:3: invalid UTF-8/);
  const streamed: string[] = [];
  for await (const _ of streamJsonl(path, { warn: (l) => streamed.push(l) })) void _;
  assert.equal(streamed.length, 1);
  assert.match(streamed[0], /rows\.jsonl:3: U\+FFFD/);
});

test(
  'sense --max-line-kb: the CLI refuses a long seed line with one line and exit 2',
  { timeout: 60_000 },
  () => {
    const dir = mkdtempSync(join(tmpdir(), 'sizes-sense-'));
    const seeds = join(dir, 'seeds.jsonl');
    writeFileSync(seeds, `${JSON.stringify({ prompt: 'x'.repeat(3000), answer: 'y' })}\n`);
    const r = spawnSync(
      process.execPath,
      [
        '--import',
        'tsx',
        'src/cli/run.ts',
        'sense',
        '--teacher',
        join(ROOT, 'zoo', 'student-tiny'),
        '--seeds',
        seeds,
        '-o',
        join(dir, 's.safetensors'),
        '--max-line-kb',
        '2',
        '--no-progress',
      ],
      { cwd: ROOT, encoding: 'utf8', timeout: 50_000 },
    );
    assert.equal(r.status, 2, r.stderr);
    assert.match(r.stderr, /seeds\.jsonl:1: line of 3\d+ characters is longer than the limit of 2048/);
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
  },
);
