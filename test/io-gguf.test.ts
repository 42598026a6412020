/**
 * GGUF export (src/io/gguf, `nuggets export gguf` / `export gguf-lora`), checked by llama.cpp itself
 * through node-llama-cpp's prebuilt CPU binary (test/helpers/llama-cpp.ts):
 *
 * - f32 exports of the bundled models, of the llama2.c stories260K checkpoint (tokenizer.bin scores)
 *   and of a student with a random adapter merged in give exactly the greedy token ids of nuggets'
 *   own generate (src/model/generate.ts) from the same prompt ids, and llama.cpp tokenizes text as
 *   nuggets does;
 * - f16 and Q8_0 exports round the weights, so llama.cpp's greedy path may part from the f32 one once
 *   two candidates are close: the first 16 tokens must agree on every prompt. Measured on these
 *   models over 64 tokens and three prompts, the shortest agreement was 31 tokens (Q8_0, student-tiny),
 *   then 40 (Q8_0, stories260k); all f16 runs agreed on all 64;
 * - the adapter as a GGUF LoRA, applied by llama.cpp to the f32 student, gives the merged model's tokens
 *   (which differ from the student's, so the check can fail);
 * - the container itself against the specification (header, metadata types, 32-byte aligned offsets,
 *   ne order), Q8_0 blocks against ggml's rule worked by hand, and the q/k row permutation;
 * - bad input: one line naming the file, exit 2, no file written.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { llamaGreedy } from './helpers/llama-cpp.js';
import { randomAdapter } from './helpers/adapter.js';
import { cliBatch } from './helpers/cli.js';
import { Rng } from '../src/engine/rng.js';
import { halfToFloat } from '../src/engine/dtype.js';
import { loadModelSource } from '../src/io/load.js';
import { LlamaModel } from '../src/model/model.js';
import { randomWeights, tinyConfig } from '../src/model/random.js';
import { writeHfModel } from '../src/io/checkpoint.js';
import { generate } from '../src/model/generate.js';
import type { Tokenizer } from '../src/model/tokenizer.js';
import { writeAdapter } from '../src/transfer/peft.js';
import { mergeModel } from '../src/train/merge.js';
import { exportGgufCommand, exportGgufLoraCommand } from '../src/cli/export.js';
import { permuteRopeRows } from '../src/io/gguf/names.js';
import { dequantizeQ8_0, quantizeQ8_0 } from '../src/io/gguf/quant.js';
import { GGUF_MAGIC, GgmlType, gv, writeGguf } from '../src/io/gguf/writer.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const tmp = mkdtempSync(join(tmpdir(), 'nuggets-gguf-'));
const ZOO = ['stories260k', 'student-tiny', 'teacher-facts'];
const PROMPTS = ['Once upon a time', 'Lily and Tom went to the park. They'];

/** nuggets' greedy continuation, with EOS appended when it stopped there (llama.cpp yields it). */
function nuggetsGreedy(model: LlamaModel, ids: number[], n: number): number[] {
  const g = generate(model, [ids], { maxNewTokens: n, temperature: 0 })[0];
  return g.finishReason === 'eos' ? [...g.tokens, model.config.eosTokenId[0]] : g.tokens;
}

function loadZoo(name: string): { model: LlamaModel; tok: Tokenizer } {
  const src = loadModelSource(join(ROOT, 'zoo', name));
  try {
    return { model: LlamaModel.load(src), tok: src.tokenizer };
  } finally {
    src.weights.close();
  }
}

