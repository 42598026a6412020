/** Random PEFT LoRA adapters for the tests, and the merged weights they must act like. */
import type { Rng } from '../../src/engine/rng.js';
import type { ModelConfig } from '../../src/model/config.js';
import { MemoryWeights, type WeightSource } from '../../src/model/weights.js';
import { factorShape, moduleRefs, weightName, type ModuleKind } from '../../src/transfer/modules.js';
import type { AdapterModule } from '../../src/transfer/peft.js';

/** N(0, std) factors drawn B then A per module, in moduleRefs order. */
export function randomAdapter(
  kinds: readonly ModuleKind[],
  config: ModelConfig,
  rng: Rng,
  o: { r: number; alpha: number; std?: number },
): AdapterModule[] {
  const { r, alpha, std = 1 } = o;
  return moduleRefs(kinds, config.numLayers).map((ref) => {
    const [n, m] = factorShape(ref.kind, config);
    return {
      ref,
      r,
      alpha,
      B: rng.fillNormal(new Float32Array(n * r), 0, std),
      A: rng.fillNormal(new Float32Array(r * m), 0, std),
    };
  });
}

/**
 * An independent reference for an attached adapter: a copy of the weights with each adapted module
 * merged in plain loops, W + (alpha / r) B A (factors as stored, PEFT semantics).
 */
export function mergedWeights(
  weights: WeightSource,
  config: ModelConfig,
  modules: readonly AdapterModule[],
): MemoryWeights {
  const tensors = new Map<string, { shape: number[]; data: Float32Array }>();
  for (const name of weights.names())
    tensors.set(name, { shape: weights.info(name).shape, data: weights.get(name) });
  for (const m of modules) {
    const W = tensors.get(weightName(m.ref, config))!.data;
    const [n, k] = factorShape(m.ref.kind, config);
    const s = m.alpha / m.r;
    for (let i = 0; i < n; i++) {
      for (let j = 0; j < k; j++) {
        let acc = 0;
        for (let t = 0; t < m.r; t++) acc += m.B[i * m.r + t] * m.A[t * k + j];
        W[i * k + j] += s * acc;
      }
    }
  }
  return new MemoryWeights('merged', tensors);
}
