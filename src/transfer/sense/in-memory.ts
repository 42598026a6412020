/** The in-memory executor of docs/method.md step 1: the reference the streaming executor is tested against. */
import { expectedShape, expectedTensorNames } from '../../model/config.js';
import { LlamaModel } from '../../model/model.js';
import { accumulateSensitivity } from '../../model/params.js';
import { tick } from './abort.js';
import { checkGradient, checkLoss } from './checks.js';
import { seedLoss } from './seeds.js';
import type { SensSink } from './sink.js';
import type { SeedLoss, SenseExample, SenseRunOptions, TeacherSource } from './types.js';

/** The whole model in memory with a gradient for every parameter (the reference executor). */
export async function senseInMemory(
  src: TeacherSource,
  examples: readonly SenseExample[],
  sink: SensSink,
  opts: SenseRunOptions = {},
): Promise<SeedLoss[]> {
  const c = src.config;
  const model = LlamaModel.load(src);
  model.enableGrads();
  const params = model.params.unique();
  const S = new Map(params.map((p) => [p.name, new Float32Array(p.size)]));
  const losses: SeedLoss[] = [];
  let lossSum = 0;
  for (const [j, ex] of examples.entries()) {
    model.zeroGrads();
    const loss = model.loss({ ids: ex.ids, B: 1, T: ex.ids.length }, ex.targets);
    checkLoss(loss, ex);
    model.backward();
    for (const p of params) {
      checkGradient(p.grad!, p.size, p.name, ex);
      accumulateSensitivity(S.get(p.name)!, p);
    }
    losses.push(seedLoss(ex, loss));
    lossSum += loss;
    opts.onProgress?.(j + 1, examples.length, {
      seed: `${j + 1}/${examples.length}`,
      loss: lossSum / (j + 1),
    });
    await tick(opts.signal);
  }
  for (const name of expectedTensorNames(c)) sink.put(name, expectedShape(c, name), S.get(name)!);
  return losses;
}
