import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readLlama2c, permuteForHf, unpermuteFromHf } from '../src/io/llama2c.js';
import { expectedTensorNames, expectedShape } from '../src/model/config.js';
import { InputError } from '../src/errors.js';

const BIN = 'data/stories260k/checkpoint_legacy.bin';

test('reads stories260K: config from the header, every tensor at its file offset', () => {
  const { config: c, weights: w } = readLlama2c(BIN);
  assert.deepEqual(
    [
      c.hiddenSize,
      c.intermediateSize,
      c.numLayers,
      c.numHeads,
      c.numKvHeads,
      c.vocabSize,
      c.maxPositionEmbeddings,
      c.headDim,
    ],
    [64, 172, 5, 8, 4, 512, 512, 8],
  );
  assert.equal(c.ropeStyle, 'pairs');
  assert.equal(c.tieWordEmbeddings, true);
  assert.deepEqual(w.names().sort(), expectedTensorNames(c).sort());
  for (const n of w.names()) assert.deepEqual(w.info(n).shape, expectedShape(c, n), n);
  // Independent offsets: 7 int32, then emb [512,64], rms_att [5,64], wq [5,64,64] ... as in docs/formats.md.
  const raw = readFileSync(BIN);
  const f = (floatIndex: number) => raw.readFloatLE(28 + 4 * floatIndex);
  const V = 512,
    d = 64,
    L = 5,
    kv = 32,
    hid = 172;
  let o = 0;
  assert.equal(w.get('model.embed_tokens.weight')[777], f(o + 777));
  o += V * d;
  assert.equal(w.get('model.layers.2.input_layernorm.weight')[5], f(o + 2 * d + 5));
  o += L * d;
  assert.equal(w.get('model.layers.1.self_attn.q_proj.weight')[100], f(o + d * d + 100));
  o += L * d * d;
  assert.equal(w.get('model.layers.4.self_attn.k_proj.weight')[3], f(o + 4 * kv * d + 3));
  o += L * kv * d;
  assert.equal(w.get('model.layers.0.self_attn.v_proj.weight')[9], f(o + 9));
  o += L * kv * d;
  assert.equal(w.get('model.layers.3.self_attn.o_proj.weight')[11], f(o + 3 * d * d + 11));
  o += L * d * d;
  assert.equal(w.get('model.layers.1.post_attention_layernorm.weight')[0], f(o + d));
  o += L * d;
  assert.equal(w.get('model.layers.2.mlp.gate_proj.weight')[50], f(o + 2 * hid * d + 50));
  o += L * hid * d;
  assert.equal(w.get('model.layers.2.mlp.down_proj.weight')[50], f(o + 2 * hid * d + 50));
  o += L * hid * d;
  assert.equal(w.get('model.layers.4.mlp.up_proj.weight').at(-1), f(o + 5 * hid * d - 1));
  o += L * hid * d;
  assert.equal(w.get('model.norm.weight')[63], f(o + 63));
  o += d;
  // What follows is freq_cis_real then freq_cis_imag [seq_len, 4]: row 0 is cos(0)=1 and sin(0)=0.
  assert.deepEqual([f(o), f(o + 3)], [1, 1]);
  assert.deepEqual([f(o + 512 * 4), f(o + 512 * 4 + 3)], [0, 0]);
  assert.ok(Math.abs(f(o + 4) - Math.cos(1)) < 1e-6); // position 1, frequency 10000^0
  assert.equal(28 + 4 * (o + 2 * 512 * 4), raw.length);
});

/** x rotated with llama2.c's adjacent-pair RoPE at position pos (head size hd). */
function ropePairs(x: Float64Array, hd: number, pos: number): Float64Array {
  const y = new Float64Array(x.length);
  for (let i = 0; i < x.length; i += 2) {
    const fr = pos * 10000 ** (-(i % hd) / hd);
    const [c, s] = [Math.cos(fr), Math.sin(fr)];
    y[i] = x[i] * c - x[i + 1] * s;
    y[i + 1] = x[i] * s + x[i + 1] * c;
  }
  return y;
}
/** HF rotate_half RoPE: pairs (j, j + hd/2) with frequency 10000^(-2j/hd). */
function ropeHalf(x: Float64Array, hd: number, pos: number): Float64Array {
  const y = new Float64Array(x.length);
  const h2 = hd / 2;
  for (let h = 0; h < x.length; h += hd) {
    for (let j = 0; j < h2; j++) {
      const fr = pos * 10000 ** (-(2 * j) / hd);
      const [c, s] = [Math.cos(fr), Math.sin(fr)];
      const a = x[h + j],
        b = x[h + j + h2];
      y[h + j] = a * c - b * s;
      y[h + j + h2] = b * c + a * s;
    }
  }
  return y;
}

test('permuteForHf: the HF view/transpose on a small case, and half-RoPE(permuted) = permuted(pairs-RoPE)', () => {
  // view(1, 2, 2, 1).transpose(1, 2): rows [r0, r1, r2, r3] -> [r0, r2, r1, r3].
  assert.deepEqual([...permuteForHf(Float32Array.of(10, 11, 12, 13), 1, 4, 1)], [10, 12, 11, 13]);
  // Two heads of 4 rows, 2 columns.
  const w = Float32Array.from({ length: 16 }, (_, i) => i);
  assert.deepEqual([...permuteForHf(w, 2, 8, 2)], [0, 1, 4, 5, 2, 3, 6, 7, 8, 9, 12, 13, 10, 11, 14, 15]);
  assert.deepEqual([...unpermuteFromHf(permuteForHf(w, 2, 8, 2), 2, 8, 2)], [...w]);

  // q = W x; the real stories260K q_proj with 8 heads of 8: RoPE'd dot products must agree.
  const { weights } = readLlama2c(BIN);
  const W = weights.get('model.layers.0.self_attn.q_proj.weight');
  const P = permuteForHf(W, 8, 64, 64);
  const x = Float64Array.from({ length: 64 }, (_, i) => Math.sin(i * 1.3));
  const mv = (m: Float32Array) =>
    Float64Array.from({ length: 64 }, (_, r) => x.reduce((s, xv, c) => s + m[r * 64 + c] * xv, 0));
  for (const pos of [0, 1, 7, 100]) {
    const a = ropePairs(mv(W), 8, pos);
    const b = ropeHalf(mv(P), 8, pos);
    const aP = permuteForHf(Float32Array.from(a), 8, 64, 1);
    for (let i = 0; i < 64; i++) assert.ok(Math.abs(aP[i] - b[i]) < 1e-4, `pos ${pos} row ${i}`);
  }
});

