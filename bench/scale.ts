/**
 * Real sizes (`npm run bench -- --only scale`): what a user with a 0.5B-13B checkpoint and one CPU
 * machine gets. Long (tens of minutes, tens of GB of disk); not part of CI. Items, each skippable with
 * NUGGETS_BENCH_SCALE=<comma list> (default: all):
 *
 *   train05  LoRA training step of a Qwen2.5-0.5B-shaped student (d 896, 24 layers, 14 heads / 2 KV,
 *            MLP 4864, vocab 151,936, tied; no q/k/v biases: the bench LLaMA), micro-batch 1 x 512,
 *            r 16 on q,k,v,o,gate,up,down: nuggets with fp32 and with bf16 frozen weights against
 *            PyTorch 1.13 fp32 and PyTorch with bf16 autocast, same step (bench/train.ts child,
 *            bench/torch/lora_train.py), each in its own process (peak RSS its own).
 *   sense7b  `nuggets sense` of a Llama-2-7B-shaped random bf16 teacher (nuggets random-model of
 *            fixtures/configs/llama-2-7b, 13.5 GB of shards), 2 seeds x 512 tokens: peak RSS, seconds a seed.
 *   extract  `nuggets extract` of a whole Llama-2-13B-shaped teacher into a 7B-shaped student (40 -> 32
 *            layers, all nine module kinds, rank 16) from a real-size bf16 sensitivity file.
 *   train7b  one `nuggets train` update of 1 x 512 on the 7B-shaped bf16 student, LoRA r 16
 *            (train7b-cp: the same with --gradient-checkpointing).
 *
 * Models and files go to NUGGETS_BENCH_MODELS (default bench/tmp/scale) and are reused when present.
 * Wall time and peak RSS of CLI runs come from GNU time (/usr/bin/time, Debian package `time`).
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, statSync, readdirSync, writeFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Recorder } from './lib.js';
import { PYTHON, runChild, torchUnavailable } from './child.js';
import { parameterCount, specConfig } from './llama.js';
import { SPEC as TRAIN_SPEC, type ChildResult, type Spec } from './train.js';
import { RandomInitWeights, readConfigFile } from '../src/io/random-model.js';
import { writeSafetensorsLazy } from '../src/io/safetensors.js';
import { expectedShape, expectedTensorNames } from '../src/model/config.js';
import {
  SENS_FORMAT,
  SENS_VERSION,
  SUMMARY_METADATA_KEY,
  TIED_NOTE,
  tensorSums,
  type SensSummary,
} from '../src/transfer/sense/summary.js';

const HERE = dirname(fileURLToPath(import.meta.url));
const ROOT = join(HERE, '..');
const RUN = join(ROOT, 'src', 'cli', 'run.ts');
const MODELS = process.env.NUGGETS_BENCH_MODELS ?? join(HERE, 'tmp', 'scale');
const ITEMS = (process.env.NUGGETS_BENCH_SCALE ?? 'train05,sense7b,extract,train7b,train7b-cp').split(',');

interface Timed {
  seconds: number;
  maxRssMiB: number;
  cpuSeconds: number;
  out: string;
}

/** Runs `nuggets <args>` under GNU time; throws with the stderr tail on failure. */
function nuggets(args: string[], note?: (s: string) => void): Timed {
  note?.(`nuggets ${args.join(' ')}`);
  const r = spawnSync(
    '/usr/bin/time',
    ['-f', 'TIME %e %M %U %S', process.execPath, '--import', 'tsx', RUN, ...args],
    { cwd: ROOT, encoding: 'utf8', maxBuffer: 64 << 20, env: { ...process.env } },
  );
  const m = /TIME ([\d.]+) (\d+) ([\d.]+) ([\d.]+)/.exec(r.stderr ?? '');
  if (r.status !== 0 || !m)
    throw new Error(`nuggets ${args[0]} failed (status ${r.status}): ${(r.stderr ?? '').slice(-3000)}`);
  return {
    seconds: Number(m[1]),
    maxRssMiB: Number(m[2]) / 1024,
    cpuSeconds: Number(m[3]) + Number(m[4]),
    out: r.stdout,
  };
}

function folderBytes(dir: string): number {
  return readdirSync(dir).reduce((n, f) => n + statSync(join(dir, f)).size, 0);
}

/** A random-weight folder of a published config, made once. */
function randomFolder(rec: Recorder, name: string): string {
  const out = join(MODELS, name);
  if (existsSync(join(out, 'config.json'))) return out;
  mkdirSync(MODELS, { recursive: true });
  const t = nuggets(['random-model', join(ROOT, 'fixtures', 'configs', name), '-o', out], rec.note.bind(rec));
  rec.note(`${name}: ${(folderBytes(out) / 1e9).toFixed(1)} GB written in ${t.seconds.toFixed(0)} s`);
  return out;
}

