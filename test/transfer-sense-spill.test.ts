// Sensing with bounded memory: the streaming executor's layer-boundary states spilled to scratch
// files give exactly the sensitivities of the in-memory states (untied, tied, Qwen2 biases), the
// scratch folder is gone after success, abort and error, the spill options are validated, and
// f16 sensitivity files round-trip through `sense` and `sense merge`.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomWeights, tinyConfig } from '../src/model/random.js';
import { expectedTensorNames, type ModelConfig } from '../src/model/config.js';
import { MemoryWeights } from '../src/model/weights.js';
import { Rng } from '../src/engine/rng.js';
import { floatToHalf, halfToFloat } from '../src/engine/dtype.js';
import { SenseAborted } from '../src/transfer/sense/abort.js';
import { NonFiniteGradient } from '../src/transfer/sense/checks.js';
import { runSense } from '../src/transfer/sense/run.js';
import { fromIds } from '../src/transfer/sense/seeds.js';
import { MemorySink } from '../src/transfer/sense/sink.js';
import {
  DiskBoundaries,
  SCRATCH_PREFIX,
  SPILL_AUTO_BYTES,
  boundaryBytes,
  openBoundaries,
} from '../src/transfer/sense/boundaries.js';
import { F16Fit, writeSensitivityFile } from '../src/transfer/sense/writer.js';
import type { SensSummary } from '../src/transfer/sense/summary.js';
import type { SenseExample, SenseRunOptions } from '../src/transfer/sense/types.js';
import { senseCommand } from '../src/transfer/sense/command.js';
import { resolveOptions } from '../src/config/cli.js';
import { openSafetensors } from '../src/io/safetensors.js';
import { mergeSensitivity } from '../src/transfer/shard.js';

const TEACHER = join(import.meta.dirname, '..', 'data', 'stories260k', 'checkpoint_legacy.bin');
const dir = mkdtempSync(join(tmpdir(), 'nuggets-spill-'));
test.after(() => rmSync(dir, { recursive: true, force: true }));

function seeds(c: ModelConfig, seed: number, lengths: number[]): SenseExample[] {
  const rng = new Rng(seed);
  return lengths.map((n, i) => {
    const ids = Array.from({ length: n }, () => rng.int(c.vocabSize));
    const prompt = Math.max(1, Math.floor(n / 3));
    return fromIds(
      i,
      ids,
      ids.map((_, t) => (t >= prompt ? 1 : 0)),
      `seeds:${i + 1}`,
      i + 1,
    );
  });
}

/** A fresh empty scratch folder, and the spill folders seen in it while a run progresses. */
function watchedScratch(name: string) {
  const made = mkdtempSync(join(dir, `${name}-`));
  const seen = { folders: 0, files: 0 };
  return {
    scratch: made,
    seen,
    onProgress: () => {
      const inside = readdirSync(made).filter((f) => f.startsWith(SCRATCH_PREFIX));
      seen.folders = Math.max(seen.folders, inside.length);
      for (const f of inside) seen.files = Math.max(seen.files, readdirSync(join(made, f)).length);
    },
  };
}

async function threeWays(c: ModelConfig, weightsSeed: number, ex: SenseExample[], name: string) {
  const w = randomWeights(c, weightsSeed);
  const inMemory = new MemorySink();
  const a = await runSense({ config: c, weights: w }, ex, inMemory, { streaming: false });
  const kept = new MemorySink();
  const b = await runSense({ config: c, weights: w }, ex, kept, { streaming: true, spill: 'never' });
  const watch = watchedScratch(name);
  const spilled = new MemorySink();
  const opts: SenseRunOptions = {
    streaming: true,
    spill: 'always',
    scratchDir: watch.scratch,
    onProgress: watch.onProgress,
  };
  const s = await runSense({ config: c, weights: w }, ex, spilled, opts);
  // it really spilled: one boundary file per layer boundary existed during the run, and none is left
  assert.equal(watch.seen.folders, 1);
  assert.equal(watch.seen.files, c.numLayers + 1);
  assert.deepEqual(readdirSync(watch.scratch), []);
  for (const name of expectedTensorNames(c)) {
    const x = kept.get(name),
      y = spilled.get(name),
      z = inMemory.get(name);
    // same arithmetic on the same values: bit for bit
    assert.deepEqual(y, x, `${name}: spilled vs in-memory boundaries`);
    let scale = 0;
    for (const v of z) scale = Math.max(scale, Math.abs(v));
    assert.ok(scale > 0, `${name}: all zero`);
    for (let i = 0; i < z.length; i++)
      assert.ok(
        Math.abs(z[i] - y[i]) <= 2e-5 * (Math.abs(z[i]) + 1e-3 * scale),
        `${name}[${i}]: whole model ${z[i]} vs spilled streaming ${y[i]}`,
      );
  }
  for (let j = 0; j < ex.length; j++) {
    assert.equal(s.losses[j].loss, b.losses[j].loss);
    assert.ok(Math.abs(s.losses[j].loss - a.losses[j].loss) < 1e-6);
  }
}