/** A minimal GGUF reader written from the specification, independent of the writer. */
function readGguf(path: string) {
  const b = readFileSync(path);
  let p = 0;
  const u32 = () => ((p += 4), b.readUInt32LE(p - 4));
  const u64 = () => ((p += 8), Number(b.readBigUInt64LE(p - 8)));
  const str = () => {
    const n = u64();
    p += n;
    return b.toString('utf8', p - n, p);
  };
  const scalar = (t: number): unknown => {
    switch (t) {
      case 4:
        return u32();
      case 5:
        return ((p += 4), b.readInt32LE(p - 4));
      case 6:
        return ((p += 4), b.readFloatLE(p - 4));
      case 7:
        return ((p += 1), b[p - 1] === 1);
      case 8:
        return str();
      default:
        throw new Error(`type ${t}`);
    }
  };
  const magic = u32(),
    version = u32(),
    nt = u64(),
    nkv = u64();
  const kv = new Map<string, { type: number; value: unknown }>();
  for (let i = 0; i < nkv; i++) {
    const key = str();
    const type = u32();
    if (type === 9) {
      const it = u32();
      const n = u64();
      kv.set(key, { type: 9 * 100 + it, value: Array.from({ length: n }, () => scalar(it)) });
    } else kv.set(key, { type, value: scalar(type) });
  }
  const tensors = [];
  for (let i = 0; i < nt; i++) {
    const name = str();
    const nd = u32();
    const ne = Array.from({ length: nd }, () => u64());
    tensors.push({ name, ne, type: u32(), offset: u64() });
  }
  const dataStart = Math.ceil(p / 32) * 32;
  return { magic, version, kv, tensors, dataStart, bytes: b };
}

test('the GGUF container: header, typed metadata, tensor infos in ne order, 32-byte aligned data', () => {
  const path = join(tmp, 'container.gguf');
  const a = new Float32Array([1, 2, 3, 4, 5, 6]);
  const bias = new Float32Array([7, 8, 9]);
  writeGguf(
    path,
    new Map([
      ['general.architecture', gv.str('llama')],
      ['x.count', gv.u32(7)],
      ['x.eps', gv.f32(0.5)],
      ['x.flag', gv.bool(true)],
      ['x.words', gv.strs(['a', 'bé'])],
      ['x.ids', gv.i32s([-1, 2])],
    ]),
    [
      { name: 'a', shape: [2, 3], type: GgmlType.F32, nbytes: 24, data: () => new Uint8Array(a.buffer) },
      { name: 'b', shape: [3], type: GgmlType.F32, nbytes: 12, data: () => new Uint8Array(bias.buffer) },
    ],
  );
  const g = readGguf(path);
  assert.equal(g.magic, GGUF_MAGIC);
  assert.equal(g.bytes.toString('ascii', 0, 4), 'GGUF');
  assert.equal(g.version, 3);
  assert.deepEqual(g.kv.get('x.count'), { type: 4, value: 7 });
  assert.deepEqual(g.kv.get('x.eps'), { type: 6, value: 0.5 });
  assert.deepEqual(g.kv.get('x.flag'), { type: 7, value: true });
  assert.deepEqual(g.kv.get('x.words'), { type: 908, value: ['a', 'bé'] });
  assert.deepEqual(g.kv.get('x.ids'), { type: 905, value: [-1, 2] });
  // ne is innermost first: a [2, 3] row-major matrix is ne [3, 2]
  assert.deepEqual(g.tensors[0], { name: 'a', ne: [3, 2], type: 0, offset: 0 });
  assert.deepEqual(g.tensors[1], { name: 'b', ne: [3], type: 0, offset: 32 });
  assert.equal(g.dataStart % 32, 0);
  assert.deepEqual(
    Array.from(
      new Float32Array(
        g.bytes.buffer.slice(g.bytes.byteOffset + g.dataStart + 32, g.bytes.byteOffset + g.dataStart + 44),
      ),
    ),
    [7, 8, 9],
  );
  assert.equal(g.bytes.length, g.dataStart + 64);
});

test('Q8_0 blocks follow ggml: f16 d = max|x|/127, q = round(x/d) half away from zero', () => {
  const x = new Float32Array(64);
  for (let i = 0; i < 32; i++) x[i] = (i - 16) / 8; // max |x| = 2 at i = 0
  x[5] = 2 * (100.5 / 127); // exactly half way between two steps: rounds away from zero to 101
  const q = quantizeQ8_0(x); // second block all zero: d = 0, q = 0
  assert.equal(q.length, 2 * 34);
  const view = new DataView(q.buffer);
  assert.ok(Math.abs(halfToFloat(view.getUint16(0, true)) - 2 / 127) < 1e-5);
  assert.equal(view.getInt8(2 + 0), -127);
  assert.equal(view.getInt8(2 + 8), -64); // -1 / (2/127) = -63.5 -> -64
  assert.equal(view.getInt8(2 + 24), 64); // 1 / (2/127) = 63.5 -> 64
  assert.equal(view.getInt8(2 + 5), 101);
  assert.equal(view.getUint16(34, true), 0);
  assert.ok(q.subarray(36).every((v) => v === 0));
  const back = dequantizeQ8_0(q, 64);
  const d = 2 / 127;
  for (let i = 0; i < 32; i++) assert.ok(Math.abs(back[i] - x[i]) <= d / 2 + 1e-3, `value ${i}`);
});

