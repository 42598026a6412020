/**
 * The figures of docs/precision.md: for each bundled model, the largest logit difference between the
 * float32 model and the same model run with bf16/f16 weights (converted here where the file holds
 * float32) under each compute dtype, on a fixed batch of 4 x 64 token ids.
 *
 *   node --import tsx scripts/precision-figures.ts
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openHfModel, writeHfModel } from '../src/io/checkpoint.js';
import { LlamaModel } from '../src/model/model.js';
import { loadAllParams } from '../src/model/params.js';
import { float32View } from '../src/model/weights.js';
import { setComputeDtype, type ComputeDtype } from '../src/engine/half.js';
import { kernels } from '../src/engine/backend.js';

const MODELS = ['zoo/teacher-facts', 'zoo/student-tiny', 'zoo/stories260k'];

function logits(
  path: string,
  float32: boolean,
  compute: ComputeDtype,
  ids: Int32Array,
  T: number,
): Float32Array {
  const src = openHfModel(path);
  const ws = float32 ? float32View(src.weights) : src.weights;
  const m = new LlamaModel(src.config, loadAllParams(ws, src.config));
  setComputeDtype(compute);
  const out = m.forward({ ids, B: ids.length / T, T }).slice();
  setComputeDtype('f32');
  src.weights.close();
  return out;
}

function argmax(a: Float32Array, o: number, V: number): number {
  let best = o;
  for (let i = o; i < o + V; i++) if (a[i] > a[best]) best = i;
  return best - o;
}

function stats(a: Float32Array, ref: Float32Array, V: number): string {
  let d = 0,
    r = 0,
    same = 0;
  for (let i = 0; i < a.length; i++) {
    d = Math.max(d, Math.abs(a[i] - ref[i]));
    r = Math.max(r, Math.abs(ref[i]));
  }
  const rows = a.length / V;
  for (let t = 0; t < rows; t++) if (argmax(a, t * V, V) === argmax(ref, t * V, V)) same++;
  return `max |diff| ${d.toExponential(2)} (${((100 * d) / r).toPrecision(2)}% of max |logit| ${r.toFixed(1)}) | top-1 agrees ${same}/${rows}`;
}

console.log(`backend ${kernels().name}`);
const T = 64;
for (const model of MODELS) {
  const src = openHfModel(model);
  const { config } = src;
  const stored = src.weights.info('model.layers.0.self_attn.q_proj.weight').dtype;
  const ids = Int32Array.from({ length: 4 * T }, (_, i) => (i * 7919 + 13) % config.vocabSize);
  const ref = logits(model, true, 'f32', ids, T);
  const tmp = mkdtempSync(join(tmpdir(), 'nuggets-precision-'));
  try {
    for (const dtype of ['BF16', 'F16'] as const) {
      let path = model;
      if (stored !== dtype) {
        path = join(tmp, dtype);
        writeHfModel(path, config, src.weights, { dtype });
      }
      for (const compute of ['f32', 'bf16'] as const) {
        const got = logits(path, false, compute, ids, T);
        console.log(
          `${model} (file ${stored}) | ${dtype} weights | compute ${compute} | ${stats(got, ref, config.vocabSize)}`,
        );
      }
    }
  } finally {
    rmSync(tmp, { recursive: true, force: true });
    src.weights.close();
  }
}
