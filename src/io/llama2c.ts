/**
 * llama2.c checkpoints (docs/formats.md "llama2.c checkpoints"): the legacy v0 export (7 int32 header,
 * then fp32 arrays) and the v1 export ("ak42" magic, 256-byte header, norms first). Weights come out
 * under HF tensor names but in llama2.c row order: q/k rows are NOT permuted, so the model must run
 * them with 'pairs' RoPE. `permuteForHf` gives the HF row order for an HF folder ('half' RoPE).
 */
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { readFully } from './safetensors.js';
import { InputError } from '../errors.js';
import type { ModelConfig } from '../model/config.js';
import { MemoryWeights } from '../model/weights.js';

const V1_MAGIC = 0x616b3432; // "ak42" read as a little-endian uint32

// Tensors are read straight into Float32Arrays, which use the host byte order; the formats are little-endian.
if (new Uint8Array(new Uint16Array([1]).buffer)[0] !== 1)
  throw new Error('nuggets needs a little-endian host');

export interface Llama2cModel {
  config: ModelConfig;
  weights: MemoryWeights;
}

interface Header {
  dim: number;
  hidden: number;
  layers: number;
  heads: number;
  kvHeads: number;
  vocab: number;
  seqLen: number;
  shared: boolean;
  version: 0 | 1;
  headerBytes: number;
}

function readHeader(path: string, fd: number, size: number): Header {
  if (size < 28)
    throw new InputError(path, `file is ${size} bytes, too short for a llama2.c header (28 bytes)`);
  const buf = Buffer.alloc(Math.min(size, 256));
  readSync(fd, buf, 0, buf.length, 0);
  const first = buf.readUInt32LE(0);
  if (first === V1_MAGIC) {
    if (size < 256)
      throw new InputError(path, `llama2.c v1 file is ${size} bytes, shorter than its 256-byte header`);
    const version = buf.readInt32LE(4);
    if (version !== 1) {
      throw new InputError(
        path,
        `llama2.c export version ${version} is not supported (only legacy v0 and fp32 v1; v2 is int8-quantised)`,
      );
    }
    const p = [0, 1, 2, 3, 4, 5, 6].map((i) => buf.readInt32LE(8 + 4 * i));
    const h = toHeader(path, p, 1, 256);
    h.shared = buf.readUInt8(36) !== 0;
    return h;
  }
  const p = [0, 1, 2, 3, 4, 5, 6].map((i) => buf.readInt32LE(4 * i));
  const h = toHeader(path, p, 0, 28);
  return h;
}

function toHeader(path: string, p: number[], version: 0 | 1, headerBytes: number): Header {
  const [dim, hidden, layers, heads, kvHeads, vocabSigned, seqLen] = p;
  const names = ['dim', 'hidden_dim', 'n_layers', 'n_heads', 'n_kv_heads', 'vocab_size', 'seq_len'];
  const vals = [dim, hidden, layers, heads, kvHeads, Math.abs(vocabSigned), seqLen];
  for (let i = 0; i < vals.length; i++) {
    // Real models stay far below these bounds; anything above is a file that is not a llama2.c checkpoint.
    if (!(vals[i] > 0 && vals[i] <= 1 << 24)) {
      throw new InputError(
        path,
        `llama2.c header field ${names[i]} = ${p[i]} is not a plausible size (not a llama2.c checkpoint?)`,
      );
    }
  }
  if (dim % heads !== 0)
    throw new InputError(path, `llama2.c header: dim ${dim} is not divisible by n_heads ${heads}`);
  if (heads % kvHeads !== 0)
    throw new InputError(
      path,
      `llama2.c header: n_heads ${heads} is not a multiple of n_kv_heads ${kvHeads}`,
    );
  if ((dim / heads) % 2 !== 0)
    throw new InputError(path, `llama2.c header: head size ${dim / heads} is odd (RoPE needs pairs)`);
  // v0 marks an untied classifier with a negative vocab_size; v1 has an explicit flag (set by the caller).
  return {
    dim,
    hidden,
    layers,
    heads,
    kvHeads,
    vocab: Math.abs(vocabSigned),
    seqLen,
    shared: vocabSigned > 0,
    version,
    headerBytes,
  };
}

/** File size in bytes that the header implies (exact, in BigInt: absurd headers overflow doubles). */
function expectedBytes(h: Header): bigint {
  const [d, f, L, V] = [h.dim, h.hidden, h.layers, h.vocab].map(BigInt);
  const kv = BigInt((h.dim / h.heads) * h.kvHeads);
  const perLayer = 2n * d + d * d + 2n * kv * d + d * d + 3n * f * d;
  let floats = V * d + L * perLayer + d + (h.shared ? 0n : V * d);
  if (h.version === 0) floats += 2n * BigInt(h.seqLen) * BigInt(h.dim / h.heads / 2);
  return BigInt(h.headerBytes) + 4n * floats;
}

