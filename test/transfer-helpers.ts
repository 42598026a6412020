/** Shared helpers of the test/transfer-*.test.ts files (not a test file itself). */
import type { ModelConfig } from '../src/model/config.js';
import { expectedShape, expectedTensorNames } from '../src/model/config.js';
import { MemoryWeights } from '../src/model/weights.js';
import { Rng } from '../src/engine/rng.js';
import { orthonormal } from './helpers/linalg.js';

/** A tiny LLaMA config; override any field. */
export function tinyConfig(o: Partial<ModelConfig> = {}): ModelConfig {
  return {
    arch: 'llama',
    vocabSize: 32,
    hiddenSize: 16,
    intermediateSize: 24,
    numLayers: 2,
    numHeads: 4,
    numKvHeads: 2,
    headDim: 4,
    rmsNormEps: 1e-5,
    ropeTheta: 10000,
    ropeScaling: null,
    ropeStyle: 'half',
    maxPositionEmbeddings: 64,
    tieWordEmbeddings: false,
    attentionBias: false,
    oBias: false,
    mlpBias: false,
    bosTokenId: 1,
    eosTokenId: [2],
    padTokenId: null,
    torchDtype: 'float32',
    ...o,
  };
}

/** Every tensor of `cfg` filled by `fill(name, n)`. */
export function modelTensors(
  cfg: ModelConfig,
  fill: (name: string, n: number) => Float32Array,
): MemoryWeights {
  const m = new Map<string, { shape: number[]; data: Float32Array }>();
  for (const name of expectedTensorNames(cfg)) {
    const shape = expectedShape(cfg, name);
    const n = shape.reduce((a, b) => a * b, 1);
    m.set(name, { shape, data: fill(name, n) });
  }
  return new MemoryWeights(`memory:${cfg.hiddenSize}x${cfg.numLayers}`, m);
}

/** Random normal weights and |normal| sensitivities, seeded. */
export function randomModel(cfg: ModelConfig, seed: number): { weights: MemoryWeights; sens: MemoryWeights } {
  const rng = new Rng(seed);
  const weights = modelTensors(cfg, (_n, n) => rng.fillNormal(new Float32Array(n), 0, 0.5));
  const sens = modelTensors(cfg, (_n, n) => {
    const a = rng.fillNormal(new Float32Array(n));
    for (let i = 0; i < n; i++) a[i] = Math.abs(a[i]);
    return a;
  });
  return { weights, sens };
}

/** C = A[n,k]·B[k,m] in float64 (independent of the kernels). */
export function matmul64(
  A: ArrayLike<number>,
  B: ArrayLike<number>,
  n: number,
  k: number,
  m: number,
): Float64Array {
  const C = new Float64Array(n * m);
  for (let i = 0; i < n; i++) {
    for (let p = 0; p < k; p++) {
      const a = A[i * k + p];
      for (let j = 0; j < m; j++) C[i * m + j] += a * B[p * m + j];
    }
  }
  return C;
}

export function transpose64(X: ArrayLike<number>, rows: number, cols: number): Float64Array {
  const out = new Float64Array(rows * cols);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[c * rows + r] = X[r * cols + c];
  return out;
}

export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`length ${a.length} vs ${b.length}`);
  let d = 0;
  for (let i = 0; i < a.length; i++) d = Math.max(d, Math.abs(a[i] - b[i]));
  return d;
}

/**
 * A [n, m] matrix with a known spectrum: X = P diag(s) Qᵀ (P [n,k], Q [m,k] orthonormal). Its best
 * rank-r approximation is P_r diag(s_r) Q_rᵀ exactly (Eckart-Young), independent of any SVD code.
 */
export function knownSpectrum(n: number, m: number, s: number[], rng: Rng) {
  const k = s.length;
  const P = orthonormal(n, k, rng);
  const Q = orthonormal(m, k, rng);
  const rankR = (r: number) => {
    const X = new Float64Array(n * m);
    for (let i = 0; i < n; i++) {
      for (let j = 0; j < m; j++) {
        let v = 0;
        for (let c = 0; c < r; c++) v += P[i * k + c] * s[c] * Q[j * k + c];
        X[i * m + j] = v;
      }
    }
    return X;
  };
  return { X: Float32Array.from(rankR(k)), rankR };
}
