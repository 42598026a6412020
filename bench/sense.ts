/**
 * `nuggets sense` and `extract` at scale (docs/method.md steps 1-4):
 * 1. Streaming is real: a random 24-layer LLaMA (d 1024, MLP 3072, 16 heads, vocab 32000, untied)
 *    whose fp32 weights are 1.57 GB is written once to bench/tmp/ as an HF folder; `nuggets sense`
 *    runs on 4 short seeds in a child process, which reports its own peak RSS (VmHWM). Target: under
 *    40% of the fp32 model size.
 * 2. Sense tokens/s on the ~100M config (d 768, 12 layers, MLP 2048, vocab 32000, 12 heads, seq 256),
 *    streaming and in memory, against a PyTorch program doing the same per-example |theta*grad|
 *    accumulation (bench/torch/sense.py, torch.set_num_threads = our cores) when /usr/bin/python3
 *    can import torch. Target >= 1.0x.
 * 3. Extract for one layer with the real LLaMA 13B -> 7B shapes: the seven matrices' window search
 *    plus randomized rank-16 SVD (random W and S). Target under 10 s.
 *
 * Run alone with `npm run bench -- --only sense`. This file is also its own child process
 * (`--child <nuggets args>`), so that the peak RSS measured is the sense run's alone.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { fillFast, type Recorder } from './lib.js';
import { expectedShape, expectedTensorNames, type ModelConfig } from '../src/model/config.js';
import type { TensorInfo, WeightSource } from '../src/model/weights.js';
import { writeHfModel } from '../src/io/checkpoint.js';
import { buildTokenizerConfig, buildTokenizerJson } from '../src/io/convert.js';
import { Llama2cTokenizer } from '../src/io/tokenizer-llama2c.js';
import { tinyConfig, randomWeights } from '../src/model/random.js';
import { Rng } from '../src/engine/rng.js';
import { kernels } from '../src/engine/backend.js';
import { runSense } from '../src/transfer/sense/run.js';
import { fromIds } from '../src/transfer/sense/seeds.js';
import { MemorySink } from '../src/transfer/sense/sink.js';
import { cutSubmatrix } from '../src/transfer/submatrix.js';
import { factorize } from '../src/transfer/factorize.js';

const HERE = dirname(fileURLToPath(import.meta.url));
const ROOT = join(HERE, '..');
const TMP = join(HERE, 'tmp');

/** Random weights generated on demand, tensor by tensor (a 1.57 GB model never sits in memory). */
export class LazyRandomWeights implements WeightSource {
  readonly source = 'lazy-random';
  private readonly names_: string[];
  constructor(
    private readonly c: ModelConfig,
    private readonly seed: number,
  ) {
    this.names_ = expectedTensorNames(c);
  }
  names(): string[] {
    return [...this.names_];
  }
  has(name: string): boolean {
    return this.names_.includes(name);
  }
  info(name: string): TensorInfo {
    return { dtype: 'F32', shape: expectedShape(this.c, name) };
  }
  get(name: string): Float32Array {
    const shape = expectedShape(this.c, name);
    const n = shape.reduce((a, b) => a * b, 1);
    const i = this.names_.indexOf(name);
    if (name.endsWith('norm.weight')) return fillFast(new Float32Array(n), this.seed + i, 0.9, 1.1);
    // uniform(-a, a) with std 1/sqrt(in) (embedding: std 1)
    const std = name === 'model.embed_tokens.weight' ? 1 : 1 / Math.sqrt(shape[1]);
    const a = std * Math.sqrt(3);
    return fillFast(new Float32Array(n), this.seed + i, -a, a);
  }
  close(): void {}
}

function bytesOf(c: ModelConfig): number {
  return expectedTensorNames(c).reduce((s, n) => s + expectedShape(c, n).reduce((a, b) => a * b, 1) * 4, 0);
}

const SEED_ROWS = [
  {
    prompt: 'Tell me a story about a cat.',
    answer: 'Once upon a time, a little cat found a red ball in the garden.',
  },
  { prompt: 'What did Lily do?', answer: 'Lily went to the park and played with her friends all day.' },
  { prompt: 'Say something kind.', answer: 'You are a good friend and I like you.' },
  { prompt: 'Where is the dog?', answer: 'The dog is under the big tree, sleeping in the sun.' },
];