test('q/k rows go from rotate_half order to llama.cpp interleaved pairs within each head', () => {
  // 2 heads of width 4, one column: rows [h0: 0 1 2 3, h1: 4 5 6 7] -> [0 2 1 3, 4 6 5 7]
  const x = Float32Array.from([0, 1, 2, 3, 4, 5, 6, 7]);
  assert.deepEqual(Array.from(permuteRopeRows(x, 2, 1)), [0, 2, 1, 3, 4, 6, 5, 7]);
  // two columns move with their row
  const y = Float32Array.from([0, 10, 1, 11, 2, 12, 3, 13]);
  assert.deepEqual(Array.from(permuteRopeRows(y, 1, 2)), [0, 10, 2, 12, 1, 11, 3, 13]);
});

test('f32 exports of the bundled models: llama.cpp greedy ids equal nuggets generate, and it tokenizes alike', async () => {
  for (const name of ZOO) {
    const out = join(tmp, `${name}-f32.gguf`);
    exportGgufCommand({ model: join(ROOT, 'zoo', name), out, outtype: 'f32', force: false });
    const g = readGguf(out);
    assert.equal(g.kv.get('general.architecture')!.value, 'llama');
    assert.equal(g.kv.get('tokenizer.ggml.model')!.value, 'llama');
    assert.equal(g.kv.get('llama.rope.freq_base')!.value, 10000);
    const { model, tok } = loadZoo(name);
    for (const text of PROMPTS) {
      const ids = tok.encode(text, { addBos: true });
      const r = await llamaGreedy(out, ids, 32, { tokenize: text });
      assert.deepEqual(r.tokenized, ids.slice(1), `${name}: llama.cpp tokenizes "${text}" as nuggets does`);
      assert.deepEqual(r.tokens, nuggetsGreedy(model, ids, 32), `${name}: "${text}"`);
    }
  }
});

test('the llama2.c checkpoint exports with its tokenizer.bin scores and runs the same greedy ids', async () => {
  const ckpt = join(ROOT, 'data', 'stories260k', 'checkpoint_legacy.bin');
  const out = join(tmp, 'llama2c.gguf');
  exportGgufCommand({ model: ckpt, out, outtype: 'f32', force: false });
  const src = loadModelSource(ckpt);
  const model = LlamaModel.load(src);
  const text = 'The little dog';
  const ids = src.tokenizer.encode(text, { addBos: true });
  const r = await llamaGreedy(out, ids, 32, { tokenize: text });
  assert.deepEqual(r.tokenized, ids.slice(1));
  assert.deepEqual(r.tokens, nuggetsGreedy(model, ids, 32));
});

test('f16 and Q8_0 exports agree with nuggets on the first 16 greedy tokens of every prompt', async () => {
  for (const name of ZOO) {
    const { model, tok } = loadZoo(name);
    for (const outtype of ['f16', 'q8_0'] as const) {
      const out = join(tmp, `${name}-${outtype}.gguf`);
      exportGgufCommand({ model: join(ROOT, 'zoo', name), out, outtype, force: false });
      const types = new Set(readGguf(out).tensors.map((t) => t.type));
      assert.ok(types.has(outtype === 'f16' ? GgmlType.F16 : GgmlType.Q8_0), `${name} ${outtype}`);
      for (const text of PROMPTS) {
        const ids = tok.encode(text, { addBos: true });
        const r = await llamaGreedy(out, ids, 16);
        assert.deepEqual(r.tokens, nuggetsGreedy(model, ids, 16), `${name} ${outtype}: "${text}"`);
      }
    }
  }
});

