/** Input and numeric checks of docs/method.md step 1: each refusal names the seed, tensor or file. */
import { kernels } from '../../engine/backend.js';
import { InputError } from '../../errors.js';
import { expectedShape, expectedTensorNames, type ModelConfig } from '../../model/config.js';
import type { WeightSource } from '../../model/weights.js';
import type { SenseExample } from './types.js';

/** A NaN/Inf in a gradient: names the seed and the tensor (docs/method.md step 1 cannot continue). */
export class NonFiniteGradient extends InputError {
  constructor(ex: SenseExample, tensor: string, detail: string) {
    super(
      ex.source,
      `seed ${ex.index}${ex.line !== null ? ` (line ${ex.line})` : ''}: the gradient of ${tensor} ${detail}; sensitivity stopped`,
    );
    this.name = 'NonFiniteGradient';
  }
}

/** "NaN at element i" / "+Inf at element i" for the first non-finite value. */
export function describeNonFinite(x: ArrayLike<number>): string {
  for (let i = 0; i < x.length; i++) {
    const v = x[i];
    if (!Number.isFinite(v)) return `${Number.isNaN(v) ? 'NaN' : v > 0 ? '+Inf' : '-Inf'} at element ${i}`;
  }
  return 'no non-finite value found';
}

/** Throws NonFiniteGradient when g holds NaN/Inf (a float64 sum of finite float32 values is finite). */
export function checkGradient(g: Float32Array, n: number, tensor: string, ex: SenseExample): void {
  if (Number.isFinite(kernels().sum(g, n))) return;
  throw new NonFiniteGradient(ex, tensor, `holds ${describeNonFinite(g.subarray(0, n))}`);
}

export function checkLoss(loss: number, ex: SenseExample): void {
  if (!Number.isFinite(loss))
    throw new NonFiniteGradient(ex, 'the loss', `is ${loss} (the forward pass overflowed)`);
}

/** Refuses ids and targets outside the vocabulary, naming the seed. */
export function checkExample(ex: SenseExample, c: ModelConfig): void {
  const V = c.vocabSize;
  if (ex.ids.length === 0) throw new InputError(ex.source, `seed ${ex.index} has no tokens`);
  if (ex.ids.length > c.maxPositionEmbeddings) {
    throw new InputError(
      ex.source,
      `seed ${ex.index} has ${ex.ids.length} tokens, more than the model's context of ${c.maxPositionEmbeddings}`,
    );
  }
  for (let t = 0; t < ex.ids.length; t++) {
    const id = ex.ids[t];
    if (!(id >= 0 && id < V))
      throw new InputError(
        ex.source,
        `seed ${ex.index}: token id ${id} at position ${t} is outside the vocabulary [0, ${V})`,
      );
  }
  for (let t = 0; t < ex.targets.length; t++) {
    const tg = ex.targets[t];
    if (tg >= V)
      throw new InputError(
        ex.source,
        `seed ${ex.index}: target id ${tg} at position ${t} is outside the vocabulary [0, ${V})`,
      );
  }
}

/** Every tensor the config names is present with its shape (headers only: cheap, before any work). */
export function checkTeacherTensors(ws: WeightSource, c: ModelConfig): void {
  const problems: string[] = [];
  for (const name of expectedTensorNames(c)) {
    if (!ws.has(name)) {
      problems.push(`missing tensor ${name}`);
      continue;
    }
    const got = ws.info(name).shape,
      want = expectedShape(c, name);
    if (got.join() !== want.join())
      problems.push(
        `tensor ${name} has shape [${got.join(', ')}] but the config implies [${want.join(', ')}]`,
      );
  }
  if (problems.length)
    throw new InputError(
      ws.source,
      problems.slice(0, 8).join('; ') + (problems.length > 8 ? `; ... (${problems.length} problems)` : ''),
    );
}
