/**
 * A LLaMA-family model as a GGUF file llama.cpp loads: the hyperparameters under the architecture's
 * keys (llama.* or qwen2.*, as convert_hf_to_gguf.py writes them), the tokenizer metadata
 * (./tokenizer.ts) and the tensors under their GGUF names (./names.ts), q/k rows permuted for the
 * llama architecture, encoded as f32, f16, bf16 or Q8_0 (./quant.ts). Weights are read, converted and
 * written one tensor at a time.
 */
import type { ModelConfig } from '../../model/config.js';
import { expectedShape, expectedTensorNames } from '../../model/config.js';
import type { WeightSource } from '../../model/weights.js';
import type { Tokenizer } from '../../model/tokenizer.js';
import { InputError } from '../../errors.js';
import { ggufArch, ggufTensorName, permutedHeads, permuteRopeRows } from './names.js';
import { FILE_TYPE, encodeTensor, tensorType, typeBytes, type GgufOutType } from './quant.js';
import { tokenizerMetadata } from './tokenizer.js';
import {
  GGUF_DEFAULT_ALIGNMENT,
  GgmlType,
  gv,
  writeGguf,
  type GgufTensor,
  type GgufValue,
} from './writer.js';

export interface GgufModelInput {
  config: ModelConfig;
  weights: WeightSource;
  tokenizer: Tokenizer;
  /** general.name */
  name: string;
  /** Where the model came from, for error messages. */
  source: string;
}

/** llama3 RoPE frequency factors, the rope_freqs.weight tensor convert_hf_to_gguf writes for them. */
function llama3RopeFactors(c: ModelConfig): Float32Array {
  const r = c.ropeScaling!;
  const dim = c.headDim;
  const factor = r.factor;
  const low = r.lowFreqFactor ?? 1;
  const high = r.highFreqFactor ?? 4;
  const old = r.originalMaxPositionEmbeddings ?? 8192;
  const lowWavelen = old / low,
    highWavelen = old / high;
  const out = new Float32Array(dim / 2);
  for (let i = 0; i < dim / 2; i++) {
    const freq = 1 / Math.pow(c.ropeTheta, (2 * i) / dim);
    const wavelen = (2 * Math.PI) / freq;
    if (wavelen < highWavelen) out[i] = 1;
    else if (wavelen > lowWavelen) out[i] = factor;
    else {
      const smooth = (old / wavelen - low) / (high - low);
      out[i] = 1 / ((1 - smooth) / factor + smooth);
    }
  }
  return out;
}

/** The general.* and architecture hyperparameter metadata of a model. */
export function modelMetadata(c: ModelConfig, name: string, out: GgufOutType): Map<string, GgufValue> {
  const arch = ggufArch(c);
  const md = new Map<string, GgufValue>();
  md.set('general.architecture', gv.str(arch));
  md.set('general.type', gv.str('model'));
  md.set('general.name', gv.str(name));
  md.set('general.alignment', gv.u32(GGUF_DEFAULT_ALIGNMENT));
  md.set('general.file_type', gv.u32(FILE_TYPE[out]));
  md.set(`${arch}.vocab_size`, gv.u32(c.vocabSize));
  md.set(`${arch}.context_length`, gv.u32(c.maxPositionEmbeddings));
  md.set(`${arch}.embedding_length`, gv.u32(c.hiddenSize));
  md.set(`${arch}.feed_forward_length`, gv.u32(c.intermediateSize));
  md.set(`${arch}.block_count`, gv.u32(c.numLayers));
  md.set(`${arch}.attention.head_count`, gv.u32(c.numHeads));
  md.set(`${arch}.attention.head_count_kv`, gv.u32(c.numKvHeads));
  md.set(`${arch}.attention.key_length`, gv.u32(c.headDim));
  md.set(`${arch}.attention.value_length`, gv.u32(c.headDim));
  md.set(`${arch}.attention.layer_norm_rms_epsilon`, gv.f32(c.rmsNormEps));
  md.set(`${arch}.rope.freq_base`, gv.f32(c.ropeTheta));
  md.set(`${arch}.rope.dimension_count`, gv.u32(c.headDim));
  if (c.ropeScaling?.type === 'linear') {
    md.set(`${arch}.rope.scaling.type`, gv.str('linear'));
    md.set(`${arch}.rope.scaling.factor`, gv.f32(c.ropeScaling.factor));
  }
  return md;
}

function checkExportable(c: ModelConfig, source: string): void {
  if (c.ropeStyle !== 'half')
    throw new Error('gguf export: weights must be in the HF layout (rotate_half RoPE)');
  if (c.ropeScaling && c.ropeScaling.type !== 'linear' && c.ropeScaling.type !== 'llama3')
    throw new InputError(
      source,
      `rope_scaling "${c.ropeScaling.type}" has no GGUF form here (linear, llama3)`,
    );
  if (c.arch === 'qwen2' && c.oBias)
    throw new InputError(source, 'a qwen2 model with an o_proj bias has no llama.cpp tensor for it');
  if (c.mlpBias)
    throw new InputError(source, 'MLP biases have no llama.cpp tensors in the llama/qwen2 architectures');
}

/** Metadata and lazily encoded tensors of a model export. */
export function ggufModelParts(
  m: GgufModelInput,
  out: GgufOutType,
): { metadata: Map<string, GgufValue>; tensors: GgufTensor[] } {
  const c = m.config;
  checkExportable(c, m.source);
  const arch = ggufArch(c);
  const metadata = modelMetadata(c, m.name, out);
  for (const [k, v] of tokenizerMetadata(m.tokenizer, c, m.source)) metadata.set(k, v);
  const tensors: GgufTensor[] = [];
  if (c.ropeScaling?.type === 'llama3') {
    const f = llama3RopeFactors(c);
    tensors.push({
      name: 'rope_freqs.weight',
      shape: [f.length],
      type: GgmlType.F32,
      nbytes: f.byteLength,
      data: () => new Uint8Array(f.buffer),
    });
  }
  for (const hf of expectedTensorNames(c)) {
    const shape = expectedShape(c, hf);
    const type = tensorType(out, shape);
    const count = shape.reduce((a, b) => a * b, 1);
    const heads = permutedHeads(arch, c, hf);
    tensors.push({
      name: ggufTensorName(hf),
      shape,
      type,
      nbytes: typeBytes(type, count),
      data: () => {
        let x = m.weights.get(hf);
        if (heads !== null) x = permuteRopeRows(x, heads, shape.length > 1 ? shape[1] : 1);
        return encodeTensor(x, type);
      },
    });
  }
  return { metadata, tensors };
}

export interface GgufWriteSummary {
  path: string;
  tensors: number;
  /** Tensors per ggml type name (e.g. { Q8_0: 21, F32: 7, F16: 3 }). */
  types: Record<string, number>;
}

/** Writes a model as a GGUF file (temp name, then rename). */
export function writeGgufModel(path: string, m: GgufModelInput, out: GgufOutType): GgufWriteSummary {
  const { metadata, tensors } = ggufModelParts(m, out);
  writeGguf(path, metadata, tensors);
  const types: Record<string, number> = {};
  for (const t of tensors) types[GgmlType[t.type]] = (types[GgmlType[t.type]] ?? 0) + 1;
  return { path, tensors: tensors.length, types };
}