/** Builds a llama2.c file of random weights for header p in v0 or v1 layout (tied or not). */
function makeFile(version: 0 | 1, p: number[], shared: boolean): { buf: Buffer; floats: Float32Array } {
  const [d, f, L, h, kvh, V, S] = p;
  const kv = (d / h) * kvh;
  const sizes =
    version === 0
      ? [
          V * d,
          L * d,
          L * d * d,
          L * kv * d,
          L * kv * d,
          L * d * d,
          L * d,
          L * f * d,
          L * d * f,
          L * f * d,
          d,
          S * (d / h / 2),
          S * (d / h / 2),
        ]
      : [
          L * d,
          L * d,
          d,
          V * d,
          L * d * d,
          L * kv * d,
          L * kv * d,
          L * d * d,
          L * f * d,
          L * d * f,
          L * f * d,
        ];
  if (!shared) sizes.push(V * d);
  const n = sizes.reduce((a, b) => a + b, 0);
  const floats = Float32Array.from({ length: n }, (_, i) => ((i * 7919) % 1000) / 1000 - 0.5);
  let header: Buffer;
  if (version === 0) {
    header = Buffer.alloc(28);
    p.forEach((v, i) => header.writeInt32LE(i === 5 && !shared ? -v : v, 4 * i));
  } else {
    header = Buffer.alloc(256);
    header.writeUInt32LE(0x616b3432, 0);
    header.writeInt32LE(1, 4);
    p.forEach((v, i) => header.writeInt32LE(v, 8 + 4 * i));
    header.writeUInt8(shared ? 1 : 0, 36);
  }
  return { buf: Buffer.concat([header, Buffer.from(floats.buffer)]), floats };
}

test('v0 untied and v1 files give the same tensors as their layouts say', () => {
  const dir = mkdtempSync(join(tmpdir(), 'nuggets-l2c-'));
  const p = [8, 12, 2, 2, 1, 10, 6];
  const v0 = makeFile(0, p, false);
  writeFileSync(join(dir, 'v0.bin'), v0.buf);
  const m0 = readLlama2c(join(dir, 'v0.bin'));
  assert.equal(m0.config.tieWordEmbeddings, false);
  assert.equal(m0.config.numKvHeads, 1);
  // lm_head is the last V*d floats, after the freq_cis arrays.
  assert.deepEqual([...m0.weights.get('lm_head.weight')], [...v0.floats.subarray(v0.floats.length - 80)]);
  const v1 = makeFile(1, p, true);
  writeFileSync(join(dir, 'v1.bin'), v1.buf);
  const m1 = readLlama2c(join(dir, 'v1.bin'));
  assert.equal(m1.config.tieWordEmbeddings, true);
  // v1 order: att norms (2x8), ffn norms (2x8), final norm (8), embedding (10x8), wq ...
  assert.deepEqual(
    [...m1.weights.get('model.layers.1.post_attention_layernorm.weight')],
    [...v1.floats.subarray(24, 32)],
  );
  assert.deepEqual([...m1.weights.get('model.norm.weight')], [...v1.floats.subarray(32, 40)]);
  assert.deepEqual([...m1.weights.get('model.embed_tokens.weight')], [...v1.floats.subarray(40, 120)]);
  assert.deepEqual(
    [...m1.weights.get('model.layers.0.self_attn.q_proj.weight')],
    [...v1.floats.subarray(120, 184)],
  );
});

test('bad llama2.c files give InputError naming the file and the problem', () => {
  const dir = mkdtempSync(join(tmpdir(), 'nuggets-l2c-'));
  const good = readFileSync(BIN);
  const zeroHeads = Buffer.from(good);
  zeroHeads.writeInt32LE(0, 12);
  const v2 = Buffer.alloc(300);
  v2.writeUInt32LE(0x616b3432, 0);
  v2.writeInt32LE(2, 4);
  const cases: Array<[string, Buffer, RegExp]> = [
    ['tiny', Buffer.alloc(10), /too short/],
    [
      'truncated',
      good.subarray(0, good.length - 100),
      /should be 1056540 bytes .* but is 1056440 bytes \(truncated\?\)/,
    ],
    ['extra', Buffer.concat([good, Buffer.alloc(4)]), /but is 1056544 bytes/],
    ['zero heads', zeroHeads, /n_heads = 0/],
    ['v2', v2, /version 2 is not supported/],
  ];
  for (const [name, buf, re] of cases) {
    const p = join(dir, `${name}.bin`);
    writeFileSync(p, buf);
    assert.throws(
      () => readLlama2c(p),
      (e: unknown) => e instanceof InputError && e.message.startsWith(p) && re.test(e.message),
      name,
    );
  }
  assert.throws(() => readLlama2c(join(dir, 'nope.bin')), InputError);
});