test('spilled boundaries give the same S bit for bit as boundaries in memory: untied GQA LLaMA', async () => {
  const c = tinyConfig({ numLayers: 3 });
  await threeWays(c, 31, seeds(c, 1, [7, 12, 5, 9]), 'untied');
});

test('spilled boundaries give the same S bit for bit: tied embeddings', async () => {
  const c = tinyConfig({ tieWordEmbeddings: true, numLayers: 2 });
  await threeWays(c, 32, seeds(c, 2, [6, 11, 8]), 'tied');
});

test('spilled boundaries give the same S bit for bit: Qwen2-style biases', async () => {
  const c = tinyConfig({
    arch: 'qwen2',
    attentionBias: true,
    oBias: true,
    mlpBias: true,
    numKvHeads: 1,
    numLayers: 2,
  });
  await threeWays(c, 33, seeds(c, 3, [9, 4]), 'qwen2');
});

test('the scratch folder is removed after an abort and after an error', async () => {
  const c = tinyConfig({ numLayers: 3 });
  const w = randomWeights(c, 34);
  const ex = seeds(c, 4, [6, 6, 6]);
  // abort in the middle of the forward pass (files exist by then)
  const watch = watchedScratch('abort');
  const ac = new AbortController();
  let calls = 0;
  await assert.rejects(
    runSense({ config: c, weights: w }, ex, new MemorySink(), {
      spill: 'always',
      scratchDir: watch.scratch,
      signal: ac.signal,
      onProgress: () => {
        watch.onProgress();
        if (++calls === 7) ac.abort();
      },
    }),
    SenseAborted,
  );
  assert.ok(watch.seen.files >= 2, `only ${watch.seen.files} boundary files seen before the abort`);
  assert.deepEqual(readdirSync(watch.scratch), []);

  // an error in the backward pass: an Inf embedding row of a last token poisons the gradients
  const tensors = new Map<string, { shape: number[]; data: Float32Array }>();
  for (const name of w.names()) tensors.set(name, { shape: w.info(name).shape, data: w.get(name) });
  const d = c.hiddenSize;
  tensors.get('model.embed_tokens.weight')!.data.fill(Infinity, 31 * d, 32 * d);
  const bad = [
    fromIds(0, [1, 5, 7, 9, 3], [0, 0, 1, 1, 1], 'seeds:1', 1),
    fromIds(1, [1, 6, 8, 10, 31], [0, 0, 1, 1, 1], 'seeds:2', 2),
  ];
  const watch2 = watchedScratch('error');
  await assert.rejects(
    runSense({ config: c, weights: new MemoryWeights('bad', tensors) }, bad, new MemorySink(), {
      spill: 'always',
      scratchDir: watch2.scratch,
      onProgress: watch2.onProgress,
    }),
    NonFiniteGradient,
  );
  assert.equal(watch2.seen.folders, 1);
  assert.deepEqual(readdirSync(watch2.scratch), []);
});