/** Seeds of `tokens` tokens each (short prompt, long answer, cut at --max-length). */
function seedFile(n: number): string {
  const text = readFileSync(join(ROOT, 'data', 'tinystories', 'tinystories_val.txt'), 'utf8');
  const file = join(MODELS, `seeds-${n}.jsonl`);
  const rows = Array.from({ length: n }, (_, i) =>
    JSON.stringify({ prompt: 'Continue the story.', answer: text.slice(i * 20000, i * 20000 + 12000) }),
  );
  writeFileSync(file, rows.join('\n') + '\n');
  return file;
}

async function train05(rec: Recorder): Promise<void> {
  const s: Spec & { autocast?: string } = {
    ...TRAIN_SPEC,
    vocab: 151936,
    d: 896,
    layers: 24,
    heads: 14,
    kv_heads: 2,
    mlp: 4864,
    tied: true,
    seq: 512,
    batch: 1,
    reps: 2,
    warmup: 1,
    threads: availableParallelism(),
  };
  const params = parameterCount(specConfig(s, s.seq));
  rec.note(
    `Qwen2.5-0.5B-shaped LoRA step: ${(params / 1e6).toFixed(1)}M frozen parameters, 1 x 512, r 16 on all seven projections, ${s.threads} threads`,
  );
  const child = (spec: typeof s) =>
    runChild<ChildResult>(
      process.execPath,
      ['--import', 'tsx', join(HERE, 'train.ts'), 'child', JSON.stringify(spec)],
      s.threads,
    );
  const why = torchUnavailable();
  let pt: ChildResult | null = null,
    ptBf16: ChildResult | null = null;
  if (why) rec.note(`PyTorch baseline skipped: ${why}`);
  else {
    pt = runChild<ChildResult>(PYTHON, [join(HERE, 'torch', 'lora_train.py'), JSON.stringify(s)], s.threads);
    ptBf16 = runChild<ChildResult>(
      PYTHON,
      [join(HERE, 'torch', 'lora_train.py'), JSON.stringify({ ...s, autocast: 'bf16' })],
      s.threads,
    );
  }
  const f32 = child({ ...s, weight_dtype: 'f32' });
  const bf16 = child({ ...s, weight_dtype: 'bf16' });
  const tps = (r: ChildResult) => r.tokens_per_step / r.best_seconds;
  const base = pt ? rec.record('0.5B lora step pytorch fp32', tps(pt), 'tokens/s') : null;
  const baseRss = pt ? rec.record('0.5B lora step peak RSS pytorch fp32', pt.max_rss_kb / 1024, 'MiB') : null;
  if (ptBf16) {
    rec.record('0.5B lora step pytorch bf16 autocast', tps(ptBf16), 'tokens/s', base);
    rec.record('0.5B lora step peak RSS pytorch bf16 autocast', ptBf16.max_rss_kb / 1024, 'MiB', baseRss);
  }
  for (const [label, r] of [
    ['f32 weights', f32],
    ['bf16 weights', bf16],
  ] as const) {
    rec.record(`0.5B lora step nuggets ${label}`, tps(r), 'tokens/s', base);
    rec.record(`0.5B lora step peak RSS nuggets ${label}`, r.max_rss_kb / 1024, 'MiB', baseRss);
  }
  rec.note(
    `losses: nuggets f32 ${f32.steps.map((x) => x.loss.toFixed(3)).join(', ')}, bf16 ${bf16.steps.map((x) => x.loss.toFixed(3)).join(', ')}` +
      (pt ? `; pytorch ${pt.steps.map((x) => x.loss.toFixed(3)).join(', ')}` : ''),
  );
}

async function sense7b(rec: Recorder): Promise<void> {
  const teacher = randomFolder(rec, 'llama-2-7b');
  const seeds = seedFile(2);
  const out = join(MODELS, 'sense-7b', 'sens.safetensors');
  rmSync(dirname(out), { recursive: true, force: true });
  const t = nuggets(
    [
      'sense',
      '--teacher',
      teacher,
      '--seeds',
      seeds,
      '--num-seeds',
      '2',
      '--max-length',
      '512',
      '--dtype',
      'bf16',
      '--no-progress',
      '-o',
      out,
    ],
    rec.note.bind(rec),
  );
  rec.record('sense 7B peak RSS (2 seeds x 512)', t.maxRssMiB, 'MiB', { name: 'goal', value: 3 * 1024 });
  rec.record('sense 7B seconds a seed', t.seconds / 2, 's');
  rec.record('sense 7B CPU-seconds a seed', t.cpuSeconds / 2, 'CPU-s');
  rec.note(
    `32 seeds on this machine: ~${(((t.seconds / 2) * 32) / 60).toFixed(0)} min; --shard i/n over n machines divides it`,
  ); // the 13.5 GB sensitivity file is not kept: extract needs the disk for the 13B files
  rmSync(dirname(out), { recursive: true, force: true });
}

