/**
 * Causal grouped-query self-attention, plain loops (the reference; it does not depend on gemm).
 * q [B,Tq,Hq,hd]; k, v [B,Tk,Hkv,hd]; out [B,Tq,Hq,hd]; probs [B,Hq,Tq,Tk].
 * Query i may attend key j iff j <= (Tk - Tq) + i and keyMask[b*Tk + j] != 0; a row with no
 * admissible key gets probs 0 and out 0 (and, in the backward, zero gradients).
 */
import type { F32 } from '../kernels.js';

export function checkAttentionArgs(
  B: number,
  Tq: number,
  Tk: number,
  Hq: number,
  Hkv: number,
  hd: number,
): void {
  for (const [name, v] of [
    ['B', B],
    ['Tq', Tq],
    ['Tk', Tk],
    ['Hq', Hq],
    ['Hkv', Hkv],
    ['hd', hd],
  ] as const) {
    if (!Number.isInteger(v) || v < 1)
      throw new RangeError(`attention: ${name} must be a positive integer, got ${v}`);
  }
  if (Hq % Hkv !== 0) throw new RangeError(`attention: Hq (${Hq}) must be a multiple of Hkv (${Hkv})`);
}

export function attentionForward(
  out: F32,
  probs: F32,
  q: F32,
  k: F32,
  v: F32,
  keyMask: Uint8Array | null,
  B: number,
  Tq: number,
  Tk: number,
  Hq: number,
  Hkv: number,
  hd: number,
  scale: number,
): void {
  checkAttentionArgs(B, Tq, Tk, Hq, Hkv, hd);
  const group = Hq / Hkv;
  const shift = Tk - Tq;
  const acc = new Float64Array(hd);
  const sc = new Float64Array(Tk); // scores then exponentials, float64 whatever the buffers are
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < Hq; h++) {
      const kh = Math.floor(h / group);
      for (let i = 0; i < Tq; i++) {
        const qo = ((b * Tq + i) * Hq + h) * hd;
        const po = ((b * Hq + h) * Tq + i) * Tk;
        const last = Math.min(Tk - 1, shift + i);
        let mx = -Infinity,
          admissible = 0;
        for (let j = 0; j < Tk; j++) probs[po + j] = 0;
        for (let j = 0; j <= last; j++) {
          sc[j] = -Infinity;
          if (keyMask && keyMask[b * Tk + j] === 0) continue;
          admissible++;
          const ko = ((b * Tk + j) * Hkv + kh) * hd;
          let s = 0;
          for (let c = 0; c < hd; c++) s += q[qo + c] * k[ko + c];
          s *= scale;
          sc[j] = s;
          if (s > mx) mx = s;
        }
        // Decided by the count, not by mx: NaN scores must give NaN outputs, not a silent zero row.
        if (admissible === 0) {
          for (let c = 0; c < hd; c++) out[qo + c] = 0;
          continue;
        }
        let se = 0;
        for (let j = 0; j <= last; j++) {
          if (sc[j] === -Infinity) continue;
          const e = Math.exp(sc[j] - mx);
          sc[j] = e;
          se += e;
        }
        const inv = 1 / se;
        acc.fill(0);
        for (let j = 0; j <= last; j++) {
          if (sc[j] === -Infinity) continue;
          const p = sc[j] * inv;
          probs[po + j] = p;
          const vo = ((b * Tk + j) * Hkv + kh) * hd;
          for (let c = 0; c < hd; c++) acc[c] += p * v[vo + c];
        }
        for (let c = 0; c < hd; c++) out[qo + c] = acc[c];
      }
    }
  }
}

/**
 * Standard softmax backward: dP_ij = dout_i . v_j, dS_ij = P_ij (dP_ij - sum_j P_ij dP_ij),
 * dq_i = scale sum_j dS_ij k_j, dk_j = scale sum_i dS_ij q_i, dv_j = sum_i P_ij dout_i
 * (kv gradients summed over the query heads of their group). Inadmissible pairs have P = 0 and
 * contribute nothing.
 */
export function attentionBackward(
  dq: F32,
  dk: F32,
  dv: F32,
  dout: F32,
  q: F32,
  k: F32,
  v: F32,
  probs: F32,
  B: number,
  Tq: number,
  Tk: number,
  Hq: number,
  Hkv: number,
  hd: number,
  scale: number,
): void {
  checkAttentionArgs(B, Tq, Tk, Hq, Hkv, hd);
  const group = Hq / Hkv;
  const shift = Tk - Tq;
  dq.fill(0, 0, B * Tq * Hq * hd);
  dk.fill(0, 0, B * Tk * Hkv * hd);
  dv.fill(0, 0, B * Tk * Hkv * hd);
  const dp = new Float64Array(Tk);
  const acc = new Float64Array(hd);
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < Hq; h++) {
      const kh = Math.floor(h / group);
      for (let i = 0; i < Tq; i++) {
        const qo = ((b * Tq + i) * Hq + h) * hd;
        const po = ((b * Hq + h) * Tq + i) * Tk;
        const last = Math.min(Tk - 1, shift + i);
        let dsum = 0;
        for (let j = 0; j <= last; j++) {
          const p = probs[po + j];
          if (p === 0) {
            dp[j] = 0;
            continue;
          }
          const vo = ((b * Tk + j) * Hkv + kh) * hd;
          let s = 0;
          for (let c = 0; c < hd; c++) s += dout[qo + c] * v[vo + c];
          dp[j] = s;
          dsum += p * s;
          for (let c = 0; c < hd; c++) dv[vo + c] += p * dout[qo + c];
        }
        acc.fill(0);
        for (let j = 0; j <= last; j++) {
          const p = probs[po + j];
          if (p === 0) continue;
          const ds = scale * p * (dp[j] - dsum);
          const ko = ((b * Tk + j) * Hkv + kh) * hd;
          for (let c = 0; c < hd; c++) {
            acc[c] += ds * k[ko + c];
            dk[ko + c] += ds * q[qo + c];
          }
        }
        for (let c = 0; c < hd; c++) dq[qo + c] = acc[c];
      }
    }
  }
}
