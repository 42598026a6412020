/**
 * A batch of token sequences, B rows of T tokens, batch-major. Padding may be on either side;
 * RoPE positions come from the mask (HF generate's `cumsum(mask) - 1`), so left-padded prompts get
 * the same positions as unpadded ones, and right padding equals the plain 0..T-1 on real tokens.
 */
import type { SeqContext } from './block.js';

export interface Batch {
  /** Token ids [B*T]; ids at padded places must still be valid ids (any, e.g. 0). */
  ids: Int32Array;
  B: number;
  T: number;
  /** 1 = real token, 0 = padding, [B*T]. Omitted = no padding. */
  attentionMask?: Uint8Array;
  /**
   * Embedding outputs [B*T, d] to use instead of looking `ids` up (HF `inputs_embeds`); the
   * gradient wrt them is `inputGrad` after backward, and the embedding gets no gradient.
   */
  inputEmbeds?: Float32Array;
}

/**
 * Position of every token: the number of real tokens before it in its sequence. Padded places get
 * position 0 (they are masked as keys; their outputs are never used).
 */
export function positionsFromMask(
  mask: Uint8Array | undefined,
  B: number,
  T: number,
  out: Int32Array = new Int32Array(B * T),
): Int32Array {
  for (let b = 0; b < B; b++) {
    let n = 0;
    for (let t = 0; t < T; t++) {
      const i = b * T + t;
      if (!mask || mask[i]) out[i] = n++;
      else out[i] = 0;
    }
  }
  return out;
}

/** The attention context of a plain (uncached) forward of `batch`: what a DecoderLayer needs. */
export function seqContext(batch: Batch): SeqContext {
  checkBatch(batch);
  const N = batch.B * batch.T;
  return {
    B: batch.B,
    T: batch.T,
    positions: positionsFromMask(batch.attentionMask, batch.B, batch.T),
    keyMask: batch.attentionMask ? batch.attentionMask.subarray(0, N) : null,
  };
}

export function checkBatch(batch: Batch): void {
  const { ids, B, T, attentionMask } = batch;
  if (!(Number.isInteger(B) && B > 0 && Number.isInteger(T) && T > 0))
    throw new RangeError(`batch: B=${B}, T=${T} must be positive integers`);
  if (ids.length < B * T) throw new RangeError(`batch: ${ids.length} ids for B*T = ${B * T}`);
  if (attentionMask && attentionMask.length < B * T)
    throw new RangeError(`batch: attention mask has ${attentionMask.length} entries for B*T = ${B * T}`);
}

/**
 * Builds a padded batch from token lists. Left padding is what generation needs (the last token of
 * every sequence sits at column T-1); right padding is the usual choice for training.
 */
export function padBatch(
  seqs: readonly (readonly number[])[],
  side: 'left' | 'right',
  padId = 0,
): Batch & { attentionMask: Uint8Array } {
  const B = seqs.length;
  if (B === 0) throw new RangeError('padBatch: no sequences');
  const T = Math.max(...seqs.map((s) => s.length));
  if (T === 0) throw new RangeError('padBatch: every sequence is empty');
  const ids = new Int32Array(B * T).fill(padId);
  const attentionMask = new Uint8Array(B * T);
  seqs.forEach((s, b) => {
    const off = b * T + (side === 'left' ? T - s.length : 0);
    for (let t = 0; t < s.length; t++) {
      ids[off + t] = s[t];
      attentionMask[off + t] = 1;
    }
  });
  return { ids, B, T, attentionMask };
}
