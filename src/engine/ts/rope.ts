/**
 * Rotary position embedding, in place on x [rows, nHeads, headDim]; row r sits at position pos[r].
 * 'half' pairs element i with i + headDim/2 (HF rotate_half); 'pairs' pairs 2i with 2i+1 (llama2.c).
 * Both use invFreq[i] for pair i. The angle is the float32 product pos * invFreq[i], as HF computes
 * freqs in float32; cos and sin of it are then taken in float64 (HF takes them in float32: a
 * difference of at most an ulp of float32). The rotation is orthogonal, so the backward is the
 * inverse rotation (inverse = true rotates by -angle).
 */
import type { F32, RopeStyle } from '../kernels.js';

export function checkRopeArgs(headDim: number, invFreq: { length: number }, style: string): void {
  if (!(headDim >= 2) || headDim % 2 !== 0)
    throw new RangeError(`rope: headDim must be even and >= 2, got ${headDim}`);
  if (invFreq.length < headDim / 2) {
    throw new RangeError(
      `rope: invFreq has ${invFreq.length} entries, headDim ${headDim} needs ${headDim / 2}`,
    );
  }
  if (style !== 'half' && style !== 'pairs')
    throw new RangeError(`rope: style must be "half" or "pairs", got "${style}"`);
}

export function rope(
  x: F32,
  pos: Int32Array,
  rows: number,
  nHeads: number,
  headDim: number,
  invFreq: F32,
  style: RopeStyle,
  inverse: boolean,
): void {
  checkRopeArgs(headDim, invFreq, style);
  const half = headDim / 2;
  const cos = new Float64Array(half);
  const sin = new Float64Array(half);
  const sign = inverse ? -1 : 1;
  // Offsets of the two members of pair i: (i, i + half) or (2i, 2i + 1).
  const a0 = style === 'half' ? 1 : 2,
    b0 = style === 'half' ? half : 1;
  for (let r = 0; r < rows; r++) {
    const p = pos[r];
    for (let i = 0; i < half; i++) {
      const angle = Math.fround(p * Math.fround(invFreq[i]));
      cos[i] = Math.cos(angle);
      sin[i] = sign * Math.sin(angle);
    }
    for (let h = 0; h < nHeads; h++) {
      const o = (r * nHeads + h) * headDim;
      for (let i = 0; i < half; i++) {
        const ia = o + a0 * i,
          ib = ia + b0;
        const xa = x[ia],
          xb = x[ib];
        x[ia] = xa * cos[i] - xb * sin[i];
        x[ib] = xb * cos[i] + xa * sin[i];
      }
    }
  }
}
