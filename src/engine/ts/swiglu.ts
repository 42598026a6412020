/** The SiLU-gated MLP product of LLaMA: out = silu(gate) * up, silu(g) = g * sigmoid(g). */
import type { F32 } from '../kernels.js';

export function swigluForward(out: F32, gate: F32, up: F32, n: number): void {
  for (let i = 0; i < n; i++) {
    const g = gate[i];
    out[i] = (g / (1 + Math.exp(-g))) * up[i];
  }
}

/** d silu(g)/dg = sig(g) * (1 + g * (1 - sig(g))). dgate/dup may alias dout (each element is read before it is written). */
export function swigluBackward(dgate: F32, dup: F32, dout: F32, gate: F32, up: F32, n: number): void {
  for (let i = 0; i < n; i++) {
    const g = gate[i];
    const d = dout[i];
    const sig = 1 / (1 + Math.exp(-g));
    const u = up[i];
    dup[i] = d * g * sig;
    dgate[i] = d * u * sig * (1 + g * (1 - sig));
  }
}
