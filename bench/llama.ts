/**
 * The random LLaMA the model, train and eval benches run (~110M parameters at their sizes): its
 * config from the spec fields the PyTorch programs read too (bench/torch/llama.py), and weights at a
 * trained LLaMA's scale drawn fast.
 */
import { fillFast } from './lib.js';
import { expectedShape, expectedTensorNames, type ModelConfig } from '../src/model/config.js';
import { tinyConfig } from '../src/model/random.js';
import { MemoryWeights } from '../src/model/weights.js';

/** Architecture fields of a bench spec (the Python scripts' names). */
export interface LlamaSpec {
  vocab: number;
  d: number;
  layers: number;
  heads: number;
  kv_heads: number;
  mlp: number;
  tied: boolean;
}

/** The ModelConfig of a spec: head dim d / heads, RMSNorm eps 1e-5, RoPE theta 10000 (as the Python side). */
export function specConfig(s: LlamaSpec, maxPositions: number): ModelConfig {
  return tinyConfig({
    vocabSize: s.vocab,
    hiddenSize: s.d,
    intermediateSize: s.mlp,
    numLayers: s.layers,
    numHeads: s.heads,
    numKvHeads: s.kv_heads,
    headDim: s.d / s.heads,
    maxPositionEmbeddings: maxPositions,
    tieWordEmbeddings: s.tied,
    rmsNormEps: 1e-5,
    ropeTheta: 10000,
  });
}

/** Weights at a trained LLaMA's scale (std 0.02, norms 1), drawn fast (uniform of that std). */
export function benchWeights(c: ModelConfig, source = 'bench'): MemoryWeights {
  const a = 0.02 * Math.sqrt(3);
  const tensors = new Map<string, { shape: number[]; data: Float32Array }>();
  let seed = 1;
  for (const name of expectedTensorNames(c)) {
    const shape = expectedShape(c, name);
    const data = new Float32Array(shape.reduce((x, y) => x * y, 1));
    if (name.endsWith('norm.weight')) data.fill(1);
    else fillFast(data, seed++, -a, a);
    tensors.set(name, { shape, data });
  }
  return new MemoryWeights(source, tensors);
}

/** Parameters of the model the config describes (tied embeddings counted once). */
export function parameterCount(c: ModelConfig): number {
  return expectedTensorNames(c).reduce((n, name) => n + expectedShape(c, name).reduce((a, b) => a * b, 1), 0);
}