/** The tensors in file order: [HF name, shape] per array, with llama2.c's per-kind stacking across layers. */
function layout(h: Header): Array<{ name: string | null; shape: number[] }> {
  const { dim: d, hidden: f, layers: L, vocab: V } = h;
  const kv = (d / h.heads) * h.kvHeads;
  const perLayer = (suffix: string, shape: number[]) =>
    Array.from({ length: L }, (_, i) => ({ name: `model.layers.${i}.${suffix}`, shape }));
  const emb = { name: 'model.embed_tokens.weight', shape: [V, d] };
  const attNorm = perLayer('input_layernorm.weight', [d]);
  const ffnNorm = perLayer('post_attention_layernorm.weight', [d]);
  const norm = { name: 'model.norm.weight', shape: [d] };
  const mats = [
    ...perLayer('self_attn.q_proj.weight', [d, d]),
    ...perLayer('self_attn.k_proj.weight', [kv, d]),
    ...perLayer('self_attn.v_proj.weight', [kv, d]),
    ...perLayer('self_attn.o_proj.weight', [d, d]),
  ];
  // w1 = gate, w2 = down, w3 = up (FFN = w2(silu(w1 x) * w3 x)).
  const ffn = [
    ...perLayer('mlp.gate_proj.weight', [f, d]),
    ...perLayer('mlp.down_proj.weight', [d, f]),
    ...perLayer('mlp.up_proj.weight', [f, d]),
  ];
  const cls = h.shared ? [] : [{ name: 'lm_head.weight', shape: [V, d] }];
  if (h.version === 1) return [...attNorm, ...ffnNorm, norm, emb, ...mats, ...ffn, ...cls];
  const half = d / h.heads / 2;
  const freqs = [
    { name: null, shape: [h.seqLen, half] },
    { name: null, shape: [h.seqLen, half] },
  ];
  return [emb, ...attNorm, ...mats.slice(0, 4 * L), ...ffnNorm, ...ffn, norm, ...freqs, ...cls];
}

/** Reads a llama2.c checkpoint (legacy v0 or fp32 v1) into memory under HF names, llama2.c row order. */
export function readLlama2c(path: string): Llama2cModel {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch (e) {
    throw new InputError(path, `cannot open llama2.c checkpoint: ${(e as Error).message}`);
  }
  try {
    const size = fstatSync(fd).size;
    const h = readHeader(path, fd, size);
    // the size the header implies, computed before anything is laid out or allocated: a small file
    // whose header claims millions of layers is refused at once
    const expected = expectedBytes(h);
    if (BigInt(size) !== expected) {
      const what = `dim ${h.dim}, hidden_dim ${h.hidden}, n_layers ${h.layers}, n_heads ${h.heads}, n_kv_heads ${h.kvHeads}, vocab ${h.vocab}${h.shared ? '' : ' (untied)'}, seq_len ${h.seqLen}`;
      throw new InputError(
        path,
        `llama2.c v${h.version} checkpoint should be ${expected} bytes for its header (${what}) but is ${size} bytes` +
          (size < expected ? ' (truncated?)' : ''),
      );
    }
    const items = layout(h);
    const tensors = new Map<string, { shape: number[]; data: Float32Array }>();
    let pos = h.headerBytes;
    for (const t of items) {
      const n = t.shape.reduce((a, b) => a * b, 1);
      if (t.name !== null) {
        const data = new Float32Array(n);
        readFully(fd, new Uint8Array(data.buffer), pos, path);
        tensors.set(t.name, { shape: t.shape, data });
      }
      pos += 4 * n;
    }
    // HF order of names (embedding first, then layer by layer) so listings read naturally.
    const ordered = new Map<string, { shape: number[]; data: Float32Array }>();
    const names = [...tensors.keys()].sort((a, b) => nameRank(a) - nameRank(b) || cmpLayer(a, b));
    for (const n of names) ordered.set(n, tensors.get(n)!);
    const config: ModelConfig = {
      arch: 'llama',
      vocabSize: h.vocab,
      hiddenSize: h.dim,
      intermediateSize: h.hidden,
      numLayers: h.layers,
      numHeads: h.heads,
      numKvHeads: h.kvHeads,
      headDim: h.dim / h.heads,
      rmsNormEps: 1e-5,
      ropeTheta: 10000,
      ropeScaling: null,
      ropeStyle: 'pairs',
      maxPositionEmbeddings: h.seqLen,
      tieWordEmbeddings: h.shared,
      attentionBias: false,
      oBias: false,
      mlpBias: false,
      bosTokenId: 1,
      eosTokenId: [2],
      padTokenId: null,
      torchDtype: 'float32',
    };
    return { config, weights: new MemoryWeights(path, ordered) };
  } finally {
    closeSync(fd);
  }
}

