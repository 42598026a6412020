/**
 * HF tensor names -> GGUF tensor names, as llama.cpp's convert_hf_to_gguf.py maps LLaMA-family models
 * (gguf-py's tensor_mapping), and the q/k row permutation it applies to the llama architecture.
 *
 * RoPE layout: HF checkpoints rotate halves (rotate_half: dimension i pairs with i + head_dim/2);
 * llama.cpp's llama architecture rotates adjacent pairs (2i with 2i+1, ggml's "normal" RoPE). So
 * convert_hf_to_gguf reorders the rows of q_proj and k_proj inside each head, row h*hd + 2i + t taking
 * old row h*hd + t*hd/2 + i (reshape [heads, 2, hd/2], swap the middle axes). Qwen2 is run by
 * llama.cpp with NEOX RoPE (rotate_half), so its rows stay as they are.
 */
import type { ModelConfig } from '../../model/config.js';

/** llama.cpp architecture names (general.architecture and the metadata key prefix). */
export type GgufArch = 'llama' | 'qwen2';

export function ggufArch(c: ModelConfig): GgufArch {
  // MistralForCausalLM is converted as a llama model (same tensors, same RoPE).
  return c.arch === 'qwen2' ? 'qwen2' : 'llama';
}

const LAYER_PARTS: Readonly<Record<string, string>> = {
  input_layernorm: 'attn_norm',
  'self_attn.q_proj': 'attn_q',
  'self_attn.k_proj': 'attn_k',
  'self_attn.v_proj': 'attn_v',
  'self_attn.o_proj': 'attn_output',
  post_attention_layernorm: 'ffn_norm',
  'mlp.gate_proj': 'ffn_gate',
  'mlp.up_proj': 'ffn_up',
  'mlp.down_proj': 'ffn_down',
};

const LAYER_NAME = /^model\.layers\.(\d+)\.(.+)\.(weight|bias)$/;

/** The GGUF name of an HF tensor (model.layers.3.self_attn.q_proj.weight -> blk.3.attn_q.weight). */
export function ggufTensorName(hfName: string): string {
  if (hfName === 'model.embed_tokens.weight') return 'token_embd.weight';
  if (hfName === 'model.norm.weight') return 'output_norm.weight';
  if (hfName === 'lm_head.weight') return 'output.weight';
  const m = LAYER_NAME.exec(hfName);
  const part = m ? LAYER_PARTS[m[2]] : undefined;
  if (!m || !part) throw new Error(`gguf: no GGUF name for tensor ${hfName}`);
  return `blk.${m[1]}.${part}.${m[3]}`;
}

/** Heads whose rows a tensor's first dimension holds when the q/k permutation applies to it, else null. */
export function permutedHeads(arch: GgufArch, c: ModelConfig, hfName: string): number | null {
  if (arch !== 'llama') return null;
  if (/\.self_attn\.q_proj\.(weight|bias)$/.test(hfName)) return c.numHeads;
  if (/\.self_attn\.k_proj\.(weight|bias)$/.test(hfName)) return c.numKvHeads;
  return null;
}

/**
 * Rows of a [heads*hd, cols] matrix (or a [heads*hd] vector, cols = 1) from rotate_half order to
 * llama.cpp's interleaved order: new row h*hd + 2i + t = old row h*hd + t*hd/2 + i.
 */
export function permuteRopeRows(x: Float32Array, heads: number, cols: number): Float32Array {
  const rows = x.length / cols;
  const hd = rows / heads;
  if (!Number.isInteger(hd) || hd % 2 !== 0)
    throw new Error(`gguf: ${rows} rows do not split into ${heads} heads of even width`);
  const half = hd / 2;
  const out = new Float32Array(x.length);
  for (let h = 0; h < heads; h++) {
    for (let i = 0; i < half; i++) {
      for (let t = 0; t < 2; t++) {
        const src = (h * hd + t * half + i) * cols;
        out.set(x.subarray(src, src + cols), (h * hd + 2 * i + t) * cols);
      }
    }
  }
  return out;
}
