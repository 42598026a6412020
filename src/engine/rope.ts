/**
 * RoPE inverse frequencies exactly as Hugging Face computes them (transformers
 * modeling_rope_utils): the default `1 / theta^(arange(0, d, 2) / d)` in float32, optionally
 * rescaled by rope_scaling 'linear' (divide by factor) or 'llama3' (_compute_llama3_parameters).
 * Every intermediate is rounded to float32 as torch does on float32 tensors. Unknown or
 * unsupported scaling types are refused by name rather than silently ignored.
 */
import { InputError } from '../errors.js';

const f = Math.fround;

/** config.json's rope_scaling, normalised (src/io/hfconfig.ts); null in a config means none. */
export interface RopeScaling {
  /** HF rope_type: 'linear' | 'dynamic' | 'llama3' | ... (only what ropeInvFreq supports is accepted). */
  type: string;
  factor: number;
  /** llama3-style fields, when present. */
  lowFreqFactor?: number;
  highFreqFactor?: number;
  originalMaxPositionEmbeddings?: number;
}

/**
 * @param source names where the settings came from (the config file) for error messages.
 */
export function ropeInvFreq(
  headDim: number,
  theta: number,
  scaling: RopeScaling | null,
  source = 'rope_scaling',
): Float32Array {
  if (!Number.isInteger(headDim) || headDim < 2 || headDim % 2 !== 0) {
    throw new InputError(source, `RoPE needs an even head dimension >= 2, got ${headDim}`);
  }
  if (!(theta > 0) || !Number.isFinite(theta))
    throw new InputError(source, `rope_theta must be a positive number, got ${theta}`);
  const half = headDim / 2;
  const inv = new Float32Array(half);
  // torch: arange(0, dim, 2, int64).float() / dim  -> float32; base ** t -> float32; 1.0 / that -> float32.
  for (let i = 0; i < half; i++) inv[i] = f(1 / f(Math.pow(theta, f((2 * i) / headDim))));
  if (scaling === null) return inv;
  const type = scaling.type;
  if (type === 'default') return inv;
  const factor = scaling.factor;
  if (!(factor > 0) || !Number.isFinite(factor)) {
    throw new InputError(source, `rope_scaling "${type}" needs a positive "factor", got ${factor}`);
  }
  if (type === 'linear') {
    for (let i = 0; i < half; i++) inv[i] = f(inv[i] / factor);
    return inv;
  }
  if (type === 'llama3') return llama3(inv, scaling, source);
  throw new InputError(
    source,
    `rope_scaling type "${type}" is not supported (supported: null, "default", "linear", "llama3"); ` +
      'using the checkpoint without it would compute different positions',
  );
}

/** HF _compute_llama3_parameters: long wavelengths divided by factor, short kept, a smooth blend between. */
function llama3(inv: Float32Array, s: RopeScaling, source: string): Float32Array {
  const need = (v: number | undefined, name: string): number => {
    if (v === undefined || !Number.isFinite(v))
      throw new InputError(source, `rope_scaling "llama3" needs "${name}"`);
    return v;
  };
  const factor = s.factor;
  const low = need(s.lowFreqFactor, 'low_freq_factor');
  const high = need(s.highFreqFactor, 'high_freq_factor');
  const oldCtx = need(s.originalMaxPositionEmbeddings, 'original_max_position_embeddings');
  if (!(high > low))
    throw new InputError(
      source,
      `rope_scaling "llama3" needs high_freq_factor > low_freq_factor (got ${high} and ${low})`,
    );
  // Python floats (scalars), as HF computes them.
  const lowWavelen = oldCtx / low;
  const highWavelen = oldCtx / high;
  const out = new Float32Array(inv.length);
  for (let i = 0; i < inv.length; i++) {
    const x = inv[i];
    // torch float32 tensor ops with Python scalars: the scalar is cast to float32, the result rounded.
    const wavelen = f(f(2 * Math.PI) / x);
    let y = wavelen > lowWavelen ? f(x / f(factor)) : x;
    const medium = !(wavelen < highWavelen) && !(wavelen > lowWavelen);
    if (medium) {
      const smooth = f(f(f(f(oldCtx) / wavelen) - f(low)) / f(high - low));
      y = f(f(f(f(1 - smooth) * y) / f(factor)) + f(smooth * y));
    }
    out[i] = y;
  }
  return out;
}
