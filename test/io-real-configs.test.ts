// Real-size configs (fixtures/configs, published config.json values) and random-weight HF folders at
// any config's shapes (nuggets random-model): parameter counts equal the published ones, the folders
// load, are sharded as save_pretrained shards them, are deterministic by seed, and carry a tokenizer of
// the config's full vocabulary.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { inspectModel } from '../src/cli/inspect.js';
import { openHfModel, parseShardSize } from '../src/io/checkpoint.js';
import { parseHfConfig, toHfConfig } from '../src/io/hfconfig.js';
import { loadModelSource } from '../src/io/load.js';
import { writeRandomModel } from '../src/io/random-model.js';
import { openSafetensors } from '../src/io/safetensors.js';
import { contextLength } from '../src/model/config.js';
import { generate } from '../src/model/generate.js';
import { LlamaModel } from '../src/model/model.js';
import { randomModel, tinyConfig } from '../src/model/random.js';
import { InputError } from '../src/errors.js';
import { cliProcess } from './helpers/cli.js';

// The counts on the model pages / of the real safetensors files (fixtures/configs/SOURCE.md).
const PUBLISHED: Record<string, number> = {
  'tinyllama-1.1b': 1_100_048_384,
  'qwen2.5-0.5b': 494_032_768,
  'qwen2.5-1.5b': 1_543_714_304,
  'llama-2-7b': 6_738_415_616,
  'llama-2-13b': 13_015_864_320,
  'mistral-7b': 7_241_732_096,
};

test('inspect on each published config prints the published parameter count and half-precision bytes', () => {
  assert.deepEqual(
    readdirSync('fixtures/configs')
      .filter((f) => f !== 'SOURCE.md')
      .sort(),
    Object.keys(PUBLISHED).sort(),
  );
  for (const [name, params] of Object.entries(PUBLISHED)) {
    const x = inspectModel(join('fixtures/configs', name));
    assert.equal(x.format, 'config', name);
    assert.equal(x.parameters.total, params, name);
    // every published checkpoint here is stored in 16 bits
    assert.equal(x.bytes.tensorData, 2 * params, name);
    assert.equal(x.bytes.asFp32, 4 * params, name);
  }
  const cli = cliProcess(['inspect', 'fixtures/configs/llama-2-7b']);
  assert.equal(cli.code, 0, cli.err);
  assert.match(cli.out, /6,738,415,616/);
});

test("Mistral-7B's sliding window: exact up to the window, refused beyond it, written back to config.json", () => {
  const path = 'fixtures/configs/mistral-7b/config.json';
  const c = parseHfConfig(JSON.parse(readFileSync(path, 'utf8')), path);
  assert.equal(c.slidingWindow, 4096);
  assert.equal(contextLength(c), 4096);
  assert.equal(toHfConfig(c).sliding_window, 4096);
  // Without a window key Mistral's default (4096) applies, as MistralConfig does.
  const noKey = JSON.parse(readFileSync(path, 'utf8'));
  delete noKey.sliding_window;
  assert.equal(parseHfConfig(noKey, path).slidingWindow, 4096);
  // A tiny model with a window of 6: 6 tokens run, 7 are refused (not silently computed as full attention).
  const m = randomModel(tinyConfig({ arch: 'mistral', slidingWindow: 6 }), 1);
  const ids = (T: number) => ({ B: 1, T, ids: Int32Array.from({ length: T }, (_, i) => i % 30) });
  assert.equal(m.forward(ids(6)).length, 6 * 32);
  assert.throws(
    () => m.forward(ids(7)),
    /7 tokens a sequence is more than the model computes exactly \(6: its sliding window\)/,
  );
  // Generation stops at the window ('length'): 3 prompt tokens + 3 fed new ones fill positions 0-5, and
  // the logits of position 5 give a 4th new token that is returned but never fed.
  const [r] = generate(m, [[1, 2, 3]], { maxNewTokens: 20, temperature: 0, eosIds: [] });
  assert.equal(r.tokens.length, 4);
  assert.equal(r.finishReason, 'length');
});

const dir = mkdtempSync(join(tmpdir(), 'nuggets-random-model-'));
/** A Qwen2-shaped config, tiny: tied embeddings, q/k/v biases, bos = eos near the end of the vocabulary. */
const qwenTiny = {
  architectures: ['Qwen2ForCausalLM'],
  model_type: 'qwen2',
  vocab_size: 700,
  hidden_size: 32,
  intermediate_size: 48,
  num_hidden_layers: 3,
  num_attention_heads: 4,
  num_key_value_heads: 2,
  max_position_embeddings: 256,
  rms_norm_eps: 1e-6,
  rope_theta: 1e6,
  tie_word_embeddings: true,
  bos_token_id: 690,
  eos_token_id: 690,
  initializer_range: 0.05,
  torch_dtype: 'bfloat16',
};
const qwenCfg = join(dir, 'qwen-tiny.json');
writeFileSync(qwenCfg, JSON.stringify(qwenTiny));