/** (1) peak RSS of a streaming sense run on a 1.57 GB teacher. */
async function streamingMemory(rec: Recorder): Promise<void> {
  const c = tinyConfig({
    vocabSize: 32000,
    hiddenSize: 1024,
    intermediateSize: 3072,
    numLayers: 24,
    numHeads: 16,
    numKvHeads: 16,
    headDim: 64,
    maxPositionEmbeddings: 2048,
    padTokenId: null,
  });
  const folder = join(TMP, 'sense-big24');
  const bytes = bytesOf(c);
  const weightsFile = join(folder, 'model.safetensors');
  if (!existsSync(weightsFile) || statSync(weightsFile).size < bytes) {
    mkdirSync(folder, { recursive: true });
    const t0 = performance.now();
    writeHfModel(folder, c, new LazyRandomWeights(c, 11), { dtype: 'F32' });
    rec.note(
      `wrote ${folder} (${(bytes / 1e9).toFixed(2)} GB fp32) in ${((performance.now() - t0) / 1000).toFixed(1)} s`,
    );
  }
  // the stories260K tokenizer as tokenizer.json (512 tokens; the model's vocabulary may be larger)
  const tok = Llama2cTokenizer.fromFile(join(ROOT, 'data', 'stories260k', 'tokenizer.bin'));
  writeFileSync(join(folder, 'tokenizer.json'), JSON.stringify(buildTokenizerJson(tok)));
  writeFileSync(
    join(folder, 'tokenizer_config.json'),
    JSON.stringify(buildTokenizerConfig(c.maxPositionEmbeddings)),
  );
  const seeds = join(TMP, 'sense-seeds.jsonl');
  writeFileSync(seeds, SEED_ROWS.map((r) => JSON.stringify(r)).join('\n') + '\n');
  const out = join(TMP, 'sense-big24.safetensors');
  const t0 = performance.now();
  const child = spawnSync(
    process.execPath,
    [
      '--import',
      'tsx',
      fileURLToPath(import.meta.url),
      '--child',
      'sense',
      '--teacher',
      folder,
      '--seeds',
      seeds,
      '-o',
      out,
      '--no-progress',
    ],
    {
      cwd: ROOT,
      encoding: 'utf8',
      maxBuffer: 1 << 24,
    },
  );
  const wall = (performance.now() - t0) / 1000;
  const line = child.stdout.trim().split('\n').pop() ?? '';
  let r: { code: number; vmHwmKb: number; maxRssKb: number };
  try {
    r = JSON.parse(line);
  } catch {
    throw new Error(`sense child failed (status ${child.status}): ${child.stderr.slice(-2000)}`);
  }
  if (r.code !== 0) throw new Error(`sense child exited ${r.code}: ${child.stderr.slice(-2000)}`);
  const peakMb = Math.max(r.vmHwmKb, r.maxRssKb) / 1024;
  rec.record('sense streaming peak RSS, 24-layer teacher (d 1024, vocab 32000)', peakMb, 'MB', {
    name: 'fp32 model size',
    value: bytes / 2 ** 20,
  });
  rec.record('sense streaming wall, 24-layer 1.57 GB teacher, 4 short seeds (child process)', wall, 's');
  rec.note(
    `target: peak RSS under 40% of the fp32 model; ${child.stderr
      .trim()
      .split('\n')
      .filter((l) => l.startsWith('sense: wrote'))
      .join(' ')}`,
  );
  rmSync(out, { force: true });
  rmSync(out.replace(/\.safetensors$/, '.summary.json'), { force: true });
}

/** (2) tokens/s on the ~100M config, ours (streaming and in memory) vs PyTorch. */
async function tokensPerSecond(rec: Recorder): Promise<void> {
  const c = tinyConfig({
    vocabSize: 32000,
    hiddenSize: 768,
    intermediateSize: 2048,
    numLayers: 12,
    numHeads: 12,
    numKvHeads: 12,
    headDim: 64,
    maxPositionEmbeddings: 2048,
    padTokenId: null,
  });
  const T = 256,
    prompt = 64,
    nSeeds = 2;
  const rng = new Rng(5);
  const idRows = Array.from({ length: nSeeds }, () => Array.from({ length: T }, () => rng.int(c.vocabSize)));
  const seeds = idRows.map((ids, i) =>
    fromIds(
      i,
      ids,
      ids.map((_, t) => (t >= prompt ? 1 : 0)),
      `seed ${i}`,
    ),
  );
  const tokens = nSeeds * T;
  const weights = randomWeights(c, 3);
  const threads = cpus().length;
  const ours: Record<string, number> = {};
  const oursCpu: Record<string, number> = {};
  for (const streaming of [true, false]) {
    const c0 = process.cpuUsage();
    const r = await runSense({ config: c, weights }, seeds, new MemorySink(), { streaming });
    const cu = process.cpuUsage(c0);
    ours[streaming ? 'streaming' : 'in-memory'] = tokens / r.seconds;
    oursCpu[streaming ? 'streaming' : 'in-memory'] = tokens / ((cu.user + cu.system) / 1e6);
  }
  const torch = spawnSync('/usr/bin/python3', ['-c', 'import torch'], { encoding: 'utf8' });
  let base: { name: string; value: number } | null = null;
  let baseCpu: { name: string; value: number } | null = null;
  if (torch.status === 0) {
    const spec = {
      vocab: c.vocabSize,
      d: c.hiddenSize,
      layers: c.numLayers,
      heads: c.numHeads,
      kv_heads: c.numKvHeads,
      mlp: c.intermediateSize,
      seeds: idRows,
      prompt: idRows.map(() => prompt),
      threads,
      reps: 1,
    };
    const p = spawnSync('/usr/bin/python3', [join(HERE, 'torch', 'sense.py'), JSON.stringify(spec)], {
      encoding: 'utf8',
      maxBuffer: 1 << 24,
    });
    if (p.status === 0) {
      const r = JSON.parse(p.stdout.trim().split('\n').pop()!) as {
        seconds: number;
        cpu_seconds: number;
        threads: number;
        torch: string;
      };
      base = { name: `PyTorch ${r.torch} eager, ${r.threads} threads`, value: tokens / r.seconds };
      baseCpu = { name: `PyTorch ${r.torch} eager per CPU-second`, value: tokens / r.cpu_seconds };
    } else {
      rec.note(`PyTorch baseline failed: ${p.stderr.slice(-1000)}`);
    }
  } else {
    rec.note('PyTorch baseline skipped: /usr/bin/python3 cannot import torch');
  }
  const cfg = `~100M (d 768, 12 layers, vocab 32000), ${nSeeds} seeds x ${T} tokens, ${kernels().name}`;
  rec.record(`sense tokens/s streaming, ${cfg}`, ours.streaming, 'tokens/s', base);
  rec.record(`sense tokens/s in memory, ${cfg}`, ours['in-memory'], 'tokens/s', base);
  // CPU time (all threads): the comparison that holds when other jobs share the cores
  rec.record(`sense tokens per CPU-second streaming, ${cfg}`, oursCpu.streaming, 'tokens/CPU-s', baseCpu);
  rec.record(`sense tokens per CPU-second in memory, ${cfg}`, oursCpu['in-memory'], 'tokens/CPU-s', baseCpu);
}

