// Input hashes of manifests and model cards: small files hashed whole (the sha256 anyone can check with
// sha256sum), files over the limit by their two ends only, so a many-GB teacher is not read to name it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ENDS_BYTES, hashInput, sha256File } from '../src/transfer/manifest.js';

const dir = mkdtempSync(join(tmpdir(), 'nuggets-hash-'));
test.after(() => rmSync(dir, { recursive: true, force: true }));

const sha = (...parts: Buffer[]) => {
  const h = createHash('sha256');
  for (const p of parts) h.update(p);
  return h.digest('hex');
};

test('files up to the limit are hashed whole; larger ones by their first and last 16 MiB, which catch header edits but not the middle', () => {
  const small = join(dir, 'config.json');
  writeFileSync(small, '{"a": 1}\n');
  assert.deepEqual(sha256File(small), {
    name: 'config.json',
    bytes: 9,
    sha256: sha(Buffer.from('{"a": 1}\n')),
  });
  const big = Buffer.alloc(2 * ENDS_BYTES + 4096);
  for (let i = 0; i < big.length; i += 4093) big[i] = i % 251;
  const path = join(dir, 'model.safetensors');
  writeFileSync(path, big);
  const limit = 1 << 20; // a small limit stands in for the real 1 GiB
  const h = sha256File(path, limit);
  assert.equal(h.sha256, null);
  assert.equal(h.bytes, big.length);
  assert.equal(h.endsSha256, sha(big.subarray(0, ENDS_BYTES), big.subarray(big.length - ENDS_BYTES)));
  assert.notEqual(h.endsSha256, sha(big));
  // under the default limit the same file is hashed whole
  assert.equal(sha256File(path).sha256, sha(big));
  const middle = Buffer.from(big);
  middle[ENDS_BYTES + 100] ^= 1;
  writeFileSync(path, middle);
  assert.equal(sha256File(path, limit).endsSha256, h.endsSha256);
  const head = Buffer.from(big);
  head[10] ^= 1;
  writeFileSync(path, head);
  assert.notEqual(sha256File(path, limit).endsSha256, h.endsSha256);
  // a folder: every regular non-hidden file, sorted by name
  writeFileSync(join(dir, '.hidden'), 'x');
  assert.deepEqual(
    hashInput(dir).files.map((f) => f.name),
    ['config.json', 'model.safetensors'],
  );
});
