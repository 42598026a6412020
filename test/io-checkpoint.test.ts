import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  mkdtempSync,
  readFileSync,
  writeFileSync,
  readdirSync,
  rmSync,
  copyFileSync,
  mkdirSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openHfModel, writeHfModel, INDEX_FILE } from '../src/io/checkpoint.js';
import { parseHfConfig, toHfConfig } from '../src/io/hfconfig.js';
import { writeSafetensors } from '../src/io/safetensors.js';
import { expectedShape, expectedTensorNames, type ModelConfig } from '../src/model/config.js';
import { MemoryWeights } from '../src/model/weights.js';
import { InputError } from '../src/errors.js';

/** GQA, head_dim != hidden/heads, untied lm_head, llama attention/MLP biases. */
const config: ModelConfig = parseHfConfig(
  {
    model_type: 'llama',
    hidden_size: 24,
    intermediate_size: 40,
    num_hidden_layers: 2,
    num_attention_heads: 4,
    num_key_value_heads: 2,
    head_dim: 8,
    vocab_size: 50,
    attention_bias: true,
    mlp_bias: true,
    rope_theta: 5000,
    tie_word_embeddings: false,
  },
  'test',
);

function randomWeights(c: ModelConfig): MemoryWeights {
  let s = 12345;
  const rnd = () => (s = (s * 1103515245 + 12345) % 2 ** 31) / 2 ** 31 - 0.5;
  const m = new Map<string, { shape: number[]; data: Float32Array }>();
  for (const n of expectedTensorNames(c)) {
    const shape = expectedShape(c, n);
    m.set(n, { shape, data: Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, rnd) });
  }
  return new MemoryWeights('random', m);
}

const root = mkdtempSync(join(tmpdir(), 'nuggets-ckpt-'));
const src = randomWeights(config);

test('single-file folder round trip: config.json and every tensor', () => {
  const dir = join(root, 'single');
  writeHfModel(dir, config, src);
  assert.deepEqual(readdirSync(dir).sort(), ['config.json', 'model.safetensors']);
  const { config: c, weights } = openHfModel(dir);
  assert.deepEqual(c, config);
  assert.deepEqual(weights.names(), expectedTensorNames(config));
  for (const n of src.names()) assert.deepEqual(weights.get(n), src.get(n), n);
  weights.close();
});

test('sharded folder round trip through model.safetensors.index.json, and back to one file', () => {
  const dir = join(root, 'sharded');
  writeHfModel(dir, config, src, { maxShardBytes: 4000 });
  const files = readdirSync(dir).sort();
  const shards = files.filter((f) => /^model-\d{5}-of-\d{5}\.safetensors$/.test(f));
  assert.ok(shards.length >= 3, files.join());
  assert.ok(shards.every((f) => f.endsWith(`-of-${String(shards.length).padStart(5, '0')}.safetensors`)));
  const index = JSON.parse(readFileSync(join(dir, INDEX_FILE), 'utf8'));
  assert.equal(
    index.metadata.total_size,
    src.names().reduce((a, n) => a + 4 * src.get(n).length, 0),
  );
  assert.deepEqual(Object.keys(index.weight_map).sort(), src.names().sort());
  const { weights } = openHfModel(dir);
  for (const n of src.names()) assert.deepEqual(weights.get(n), src.get(n), n);
  weights.close();
  // bf16 storage, single file again: stale shards and index are removed.
  writeHfModel(dir, config, src, { dtype: 'BF16' });
  assert.deepEqual(readdirSync(dir).sort(), ['config.json', 'model.safetensors']);
  const back = openHfModel(dir);
  assert.equal(back.config.torchDtype, 'bfloat16');
  assert.equal(back.weights.info('lm_head.weight').dtype, 'BF16');
  const a = back.weights.get('lm_head.weight'),
    b = src.get('lm_head.weight');
  for (let i = 0; i < a.length; i++) assert.ok(Math.abs(a[i] - b[i]) <= Math.abs(b[i]) * 2 ** -8);
  back.weights.close();
});

function expectInputError(fn: () => unknown, file: string, re: RegExp, tensor?: string) {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof InputError, String(e));
    assert.ok(e.message.startsWith(file), `${e.message} should start with ${file}`);
    assert.match(e.message, re);
    if (tensor) assert.ok(e.message.includes(`"${tensor}"`), e.message);
    return true;
  });
}

/** Writes a folder with config c and the given tensors (names -> shapes), raw. */
function folder(
  name: string,
  c: Record<string, unknown>,
  tensors: Array<{ name: string; shape: number[] }>,
): string {
  const dir = join(root, name);
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'config.json'), JSON.stringify(c));
  writeSafetensors(
    join(dir, 'model.safetensors'),
    tensors.map((t) => ({ ...t, data: new Float32Array(t.shape.reduce((a, b) => a * b, 1)) })),
  );
  return dir;
}