test('a student with a merged adapter, and the adapter as a GGUF LoRA applied by llama.cpp, give the merged tokens', async () => {
  const student = join(ROOT, 'zoo', 'student-tiny');
  const src = loadModelSource(student);
  const c = src.config;
  // every module kind (the student is untied, so embed_tokens and lm_head LoRAs are allowed)
  const modules = randomAdapter(
    ['embed_tokens', 'q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj', 'lm_head'],
    c,
    new Rng(5),
    { r: 4, alpha: 8, std: 0.15 },
  );
  const adapterDir = join(tmp, 'adapter');
  writeAdapter(adapterDir, modules, c, { baseModel: student, loraDropout: 0 });
  const merged = mergeModel(src, modules);
  const mergedModel = LlamaModel.load({ config: merged.config, weights: merged });
  const base = LlamaModel.load(src);

  const mergedOut = join(tmp, 'merged.gguf');
  const loraOut = join(tmp, 'lora.gguf');
  const baseOut = join(tmp, 'student.gguf');
  exportGgufCommand({ model: student, adapter: adapterDir, out: mergedOut, outtype: 'f32', force: false });
  exportGgufCommand({ model: student, out: baseOut, outtype: 'f32', force: false });
  assert.equal(
    exportGgufLoraCommand({ adapter: adapterDir, base: student, out: loraOut, outtype: 'f32', force: false }),
    2 * modules.length,
  );
  const g = readGguf(loraOut);
  assert.equal(g.kv.get('general.type')!.value, 'adapter');
  assert.equal(g.kv.get('adapter.type')!.value, 'lora');
  assert.equal(g.kv.get('adapter.lora.alpha')!.value, 8);
  const byName = new Map(g.tensors.map((t) => [t.name, t.ne]));
  assert.deepEqual(byName.get('blk.0.attn_q.weight.lora_a'), [c.hiddenSize, 4]);
  assert.deepEqual(byName.get('blk.0.attn_q.weight.lora_b'), [4, c.numHeads * c.headDim]);
  assert.deepEqual(byName.get('token_embd.weight.lora_a'), [4, c.vocabSize]);
  assert.deepEqual(byName.get('token_embd.weight.lora_b'), [4, c.hiddenSize]);

  let differs = false;
  for (const text of PROMPTS) {
    const ids = src.tokenizer.encode(text, { addBos: true });
    const want = nuggetsGreedy(mergedModel, ids, 32);
    differs ||= JSON.stringify(want) !== JSON.stringify(nuggetsGreedy(base, ids, 32));
    assert.deepEqual((await llamaGreedy(mergedOut, ids, 32)).tokens, want, `merged: "${text}"`);
    assert.deepEqual(
      (await llamaGreedy(baseOut, ids, 32, { lora: loraOut })).tokens,
      want,
      `lora: "${text}"`,
    );
  }
  assert.ok(differs, 'the adapter changes the greedy tokens');
  src.weights.close();
});

test('a Qwen2 model (q/k/v biases, NEOX RoPE, tied) with a byte-level BPE tokenizer runs the same greedy ids', async () => {
  // vocab padded beyond the tokenizer's 278 tokens: llama.cpp needs a token per embedding row
  const c = tinyConfig({
    arch: 'qwen2',
    vocabSize: 288,
    hiddenSize: 32,
    intermediateSize: 64,
    numHeads: 4,
    numKvHeads: 2,
    headDim: 8,
    attentionBias: true,
    tieWordEmbeddings: true,
    ropeTheta: 1e6,
    rmsNormEps: 1e-6,
    bosTokenId: null,
    eosTokenId: [277],
    padTokenId: 275,
  });
  const dir = join(tmp, 'qwen2');
  writeHfModel(dir, c, randomWeights(c, 3));
  for (const f of ['tokenizer.json', 'tokenizer_config.json'])
    copyFileSync(join(ROOT, 'fixtures', 'io', 'qwen2-bytelevel', f), join(dir, f));
  const out = join(tmp, 'qwen2.gguf');
  exportGgufCommand({ model: dir, out, outtype: 'f32', force: false });
  const g = readGguf(out);
  assert.equal(g.kv.get('general.architecture')!.value, 'qwen2');
  assert.equal(g.kv.get('tokenizer.ggml.model')!.value, 'gpt2');
  assert.equal(g.kv.get('tokenizer.ggml.pre')!.value, 'qwen2');
  assert.equal((g.kv.get('tokenizer.ggml.tokens')!.value as string[]).length, 288);
  assert.ok(g.tensors.some((t) => t.name === 'blk.1.attn_k.bias'));
  const src = loadModelSource(dir);
  const model = LlamaModel.load(src);
  const text = "Hello world, it's the 2024 story!";
  const ids = src.tokenizer.encode(text);
  const r = await llamaGreedy(out, ids, 24, { tokenize: text });
  assert.deepEqual(r.tokenized, ids);
  assert.deepEqual(r.tokens, nuggetsGreedy(model, ids, 24));
  src.weights.close();
});