/** (3) one layer of LLaMA 13B -> 7B: seven window searches + randomized rank-16 SVDs. */
async function extractLayer(rec: Recorder): Promise<void> {
  const t = { d: 5120, f: 13824 },
    s = { d: 4096, f: 11008 };
  const shapes: Array<[string, [number, number], [number, number]]> = [
    ['q_proj', [t.d, t.d], [s.d, s.d]],
    ['k_proj', [t.d, t.d], [s.d, s.d]],
    ['v_proj', [t.d, t.d], [s.d, s.d]],
    ['o_proj', [t.d, t.d], [s.d, s.d]],
    ['gate_proj', [t.f, t.d], [s.f, s.d]],
    ['up_proj', [t.f, t.d], [s.f, s.d]],
    ['down_proj', [t.d, t.f], [s.d, s.f]],
  ];
  /** Window search + cut on fresh random W and S; they go out of scope before the SVD. */
  const cutOne = (kind: string, tShape: [number, number], sShape: [number, number]) => {
    const W = fillFast(new Float32Array(tShape[0] * tShape[1]), 3, -0.02, 0.02);
    const S = fillFast(new Float32Array(tShape[0] * tShape[1]), 4, 0, 1);
    const t0 = performance.now();
    const cut = cutSubmatrix(
      W,
      S,
      { name: kind, teacher: tShape, student: sShape, transposed: false },
      'block',
    );
    return { cut, seconds: (performance.now() - t0) / 1000 };
  };
  let total = 0,
    cutTotal = 0;
  for (const [kind, tShape, sShape] of shapes) {
    const { cut, seconds } = cutOne(kind, tShape, sShape);
    const t0 = performance.now();
    factorize(cut.data, sShape[0], sShape[1], 16, 1, { method: 'randomized', seed: 1 }, kind);
    total += seconds + (performance.now() - t0) / 1000;
    cutTotal += seconds;
  }
  rec.record(
    'extract one layer LLaMA 13B -> 7B (7 matrices: window search + randomized rank-16 SVD)',
    total,
    's',
    { name: 'target', value: 10 },
  );
  rec.note(
    `of which window search + cut ${cutTotal.toFixed(2)} s, SVD ${(total - cutTotal).toFixed(2)} s (random W and S)`,
  );
}

export async function run(rec: Recorder): Promise<void> {
  mkdirSync(TMP, { recursive: true });
  for (const [name, fn] of [
    ['streaming memory', streamingMemory],
    ['tokens/s', tokensPerSecond],
    ['extract 13B->7B layer', extractLayer],
  ] as const) {
    // NUGGETS_BENCH_SENSE=tokens/s (a comma list of the names above) runs only those items
    const only = process.env.NUGGETS_BENCH_SENSE?.split(',');
    if (only && !only.includes(name)) continue;
    try {
      await fn(rec);
    } catch (e) {
      rec.note(`${name} failed: ${(e as Error).stack ?? e}`);
    }
  }
}

// ---- child mode: run the CLI and report this process's peak RSS
if (process.argv[2] === '--child' && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const { main } = await import('../src/cli/main.js');
  const code = await main(['node', 'nuggets', ...process.argv.slice(3)]);
  const status = readFileSync('/proc/self/status', 'utf8');
  const hwm = /VmHWM:\s+(\d+) kB/.exec(status);
  console.log(
    JSON.stringify({ code, vmHwmKb: hwm ? Number(hwm[1]) : 0, maxRssKb: process.resourceUsage().maxRSS }),
  );
  process.exit(code);
}