test('random-model writes a loadable bf16 folder, sharded like save_pretrained, the same bytes for the same seed', () => {
  const a = join(dir, 'a');
  // ~24 KB a shard: the 700 x 32 embedding (44.8 KB in bf16) alone exceeds it, so several shards result
  const files = writeRandomModel(qwenCfg, a, { seed: 7, maxShardBytes: 24_000 });
  const shards = files.filter((f) => /^model-\d{5}-of-\d{5}\.safetensors$/.test(f));
  assert.ok(shards.length >= 3, files.join());
  assert.ok(files.includes('model.safetensors.index.json'));
  assert.ok(files.includes('tokenizer.json') && files.includes('config.json'));
  assert.ok(!readdirSync(dir).some((f) => f.includes('.tmp-')), 'no temporary folder left');
  const index = JSON.parse(readFileSync(join(a, 'model.safetensors.index.json'), 'utf8'));
  assert.equal(index.metadata.total_size, inspectModel(a).bytes.tensorData);

  const { config, weights } = openHfModel(a);
  try {
    assert.equal(config.arch, 'qwen2');
    assert.equal(config.torchDtype, 'bfloat16');
    for (const n of weights.names()) assert.equal(weights.info(n).dtype, 'BF16', n);
    // transformers' init scale: linear weights with std = initializer_range, norms 1, biases 0
    const q = weights.get('model.layers.1.self_attn.q_proj.weight');
    const std = Math.sqrt(q.reduce((s, v) => s + v * v, 0) / q.length);
    assert.ok(Math.abs(std - 0.05) < 0.004, `std ${std}`);
    assert.ok(weights.get('model.norm.weight').every((v) => v === 1));
    assert.ok(weights.get('model.layers.0.self_attn.k_proj.bias').every((v) => v === 0));
  } finally {
    weights.close();
  }

  // Same seed: the same bytes whatever the shard size; another seed: other values.
  const b = join(dir, 'b');
  writeRandomModel(qwenCfg, b, { seed: 7 });
  const c = join(dir, 'c');
  writeRandomModel(qwenCfg, c, { seed: 8 });
  const name = 'model.layers.2.mlp.down_proj.weight';
  const shardOf = index.weight_map[name];
  const ra = openSafetensors(join(a, shardOf));
  const rb = openSafetensors(join(b, 'model.safetensors'));
  const rc = openSafetensors(join(c, 'model.safetensors'));
  try {
    assert.deepEqual(ra.get(name), rb.get(name));
    assert.notDeepEqual(ra.get(name), rc.get(name));
  } finally {
    ra.close();
    rb.close();
    rc.close();
  }
  assert.throws(() => writeRandomModel(qwenCfg, a, { seed: 1 }), InputError);
});

test("the synthetic tokenizer has the config's full vocabulary, its special ids, and round-trips text", () => {
  const src = loadModelSource(join(dir, 'b'));
  try {
    const tok = src.tokenizer;
    assert.equal(tok.vocabSize, 700);
    assert.equal(tok.bosId, 690);
    assert.equal(tok.eosId, 690);
    const text = 'Once upon a time, a small dog ran 3 km! Ünïcödé ok.';
    const ids = tok.encode(text);
    assert.ok(ids.length < text.length, 'merges apply');
    assert.ok(ids.every((i) => i >= 0 && i < 700 && i !== 690));
    assert.equal(tok.decode(ids), text);
    // Every id decodes (no holes in the vocabulary).
    for (let id = 0; id < 700; id++) assert.equal(typeof tok.decode([id]), 'string');
    const m = LlamaModel.load({ config: src.config, weights: src.weights });
    const [r] = generate(m, [tok.encode('Once upon', { addBos: true })], {
      maxNewTokens: 5,
      temperature: 0,
      eosIds: [],
    });
    assert.equal(r.tokens.length, 5);
  } finally {
    src.weights.close();
  }
  // A Llama-style config: <unk> 0, <s> 1, </s> 2, as in the real Llama vocabulary.
  const llamaCfg = join(dir, 'llama-tiny.json');
  writeFileSync(
    llamaCfg,
    JSON.stringify({
      ...qwenTiny,
      architectures: ['LlamaForCausalLM'],
      model_type: 'llama',
      vocab_size: 300,
      bos_token_id: 1,
      eos_token_id: 2,
      tie_word_embeddings: false,
    }),
  );
  writeRandomModel(llamaCfg, join(dir, 'llama'), { dtype: 'F16' });
  const tj = JSON.parse(readFileSync(join(dir, 'llama', 'tokenizer.json'), 'utf8'));
  assert.deepEqual(
    tj.added_tokens.map((t: { id: number; content: string }) => [t.id, t.content]),
    [
      [0, '<unk>'],
      [1, '<s>'],
      [2, '</s>'],
    ],
  );
  assert.equal(Object.keys(tj.model.vocab).length, 300);
});

test('random-model on the command line: sizes as transformers writes them, one-line errors', () => {
  assert.equal(parseShardSize('5GB'), 5e9);
  assert.equal(parseShardSize('2GiB'), 2 ** 31);
  assert.equal(parseShardSize('1048576'), 1048576);
  assert.throws(
    () => parseShardSize('5 parsecs', '--max-shard-size'),
    /--max-shard-size: "5 parsecs" is not a size/,
  );
  const bad = cliProcess(['random-model', qwenCfg, '-o', join(dir, 'd'), '--dtype', 'q4']);
  assert.equal(bad.code, 2);
  assert.match(bad.err, /--dtype.*bf16, f16 or f32/);
  assert.equal(bad.err.trim().split('\n').length, 1);
  const ok = cliProcess(['random-model', qwenCfg, '-o', join(dir, 'e'), '--max-shard-size', '30KB']);
  assert.equal(ok.code, 0, ok.err);
  assert.match(ok.out, /model-00001-of-0000\d\.safetensors/);
});