test('a llama model with the GPT-2 byte-level tokenizer: gpt2 vocabulary, gpt-2 pre-tokenizer, same ids', async () => {
  const c = tinyConfig({
    vocabSize: 276,
    hiddenSize: 32,
    intermediateSize: 64,
    headDim: 8,
    bosTokenId: 275,
    eosTokenId: [275],
    padTokenId: null,
  });
  const dir = join(tmp, 'gpt2-tok');
  writeHfModel(dir, c, randomWeights(c, 4));
  for (const f of ['tokenizer.json', 'tokenizer_config.json'])
    copyFileSync(join(ROOT, 'fixtures', 'io', 'gpt2-bytelevel', f), join(dir, f));
  const out = join(tmp, 'gpt2-tok.gguf');
  exportGgufCommand({ model: dir, out, outtype: 'f32', force: false });
  const g = readGguf(out);
  assert.equal(g.kv.get('tokenizer.ggml.model')!.value, 'gpt2');
  assert.equal(g.kv.get('tokenizer.ggml.pre')!.value, 'gpt-2');
  assert.equal((g.kv.get('tokenizer.ggml.merges')!.value as string[]).length, 19);
  assert.equal((g.kv.get('tokenizer.ggml.token_type')!.value as number[])[275], 3);
  const src = loadModelSource(dir);
  const model = LlamaModel.load(src);
  const text = 'The cat sat on the mat, 42 times.';
  const ids = src.tokenizer.encode(text);
  const r = await llamaGreedy(out, ids, 24, { tokenize: text });
  assert.deepEqual(r.tokenized, ids);
  assert.deepEqual(r.tokens, nuggetsGreedy(model, ids, 24));
  src.weights.close();
});

test('bad input: one line naming the file, exit 2, nothing written', () => {
  const out = join(tmp, 'bad.gguf');
  const exists = join(tmp, 'exists.gguf');
  writeFileSync(exists, 'keep');
  const tiedAdapter = join(tmp, 'tied-adapter');
  const src = loadModelSource(join(ROOT, 'zoo', 'stories260k'));
  writeAdapter(
    tiedAdapter,
    randomAdapter(['embed_tokens'], src.config, new Rng(1), { r: 2, alpha: 2 }),
    src.config,
    {
      baseModel: null,
      loraDropout: 0,
    },
  );
  src.weights.close();
  const [missing, clash, tied, outtype] = cliBatch([
    ['export', 'gguf', join(tmp, 'nope'), '-o', out],
    ['export', 'gguf', join(ROOT, 'zoo', 'student-tiny'), '-o', exists],
    ['export', 'gguf-lora', tiedAdapter, '--base', join(ROOT, 'zoo', 'stories260k'), '-o', out],
    ['export', 'gguf', join(ROOT, 'zoo', 'student-tiny'), '-o', out, '--outtype', 'q4_0'],
  ]);
  assert.equal(missing.code, 2);
  assert.match(missing.err, /nope: no such file or folder/);
  assert.equal(clash.code, 2);
  assert.match(clash.err, /exists\.gguf: already exists; .*--force/);
  assert.equal(readFileSync(exists, 'utf8'), 'keep');
  assert.equal(tied.code, 2);
  assert.match(tied.err, /tied-adapter: adapts embed_tokens of a model with tied embeddings/);
  assert.notEqual(outtype.code, 0);
  assert.match(outtype.err, /q4_0/);
  for (const r of [missing, clash, tied]) assert.equal(r.err.trim().split('\n').length, 1, r.err);
  assert.equal(existsSync(out), false);
});
