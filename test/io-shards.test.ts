// Sharded HF checkpoints as transformers writes them (model-0000k-of-0000n.safetensors + an index
// with metadata.total_size and weight_map): the writer's --max-shard-size, its size syntax, and the
// reader giving back every tensor of every shard.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { INDEX_FILE, openHfModel, parseShardSize } from '../src/io/checkpoint.js';
import { convertLlama2cToHf } from '../src/io/convert.js';
import { readLlama2c, toHfLayout } from '../src/io/llama2c.js';
import { InputError } from '../src/errors.js';
import { STORIES260K } from './model-helpers.js';

test('parseShardSize reads sizes the way save_pretrained does', () => {
  assert.equal(parseShardSize('5GB'), 5e9);
  assert.equal(parseShardSize('500MB'), 5e8);
  assert.equal(parseShardSize('2GiB'), 2 * 2 ** 30);
  assert.equal(parseShardSize('1.5kb'), 1500);
  assert.equal(parseShardSize('123456'), 123456);
  for (const bad of ['', 'big', '5 GBs', '-1GB', '0'])
    assert.throws(() => parseShardSize(bad), InputError, `"${bad}" refused`);
});

test('convert --max-shard-size writes HF shards and an index that load back tensor for tensor', () => {
  const dir = mkdtempSync(join(tmpdir(), 'nuggets-shards-'));
  try {
    const bin = join(STORIES260K, 'checkpoint_legacy.bin');
    const files = convertLlama2cToHf(bin, join(STORIES260K, 'tokenizer.bin'), dir, {
      maxShardBytes: 300_000,
    });
    const shards = readdirSync(dir)
      .filter((f) => f.endsWith('.safetensors'))
      .sort();
    const n = shards.length;
    assert.ok(n >= 3, `${n} shards`);
    shards.forEach((f, k) =>
      assert.equal(f, `model-${String(k + 1).padStart(5, '0')}-of-${String(n).padStart(5, '0')}.safetensors`),
    );
    assert.deepEqual(files.filter((f) => f.endsWith('.safetensors')).sort(), shards);
    assert.ok(files.includes(INDEX_FILE));
    for (const f of shards) assert.ok(statSync(join(dir, f)).size <= 300_000 + 4096, `${f} within the size`);
    const index = JSON.parse(readFileSync(join(dir, INDEX_FILE), 'utf8')) as {
      metadata: { total_size: number };
      weight_map: Record<string, string>;
    };
    const ref = toHfLayout(readLlama2c(bin));
    const names = ref.weights.names();
    assert.deepEqual(Object.keys(index.weight_map).sort(), [...names].sort());
    let total = 0;
    for (const name of names) total += ref.weights.get(name).length * 4;
    assert.equal(index.metadata.total_size, total);
    const m = openHfModel(dir);
    for (const name of names) assert.deepEqual(m.weights.get(name), ref.weights.get(name), name);
    m.weights.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
