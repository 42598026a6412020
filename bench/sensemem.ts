/**
 * Sensing with bounded memory (docs/memory.md): peak RSS of streaming `sense` on random teachers of
 * the same width at two depths, 8 and 32 layers (d 128, MLP 256, vocab 512, 32 seeds x 512 tokens,
 * so that the seeds' layer-boundary states, (L + 1) x tokens x d floats, dominate the layer
 * weights), with the boundary states kept in memory (--spill never) and spilled to scratch files
 * (--spill always). Each run is a child process that reports its own peak RSS (VmHWM); the
 * sensitivities go to a DiskSink as in the CLI. Target: the spilled peak does not grow with depth.
 *
 * Run alone with `npm run bench -- --only sensemem` (about 2 minutes on 2 cores).
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Recorder } from './lib.js';
import { childSpec, runSelfChild } from './child.js';
import { LazyRandomWeights } from './sense.js';
import { tinyConfig } from '../src/model/random.js';
import { Rng } from '../src/engine/rng.js';
import { runSense } from '../src/transfer/sense/run.js';
import { fromIds } from '../src/transfer/sense/seeds.js';
import { DiskSink } from '../src/transfer/sense/sink.js';
import { boundaryBytes } from '../src/transfer/sense/boundaries.js';

interface Spec {
  threads: number;
  layers: number;
  spill: 'always' | 'never';
}
interface Result {
  peakKb: number;
  startKb: number;
  seconds: number;
}

const SEEDS = 32,
  T = 512;
const config = (layers: number) =>
  tinyConfig({
    vocabSize: 512,
    hiddenSize: 128,
    intermediateSize: 256,
    numLayers: layers,
    numHeads: 4,
    numKvHeads: 4,
    headDim: 32,
    maxPositionEmbeddings: T,
    padTokenId: null,
  });

/** The child: one streaming sense run; prints its peak RSS. */
async function child(spec: Spec): Promise<Result> {
  const c = config(spec.layers);
  const rng = new Rng(7);
  const seeds = Array.from({ length: SEEDS }, (_, i) => {
    const ids = Array.from({ length: T }, () => rng.int(c.vocabSize));
    return fromIds(
      i,
      ids,
      ids.map((_, t) => (t >= 64 ? 1 : 0)),
      `seed ${i}`,
    );
  });
  const dir = mkdtempSync(join(tmpdir(), 'nuggets-sensemem-'));
  const startKb = Number(/VmRSS:\s+(\d+)/.exec(readFileSync('/proc/self/status', 'utf8'))![1]);
  const sink = new DiskSink(join(dir, 'sens.safetensors'));
  try {
    const r = await runSense({ config: c, weights: new LazyRandomWeights(c, 3) }, seeds, sink, {
      spill: spec.spill,
      scratchDir: dir,
    });
    const peakKb = Number(/VmHWM:\s+(\d+)/.exec(readFileSync('/proc/self/status', 'utf8'))![1]);
    return { peakKb, startKb, seconds: r.seconds };
  } finally {
    sink.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

export async function run(rec: Recorder): Promise<void> {
  const threads = cpus().length;
  const peaks = new Map<string, number>();
  for (const spill of ['never', 'always'] as const) {
    for (const layers of [8, 32]) {
      const spec: Spec = { threads, layers, spill };
      const r = runSelfChild<Result>(import.meta.url, spec);
      const bounds = boundaryBytes(layers, SEEDS * T, 128) / 2 ** 20;
      const mb = r.peakKb / 1024;
      peaks.set(`${spill} ${layers}`, mb);
      const what = spill === 'never' ? 'boundaries in memory' : 'boundaries spilled';
      const base =
        spill === 'never'
          ? { name: 'boundary states (L+1) x tokens x d x 4', value: bounds }
          : { name: 'same run, 8 layers', value: peaks.get('always 8')! };
      rec.record(
        `sense streaming peak RSS, ${layers} layers (d 128, ${SEEDS} seeds x ${T} tokens), ${what}`,
        mb,
        'MB',
        base,
      );
      rec.note(
        `${layers} layers, spill ${spill}: ${r.seconds.toFixed(1)} s, RSS before the run ${(r.startKb / 1024).toFixed(0)} MB, boundary states ${bounds.toFixed(0)} MB`,
      );
    }
  }
  rec.note(
    `growth 8 -> 32 layers: in memory +${(peaks.get('never 32')! - peaks.get('never 8')!).toFixed(0)} MB, ` +
      `spilled +${(peaks.get('always 32')! - peaks.get('always 8')!).toFixed(0)} MB`,
  );
}

const spec = childSpec<Spec>(import.meta.url);
if (spec) console.log(JSON.stringify(await child(spec)));