test('spill auto: spills only above 1 GiB of boundary states; a scratch disk too small is refused up front', () => {
  // 4096 boundaries of 65537 floats: just above 1 GiB; one fewer float per seed: just below
  assert.ok(boundaryBytes(4095, 65537, 1) > SPILL_AUTO_BYTES);
  assert.ok(boundaryBytes(4095, 65536, 1) === SPILL_AUTO_BYTES);
  const scratch = mkdtempSync(join(dir, 'auto-'));
  const big = openBoundaries(4095, [65537], { scratchDir: scratch });
  const small = openBoundaries(4095, [65536], { scratchDir: scratch });
  assert.equal(big.spilled, true);
  assert.equal(small.spilled, false);
  assert.equal(openBoundaries(4095, [65537], { spill: 'never' }).spilled, false);
  // the disk store reads back what was written, per seed at its own offset, and drop() deletes
  const store = openBoundaries(2, [3, 5], { spill: 'always', scratchDir: scratch }) as DiskBoundaries;
  store.put(1, 1, Float32Array.from([1, 2, 3, 4, 5]));
  store.put(1, 0, Float32Array.from([-1, -2, -3]));
  assert.deepEqual(Array.from(store.get(1, 1)), [1, 2, 3, 4, 5]);
  assert.deepEqual(Array.from(store.get(1, 0)), [-1, -2, -3]);
  assert.throws(() => store.get(0, 0), /no state for seed 0 at layer boundary 0/);
  store.drop(1);
  assert.throws(() => store.get(1, 0), /no state/);
  big.close();
  store.close();
  store.close(); // twice is fine
  assert.deepEqual(readdirSync(scratch), []);
  assert.throws(
    () => openBoundaries(79, [1e15], { spill: 'always', scratchDir: scratch }),
    (e: Error) =>
      e.name === 'InputError' &&
      e.message.startsWith(`${scratch}: the layer-boundary states need `) &&
      /--scratch-dir/.test(e.message),
  );
  assert.throws(
    () => openBoundaries(2, [4], { spill: 'always', scratchDir: join(dir, 'missing') }),
    /missing: cannot use as the scratch folder/,
  );
});

const SEEDS = [
  { prompt: 'Tell me about Lily.', answer: 'Lily was a little girl who loved to play in the park.' },
  { question: 'What did Tom see?', answer: 'Tom saw a big red ball in the garden.' },
  { prompt: 'Where is the dog?', answer: 'The dog ran to the tree and barked.' },
];