function nameRank(n: string): number {
  if (n === 'model.embed_tokens.weight') return 0;
  if (n === 'model.norm.weight') return 2;
  if (n === 'lm_head.weight') return 3;
  return 1;
}

const withinLayer = [
  'self_attn.q_proj',
  'self_attn.k_proj',
  'self_attn.v_proj',
  'self_attn.o_proj',
  'mlp.gate_proj',
  'mlp.up_proj',
  'mlp.down_proj',
  'input_layernorm',
  'post_attention_layernorm',
];
function cmpLayer(a: string, b: string): number {
  const la = /^model\.layers\.(\d+)\.(.*)\.weight$/.exec(a);
  const lb = /^model\.layers\.(\d+)\.(.*)\.weight$/.exec(b);
  if (!la || !lb) return 0;
  return Number(la[1]) - Number(lb[1]) || withinLayer.indexOf(la[2]) - withinLayer.indexOf(lb[2]);
}

/**
 * HF's convert_llama_weights_to_hf.py `permute`: w.view(n_heads, rows/n_heads/2, 2, cols).transpose(1, 2)
 * .reshape(rows, cols). Within each head, the even rows (pair members i) go to the first half and the odd
 * rows to the second half, so 'half' RoPE on the result equals 'pairs' RoPE on the input.
 */
export function permuteForHf(w: Float32Array, nHeads: number, rows: number, cols: number): Float32Array {
  if (w.length !== rows * cols)
    throw new Error(`permuteForHf: ${w.length} elements, expected ${rows}x${cols}`);
  if (rows % (2 * nHeads) !== 0)
    throw new Error(`permuteForHf: ${rows} rows do not split into ${nHeads} heads of pairs`);
  const hd = rows / nHeads,
    half = hd / 2;
  const out = new Float32Array(w.length);
  for (let h = 0; h < nHeads; h++) {
    for (let i = 0; i < half; i++) {
      for (let j = 0; j < 2; j++) {
        const src = h * hd + 2 * i + j; // view index (h, i, j)
        const dst = h * hd + j * half + i; // after transpose(1, 2): (h, j, i)
        out.set(w.subarray(src * cols, (src + 1) * cols), dst * cols);
      }
    }
  }
  return out;
}

/** The inverse of permuteForHf (HF row order back to llama2.c pairs order). */
export function unpermuteFromHf(w: Float32Array, nHeads: number, rows: number, cols: number): Float32Array {
  if (w.length !== rows * cols)
    throw new Error(`unpermuteFromHf: ${w.length} elements, expected ${rows}x${cols}`);
  const hd = rows / nHeads,
    half = hd / 2;
  const out = new Float32Array(w.length);
  for (let h = 0; h < nHeads; h++) {
    for (let i = 0; i < half; i++) {
      for (let j = 0; j < 2; j++) {
        const src = h * hd + j * half + i;
        const dst = h * hd + 2 * i + j;
        out.set(w.subarray(src * cols, (src + 1) * cols), dst * cols);
      }
    }
  }
  return out;
}

/**
 * A llama2.c model in the HF layout: q/k rows permuted as HF's conversion script does and 'half'
 * RoPE. nuggets imports llama2.c checkpoints this way, so every sensitivity file, window offset and
 * adapter it writes refers to the same rows as the converted HF folder (and as PEFT sees them).
 */
export function toHfLayout(m: Llama2cModel): Llama2cModel {
  const { config, weights } = m;
  if (config.ropeStyle === 'half') return m;
  const out = new Map<string, { shape: number[]; data: Float32Array }>();
  for (const name of weights.names()) {
    const shape = weights.info(name).shape;
    let data = weights.get(name);
    if (name.endsWith('self_attn.q_proj.weight'))
      data = permuteForHf(data, config.numHeads, shape[0], shape[1]);
    if (name.endsWith('self_attn.k_proj.weight'))
      data = permuteForHf(data, config.numKvHeads, shape[0], shape[1]);
    out.set(name, { shape, data });
  }
  return { config: { ...config, ropeStyle: 'half' }, weights: new MemoryWeights(weights.source, out) };
}
