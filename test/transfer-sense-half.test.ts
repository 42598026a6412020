// docs/method.md step 1 on a teacher stored bf16 (zoo/teacher-facts): its weights stay bf16 while
// sensing (θ read half in |θ · ∂L/∂θ|, products through the half kernels), and the sensitivities and
// losses equal those of the same teacher upcast to float32, streaming and in memory.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { openHfModel } from '../src/io/checkpoint.js';
import { float32View } from '../src/model/weights.js';
import { expectedTensorNames } from '../src/model/config.js';
import { runSense } from '../src/transfer/sense/run.js';
import { fromIds } from '../src/transfer/sense/seeds.js';
import { MemorySink } from '../src/transfer/sense/sink.js';
import { ROOT } from './model-helpers.js';

const TEACHER = join(ROOT, 'zoo', 'teacher-facts');

test('sensing a bf16 teacher equals sensing it upcast to float32', async () => {
  const src = openHfModel(TEACHER);
  const c = src.config;
  const seeds = [9, 14, 6].map((n, i) => {
    const ids = Array.from({ length: n }, (_, t) => (t * 31 + i * 17 + 3) % c.vocabSize);
    return fromIds(
      i,
      ids,
      ids.map((_, t) => (t >= 2 ? 1 : 0)),
      `seeds:${i + 1}`,
      i + 1,
    );
  });
  const ref = new MemorySink();
  const refLoss = await runSense({ config: c, weights: float32View(src.weights) }, seeds, ref, {
    streaming: false,
  });
  for (const streaming of [false, true]) {
    const got = new MemorySink();
    const loss = await runSense({ config: c, weights: src.weights }, seeds, got, { streaming });
    loss.losses.forEach((l, j) =>
      assert.ok(Math.abs(l.loss - refLoss.losses[j].loss) <= 1e-5 * refLoss.losses[j].loss),
    );
    for (const name of expectedTensorNames(c)) {
      const x = ref.get(name),
        y = got.get(name);
      let scale = 0;
      for (const v of x) scale = Math.max(scale, Math.abs(v));
      assert.ok(scale > 0, name);
      for (let i = 0; i < x.length; i++)
        assert.ok(
          Math.abs(x[i] - y[i]) <= 2e-5 * (Math.abs(x[i]) + 1e-3 * scale),
          `${streaming ? 'streaming' : 'in memory'} ${name}[${i}]: float32 ${x[i]} vs bf16 ${y[i]}`,
        );
    }
  }
  src.weights.close();
});