/**
 * A sensitivity file of a teacher's real size in the layout `sense` writes (every tensor of the
 * teacher, bf16, the JSON summary with per-tensor fp32 sums in its metadata): |uniform| values, so each
 * matrix has its own arbitrary best window. Timing extract needs the size and the layout, not a measured
 * S (a 13B sense run is hours on this machine). The values are drawn twice (sums first: the summary is
 * in the header, before the data), which costs CPU-minutes but no disk.
 */
function syntheticSensitivity(rec: Recorder, teacher: string, out: string): void {
  if (existsSync(out)) return;
  mkdirSync(dirname(out), { recursive: true });
  const t0 = performance.now();
  const { config } = readConfigFile(teacher);
  const names = expectedTensorNames(config);
  const values = (name: string) => new RandomInitWeights(config, 99, 1).get(name).map(Math.abs);
  const sums = new Map<string, number>();
  for (const name of names) {
    const v = values(name);
    let s = 0;
    for (let i = 0; i < v.length; i++) s += v[i];
    sums.set(name, s);
  }
  const sink = {
    names: () => names,
    shape: (n: string) => expectedShape(config, n),
    sum: (n: string) => sums.get(n)!,
  };
  const summary: SensSummary = {
    format: SENS_FORMAT,
    version: SENS_VERSION,
    created: new Date().toISOString(),
    teacher: { path: teacher, config },
    seeds: { path: 'synthetic', sha256: null, used: 0, indices: [], shard: null },
    options: { synthetic: 'bench/scale.ts: |uniform| values, not a measured sensitivity' },
    encode: null,
    loss: { mean: 0, perSeed: [] },
    tiedEmbeddings: config.tieWordEmbeddings ? TIED_NOTE : null,
    ...tensorSums(sink, config),
    compute: null,
  };
  writeSafetensorsLazy(
    out,
    names.map((name) => ({
      name,
      shape: expectedShape(config, name),
      dtype: 'BF16' as const,
      load: () => values(name),
    })),
    { format: SENS_FORMAT, [SUMMARY_METADATA_KEY]: JSON.stringify(summary) },
  );
  rec.note(
    `synthetic sensitivity ${(statSync(out).size / 1e9).toFixed(1)} GB in ${((performance.now() - t0) / 1000).toFixed(0)} s`,
  );
}

async function extract(rec: Recorder): Promise<void> {
  const teacher = randomFolder(rec, 'llama-2-13b');
  const student = randomFolder(rec, 'llama-2-7b');
  const sens = join(MODELS, 'sens-13b.safetensors');
  syntheticSensitivity(rec, teacher, sens);
  const out = join(MODELS, 'init-13b-7b');
  rmSync(out, { recursive: true, force: true });
  const t = nuggets(
    [
      'extract',
      '--teacher',
      teacher,
      '--student',
      student,
      '--sensitivity',
      sens,
      '--modules',
      'all',
      '--rank',
      '16',
      '-o',
      out,
    ],
    rec.note.bind(rec),
  );
  rec.record('extract 13B -> 7B whole model wall', t.seconds, 's', { name: 'goal', value: 300 });
  rec.record('extract 13B -> 7B peak RSS', t.maxRssMiB, 'MiB');
}

async function train7b(rec: Recorder, checkpointing = false): Promise<void> {
  const student = randomFolder(rec, 'llama-2-7b');
  const data = seedFile(1);
  const out = join(MODELS, 'train-7b');
  rmSync(out, { recursive: true, force: true });
  const label = checkpointing ? ', gradient checkpointing' : '';
  const t = nuggets(
    [
      'train',
      student,
      '--data',
      data,
      '--epochs',
      '1',
      '--batch-size',
      '1',
      '--micro-batch-size',
      '1',
      '--max-length',
      '512',
      '--rank',
      '16',
      ...(checkpointing ? ['--gradient-checkpointing'] : []),
      '--no-progress',
      '--out',
      out,
    ],
    rec.note.bind(rec),
  );
  rec.record(`train 7B one update 1 x 512 peak RSS${label}`, t.maxRssMiB, 'MiB', {
    name: '24 GiB',
    value: 24 * 1024,
  });
  rec.record(`train 7B one update 1 x 512 wall (load + step + save)${label}`, t.seconds, 's');
}

export async function run(rec: Recorder): Promise<void> {
  const items: Array<[string, (r: Recorder) => Promise<void>]> = [
    ['train05', train05],
    ['sense7b', sense7b],
    ['extract', extract],
    ['train7b', (r) => train7b(r)],
    ['train7b-cp', (r) => train7b(r, true)],
  ];
  for (const [name, fn] of items) {
    if (!ITEMS.includes(name)) continue;
    rec.note(`-- ${name}`);
    try {
      await fn(rec);
    } catch (e) {
      rec.note(`${name} failed: ${(e as Error).message.split('\n').slice(0, 12).join(' | ')}`);
    }
  }
}
