/**
 * Loading a bf16 model (docs/precision.md): a random ~340 MB bf16 LLaMA written as HF shards, loaded
 * in a child process (so its peak RSS is the load's alone). Figures: the peak RSS growth during the
 * load divided by the weight bytes in the files (about 1: every tensor is read straight into its
 * final buffer, nothing twice), and the same files loaded as float32 (the old behaviour, about 2).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Recorder } from './lib.js';
import { fillFast } from './lib.js';
import { childSpec, runSelfChild } from './child.js';
import { tinyConfig } from '../src/model/random.js';
import { expectedShape, expectedTensorNames, type ModelConfig } from '../src/model/config.js';
import { float32View, type TensorInfo, type WeightSource } from '../src/model/weights.js';
import { openHfModel, writeHfModel } from '../src/io/checkpoint.js';
import { loadAllParams } from '../src/model/params.js';
import { LlamaModel } from '../src/model/model.js';

const CONFIG: ModelConfig = tinyConfig({
  vocabSize: 32000,
  hiddenSize: 1024,
  intermediateSize: 2816,
  numLayers: 8,
  numHeads: 16,
  numKvHeads: 16,
  headDim: 64,
  maxPositionEmbeddings: 2048,
  torchDtype: 'bfloat16',
});

/** Random weights made one tensor at a time while the writer streams them to disk. */
class GeneratedWeights implements WeightSource {
  readonly source = 'generated';
  constructor(private readonly c: ModelConfig) {}
  names(): string[] {
    return expectedTensorNames(this.c);
  }
  has(name: string): boolean {
    return this.names().includes(name);
  }
  info(name: string): TensorInfo {
    return { dtype: 'F32', shape: expectedShape(this.c, name) };
  }
  get(name: string): Float32Array {
    const shape = expectedShape(this.c, name);
    const a = new Float32Array(shape.reduce((x, y) => x * y, 1));
    if (shape.length === 1) return a.fill(1);
    return fillFast(a, name.length * 7919 + a.length, -0.05, 0.05);
  }
  close(): void {}
}

interface Spec {
  dir: string;
  float32: boolean;
  threads: number;
}
interface Result {
  rss_before_kb: number;
  max_rss_kb: number;
  param_bytes: number;
}

/** The child: open the folder, load every param, report the peak RSS. */
function child(spec: Spec): Result {
  global.gc?.();
  const before = process.memoryUsage().rss / 1024;
  const src = openHfModel(spec.dir);
  const ws = spec.float32 ? float32View(src.weights) : src.weights;
  const model = new LlamaModel(src.config, loadAllParams(ws, src.config));
  let bytes = 0;
  for (const p of model.params.unique()) bytes += p.bytes;
  return { rss_before_kb: before, max_rss_kb: process.resourceUsage().maxRSS, param_bytes: bytes };
}

export async function run(rec: Recorder): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'nuggets-halfload-'));
  try {
    writeHfModel(dir, CONFIG, new GeneratedWeights(CONFIG), { dtype: 'BF16', maxShardBytes: 100e6 });
    let fileBytes = 0;
    for (const n of expectedTensorNames(CONFIG))
      fileBytes += expectedShape(CONFIG, n).reduce((a, b) => a * b, 1) * 2;
    rec.note(`bf16 model: ${(fileBytes / 1e6).toFixed(0)} MB of weights in 100 MB shards`);
    const size = rec.record('halfload bf16 weights in the files', fileBytes / 2 ** 20, 'MiB');
    for (const float32 of [false, true]) {
      const r = runSelfChild<Result>(import.meta.url, { dir, float32, threads: 1 } as Spec);
      const grown = (r.max_rss_kb - r.rss_before_kb) / 1024;
      const what = float32 ? 'as float32 (upcast on load)' : 'kept bf16';
      rec.record(`halfload peak RSS growth loading ${what} / file size`, grown, 'MiB', size);
      rec.record(`halfload params in memory ${what}`, r.param_bytes / 2 ** 20, 'MiB', size);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const spec = childSpec<Spec>(import.meta.url);
if (spec) console.log(JSON.stringify(child(spec)));
