/**
 * A PEFT LoRA adapter as a GGUF LoRA file, as llama.cpp's convert_lora_to_gguf.py writes it:
 * general.type "adapter", adapter.type "lora", adapter.lora.alpha (f32), general.architecture of the
 * base model, and per adapted weight W the tensors "<gguf name of W>.lora_a" and ".lora_b".
 *
 * Layouts (row-major shapes): a linear's lora_a is PEFT's A [r, in], lora_b its B [out, r]; llama.cpp
 * adds scale * B(A x) with scale = alpha / r, r read from lora_b. For the llama architecture the rows of
 * a q/k B are permuted exactly as the weight's rows are (./names.ts), so the delta lands on the same
 * rows. The embedding is used by row lookup (llama.cpp's llm_build_inp_embd: B times row t of A), so
 * token_embd.weight.lora_a is PEFT's lora_embedding_A transposed, [V, r], and lora_b is
 * lora_embedding_B, [d, r].
 *
 * GGUF has one alpha per file. Modules whose PEFT alpha differs from the first one (alpha_pattern)
 * get their B scaled by alpha_m / alpha, which gives the same delta.
 */
import type { ModelConfig } from '../../model/config.js';
import { InputError } from '../../errors.js';
import type { AdapterModule } from '../../transfer/peft.js';
import { modulePath } from '../../transfer/modules.js';
import { ggufArch, ggufTensorName, permutedHeads, permuteRopeRows } from './names.js';
import { encodeTensor, typeBytes } from './quant.js';
import {
  GGUF_DEFAULT_ALIGNMENT,
  GgmlType,
  gv,
  writeGguf,
  type GgufTensor,
  type GgufValue,
} from './writer.js';

export type GgufLoraOutType = 'f32' | 'f16' | 'bf16';

const LORA_TYPES: Readonly<Record<GgufLoraOutType, GgmlType>> = {
  f32: GgmlType.F32,
  f16: GgmlType.F16,
  bf16: GgmlType.BF16,
};

function transpose(x: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(x.length);
  for (let i = 0; i < rows; i++) for (let j = 0; j < cols; j++) out[j * rows + i] = x[i * cols + j];
  return out;
}

/** Metadata and tensors of a GGUF LoRA file for adapter modules that load on `config`. */
export function ggufLoraParts(
  modules: readonly AdapterModule[],
  config: ModelConfig,
  o: { name: string; out: GgufLoraOutType; source: string },
): { metadata: Map<string, GgufValue>; tensors: GgufTensor[] } {
  if (modules.length === 0) throw new InputError(o.source, 'the adapter has no LoRA modules');
  const arch = ggufArch(config);
  const alpha = modules[0].alpha;
  const metadata = new Map<string, GgufValue>([
    ['general.architecture', gv.str(arch)],
    ['general.type', gv.str('adapter')],
    ['general.name', gv.str(o.name)],
    ['general.alignment', gv.u32(GGUF_DEFAULT_ALIGNMENT)],
    ['adapter.type', gv.str('lora')],
    ['adapter.lora.alpha', gv.f32(alpha)],
  ]);
  const type = LORA_TYPES[o.out];
  const tensors: GgufTensor[] = [];
  const add = (name: string, shape: number[], make: () => Float32Array) =>
    tensors.push({
      name,
      shape,
      type,
      nbytes: typeBytes(type, shape[0] * shape[1]),
      data: () => encodeTensor(make(), type),
    });
  for (const m of modules) {
    const { kind } = m.ref;
    if ((kind === 'embed_tokens' || kind === 'lm_head') && config.tieWordEmbeddings) {
      throw new InputError(
        o.source,
        `adapts ${kind} of a model with tied embeddings; llama.cpp shares one tensor for the embedding and the output, so a GGUF LoRA cannot hold this delta (export the merged model instead)`,
      );
    }
    const base = ggufTensorName(`${modulePath(m.ref)}.weight`);
    const ratio = m.alpha / alpha;
    const scaled = (B: Float32Array) => (ratio === 1 ? B : B.map((v) => v * ratio));
    const r = m.r;
    if (kind === 'embed_tokens') {
      const d = config.hiddenSize,
        V = config.vocabSize;
      add(`${base}.lora_a`, [V, r], () => transpose(m.A, r, V));
      add(`${base}.lora_b`, [d, r], () => scaled(m.B));
      continue;
    }
    const n = m.B.length / r,
      k = m.A.length / r;
    const heads = permutedHeads(arch, config, `${modulePath(m.ref)}.weight`);
    add(`${base}.lora_a`, [r, k], () => m.A);
    add(`${base}.lora_b`, [n, r], () => {
      const B = scaled(m.B);
      return heads === null ? B : permuteRopeRows(B, heads, r);
    });
  }
  return { metadata, tensors };
}

/** Writes a GGUF LoRA file (temp name, then rename); returns the number of tensors. */
export function writeGgufLora(
  path: string,
  modules: readonly AdapterModule[],
  config: ModelConfig,
  o: { name: string; out: GgufLoraOutType; source: string },
): number {
  const { metadata, tensors } = ggufLoraParts(modules, config, o);
  writeGguf(path, metadata, tensors);
  return tensors.length;
}
