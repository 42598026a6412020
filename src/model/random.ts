/**
 * Randomly initialised models of any config, deterministic by seed (tests and benchmarks).
 * Linear weights ~ N(0, 1/in) so activations keep their scale through depth; embeddings ~ N(0, 1);
 * norm weights 1 + N(0, 0.1^2) and biases N(0, 0.1^2), so every parameter matters to the output
 * (a gradient check on all-ones norms or zero biases would miss errors that multiply them).
 */
import { Rng } from '../engine/rng.js';
import { expectedShape, expectedTensorNames, type ModelConfig } from './config.js';
import { MemoryWeights } from './weights.js';
import { LlamaModel } from './model.js';

/** A small config with every feature switched on unless overridden. */
export function tinyConfig(over: Partial<ModelConfig> = {}): ModelConfig {
  return {
    arch: 'llama',
    vocabSize: 32,
    hiddenSize: 16,
    intermediateSize: 24,
    numLayers: 2,
    numHeads: 4,
    numKvHeads: 2,
    headDim: 6,
    rmsNormEps: 1e-5,
    ropeTheta: 10000,
    ropeScaling: null,
    ropeStyle: 'half',
    maxPositionEmbeddings: 128,
    tieWordEmbeddings: false,
    attentionBias: false,
    oBias: false,
    mlpBias: false,
    bosTokenId: 1,
    eosTokenId: [2],
    padTokenId: 0,
    torchDtype: 'float32',
    ...over,
  };
}

export function randomWeights(config: ModelConfig, seed: number): MemoryWeights {
  const rng = new Rng(seed);
  const tensors = new Map<string, { shape: number[]; data: Float32Array }>();
  for (const name of expectedTensorNames(config)) {
    const shape = expectedShape(config, name);
    const n = shape.reduce((a, b) => a * b, 1);
    const data = new Float32Array(n);
    if (name.endsWith('norm.weight')) rng.fillNormal(data, 1, 0.1);
    else if (name.endsWith('.bias')) rng.fillNormal(data, 0, 0.1);
    else if (name === 'model.embed_tokens.weight') rng.fillNormal(data, 0, 1);
    else rng.fillNormal(data, 0, 1 / Math.sqrt(shape[1]));
    tensors.set(name, { shape, data });
  }
  return new MemoryWeights(`random(seed=${seed})`, tensors);
}

export function randomModel(config: ModelConfig, seed: number): LlamaModel {
  return LlamaModel.load({ config, weights: randomWeights(config, seed) });
}