test('missing, extra, misshapen, non-float tensors and bad folders: InputError naming file and tensor', () => {
  const cfg = toHfConfig(config);
  const all = expectedTensorNames(config).map((n) => ({ name: n, shape: expectedShape(config, n) }));
  const st = (d: string) => join(d, 'model.safetensors');
  let d = folder(
    'missing',
    cfg,
    all.filter((t) => t.name !== 'model.layers.1.mlp.up_proj.bias'),
  );
  expectInputError(
    () => openHfModel(d),
    st(d),
    /missing tensor .*config\.json .*requires/,
    'model.layers.1.mlp.up_proj.bias',
  );
  d = folder('extra', cfg, [...all, { name: 'model.layers.0.self_attn.q_norm.weight', shape: [8] }]);
  expectInputError(
    () => openHfModel(d),
    st(d),
    /unexpected tensor/,
    'model.layers.0.self_attn.q_norm.weight',
  );
  d = folder(
    'shape',
    cfg,
    all.map((t) => (t.name === 'model.layers.0.self_attn.k_proj.weight' ? { ...t, shape: [24, 24] } : t)),
  );
  expectInputError(
    () => openHfModel(d),
    st(d),
    /has shape \[24, 24\] but .*config\.json implies \[16, 24\]/,
    'model.layers.0.self_attn.k_proj.weight',
  );
  // Shapes that disagree with config.json (wrong hidden size in the config).
  d = folder('cfgshape', { ...cfg, hidden_size: 32 }, all);
  expectInputError(() => openHfModel(d), st(d), /implies \[50, 32\]/, 'model.embed_tokens.weight');
  d = folder('unsupported', { ...cfg, model_type: 'phi3' }, all);
  expectInputError(() => openHfModel(d), join(d, 'config.json'), /model_type "phi3" is not supported/);
  // Harmless extras: old rotary inv_freq buffers, lm_head stored although tied.
  const tied = { ...config, tieWordEmbeddings: true };
  d = folder('harmless', toHfConfig(tied), [
    ...all,
    { name: 'model.layers.1.self_attn.rotary_emb.inv_freq', shape: [4] },
  ]);
  const ok = openHfModel(d);
  assert.equal(ok.weights.has('lm_head.weight'), false);
  assert.equal(ok.weights.has('model.layers.1.self_attn.rotary_emb.inv_freq'), false);
  ok.weights.close();
  // Integer (quantised) weights.
  d = join(root, 'int');
  mkdirSync(d);
  writeFileSync(join(d, 'config.json'), JSON.stringify(cfg));
  const entries = all.map((t) => ({
    name: t.name,
    dtype: t.name.endsWith('down_proj.weight') ? 'I8' : 'F32',
    shape: t.shape,
  }));
  let off = 0;
  const header = Object.fromEntries(
    entries.map((e) => {
      const bytes = e.shape.reduce((a, b) => a * b, 1) * (e.dtype === 'I8' ? 1 : 4);
      off += bytes;
      return [e.name, { dtype: e.dtype, shape: e.shape, data_offsets: [off - bytes, off] }];
    }),
  );
  const h = Buffer.from(JSON.stringify(header));
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(h.length));
  writeFileSync(st(d), Buffer.concat([len, h, Buffer.alloc(off)]));
  expectInputError(
    () => openHfModel(d),
    st(d),
    /dtype I8; model weights must be/,
    'model.layers.0.mlp.down_proj.weight',
  );
  // No weights / only a PyTorch pickle / not a folder / broken config.json.
  d = join(root, 'torch');
  mkdirSync(d);
  writeFileSync(join(d, 'config.json'), JSON.stringify(cfg));
  writeFileSync(join(d, 'pytorch_model.bin'), 'x');
  expectInputError(() => openHfModel(d), d, /pytorch_model\.bin .*only safetensors/);
  rmSync(join(d, 'pytorch_model.bin'));
  expectInputError(() => openHfModel(d), d, /no model\.safetensors/);
  expectInputError(() => openHfModel(join(root, 'nope')), join(root, 'nope'), /not a folder/);
  writeFileSync(join(d, 'config.json'), '{"model_type": ');
  expectInputError(() => openHfModel(d), join(d, 'config.json'), /not valid JSON/);
});

test('sharded index problems: missing shard, tensor not in its shard, unlisted tensor, path escape', () => {
  const base = join(root, 'idx');
  writeHfModel(base, config, src, { maxShardBytes: 4000 });
  const index = JSON.parse(readFileSync(join(base, INDEX_FILE), 'utf8'));
  const variant = (name: string, edit: (wm: Record<string, string>) => void) => {
    const d = join(root, name);
    mkdirSync(d);
    for (const f of readdirSync(base)) copyFileSync(join(base, f), join(d, f));
    const wm = { ...index.weight_map };
    edit(wm);
    writeFileSync(join(d, INDEX_FILE), JSON.stringify({ metadata: index.metadata, weight_map: wm }));
    return d;
  };
  const first = 'model.embed_tokens.weight';
  let d = variant('idx-missing-file', (wm) => (wm[first] = 'model-00009-of-00009.safetensors'));
  expectInputError(() => openHfModel(d), join(d, INDEX_FILE), /which does not exist/, first);
  d = variant('idx-wrong-shard', (wm) => (wm[first] = index.weight_map['lm_head.weight']));
  expectInputError(
    () => openHfModel(d),
    join(d, index.weight_map['lm_head.weight']),
    /does not hold it/,
    first,
  );
  d = variant('idx-unlisted', (wm) => delete wm['model.norm.weight']);
  expectInputError(
    () => openHfModel(d),
    join(d, index.weight_map['model.norm.weight']),
    /does not list it/,
    'model.norm.weight',
  );
  d = variant('idx-escape', (wm) => (wm[first] = '../idx/' + index.weight_map[first]));
  expectInputError(() => openHfModel(d), join(d, INDEX_FILE), /not a file name in this folder/, first);
  d = variant('idx-bad', () => {});
  writeFileSync(join(d, INDEX_FILE), JSON.stringify({ metadata: {} }));
  expectInputError(() => openHfModel(d), join(d, INDEX_FILE), /"weight_map" is missing/);
});