test('sense options: --spill values, --spill always needs streaming, --scratch-dir must exist; spilled CLI run = kept', async () => {
  const seedFile = join(dir, 'seeds.jsonl');
  writeFileSync(seedFile, SEEDS.map((s) => JSON.stringify(s)).join('\n') + '\n');
  const base = resolveOptions('sense', {
    teacher: TEACHER,
    seeds: seedFile,
    out: join(dir, 'kept.safetensors'),
    progress: false,
  });
  assert.equal(base.spill, 'auto');
  assert.equal(base.scratchDir, undefined);
  assert.throws(() => resolveOptions('sense', { ...base, spill: 'sometimes' }), /spill/);
  assert.throws(() => resolveOptions('sense', { ...base, dtype: 'f8' }), /dtype/);
  const quiet = { log: () => {} };
  await assert.rejects(
    senseCommand({ ...base, spill: 'always', streaming: false }, quiet),
    /--spill: always spills the layer-boundary states of streaming/,
  );
  await assert.rejects(
    senseCommand({ ...base, spill: 'always', scratchDir: join(dir, 'nope') }, quiet),
    /nope: no such folder \(--scratch-dir\)/,
  );
  const logs: string[] = [];
  const kept = await senseCommand({ ...base, spill: 'never' }, { log: (l) => logs.push(l) });
  const scratch = mkdtempSync(join(dir, 'cli-'));
  const spilled = await senseCommand(
    { ...base, out: join(dir, 'spilled.safetensors'), spill: 'always', scratchDir: scratch },
    { log: (l) => logs.push(l) },
  );
  // stories260K: 5 layers, d 64; the states of 6 boundaries x tokens x 64 floats
  const states = logs.filter((l) => l.includes('layer-boundary states'));
  assert.equal(states.length, 2);
  assert.match(states[0], /^sense: the seeds' layer-boundary states take 0\.\d\d GB: kept in memory$/);
  assert.equal(states[1], states[0].replace('kept in memory', `spilled to a scratch folder in ${scratch}`));
  assert.deepEqual(readdirSync(scratch), []);
  assert.deepEqual(
    readdirSync(dir).filter((f) => f.startsWith(SCRATCH_PREFIX) || f.includes('.parts-')),
    [],
  );
  const a = openSafetensors(kept.out),
    b = openSafetensors(spilled.out);
  try {
    for (const name of a.names()) assert.deepEqual(b.get(name), a.get(name), name);
  } finally {
    a.close();
    b.close();
  }
});

test('f16 sensitivity files: sense writes F16 = f32 rounded; merge reads f16 and bf16 shards; out-of-range S is counted', async () => {
  const seedFile = join(dir, 'seeds16.jsonl');
  writeFileSync(seedFile, SEEDS.map((s) => JSON.stringify(s)).join('\n') + '\n');
  const base = resolveOptions('sense', {
    teacher: TEACHER,
    seeds: seedFile,
    out: join(dir, 'f32.safetensors'),
    progress: false,
  });
  const quiet = { log: () => {} };
  const f32 = await senseCommand(base, quiet);
  const log16: string[] = [];
  const f16 = await senseCommand(
    { ...base, out: join(dir, 'f16.safetensors'), dtype: 'f16' },
    { log: (l) => log16.push(l) },
  );
  const shards = [];
  for (const [i, dtype] of [
    [0, 'f16'],
    [1, 'bf16'],
  ] as const)
    shards.push(
      (await senseCommand({ ...base, out: join(dir, `s${i}.safetensors`), shard: `${i}/2`, dtype }, quiet))
        .out,
    );
  const merged = join(dir, 'merged16.safetensors');
  const lines: string[] = [];
  mergeSensitivity(shards, merged, 'f16', (l) => lines.push(l));
  const a = openSafetensors(f32.out),
    h = openSafetensors(f16.out),
    m = openSafetensors(merged);
  let flushed = 0;
  try {
    for (const name of a.names()) {
      assert.equal(h.info(name).dtype, 'F16', name);
      assert.equal(m.info(name).dtype, 'F16', name);
      const x = a.get(name),
        y = h.get(name),
        z = m.get(name);
      for (let i = 0; i < x.length; i++) {
        assert.equal(y[i], halfToFloat(floatToHalf(x[i])), `${name}[${i}]`);
        if (x[i] !== 0 && y[i] === 0) flushed++;
        // bf16 (2^-8 relative) or f16 (2^-11) rounding of a shard, then f16 (2^-11) of the sum
        assert.ok(
          Math.abs(z[i] - x[i]) <= 5e-3 * x[i] + 1e-7,
          `${name}[${i}]: merged ${z[i]} vs unsharded ${x[i]}`,
        );
      }
    }
  } finally {
    a.close();
    h.close();
    m.close();
  }
  // even this tiny teacher has S below float16's smallest subnormal: counted and reported
  assert.ok(flushed > 0);
  const note = log16.find((l) => l.includes('float16'));
  assert.equal(
    note,
    `sense: ${f16.out}: float16 stored 0 sensitivities above 65504 as 65504 and ${flushed} nonzero ones below its smallest subnormal as 0; --dtype bf16 keeps float32's range`,
  );
  assert.equal(lines.length, 1);
  assert.match(
    lines[0],
    /^sense merge: .*merged16\.safetensors: float16 stored 0 sensitivities above 65504 as 65504 and [1-9]\d* nonzero/,
  );

  // out of range: saturated at 65504 (not Inf) and counted, the sink's own array left untouched
  const c = tinyConfig({ numLayers: 1 });
  const sink = new MemorySink();
  for (const name of expectedTensorNames(c)) {
    const shape = name.endsWith('norm.weight') ? [c.hiddenSize] : [1];
    const n = shape[0];
    sink.put(name, shape, new Float32Array(n).fill(0.5));
  }
  // real shapes are not needed by the writer: it writes what the sink holds
  const big = Float32Array.from([1e6, 70000, 1e-9, 0, 3]);
  sink.put('model.norm.weight', [5], big);
  const path = join(dir, 'range.safetensors');
  const rangeNote = writeSensitivityFile(path, sink, c, 'f16', {} as SensSummary);
  assert.match(rangeNote!, /float16 stored 2 sensitivities above 65504 as 65504 and 1 nonzero ones below/);
  assert.deepEqual(Array.from(big), [1e6, 70000, Float32Array.from([1e-9])[0], 0, 3]);
  const r = openSafetensors(path);
  try {
    assert.deepEqual(Array.from(r.get('model.norm.weight')), [65504, 65504, 0, 0, 3]);
  } finally {
    r.close();
  }
  const fit = new F16Fit();
  const same = Float32Array.from([1, 2]);
  assert.equal(fit.fit(same), same); // nothing to clamp: no copy
  assert.equal(fit.note('x'), null);
  assert.ok(existsSync(path));
});
