/**
 * LoRA training throughput (docs/method.md step 6): tokens/s and peak RSS of LoRA fine-tuning steps on
 * the ~100M LLaMA config (d 768, 12 layers, 12 heads of 64, MLP 2048, vocab 32000, tied embeddings,
 * random weights), LoRA r 16 / alpha 16 / dropout 0.05 on q,k,v,o,gate,up,down of every layer, batch
 * 2 x sequence 256, against an equivalent hand-written PyTorch program (bench/torch/lora_train.py:
 * same math, fp32, frozen base, torch.optim.AdamW, same thread count, /usr/bin/python3) in the same run.
 * Ratio nuggets / PyTorch (target >= 1.0).
 *
 * One step = what the trainer does per optimizer update: forward + backward of the micro-batch
 * (frozen base weights: no weight gradients, only activations' and the LoRA factors'), global
 * gradient clipping, AdamW on the flat LoRA group (src/train/trainer.ts batchGradient, optimizer.ts).
 * Loss: next-token cross-entropy over every position but the last. Each program runs in its own
 * child process, so each peak RSS (getrusage maxrss) is that program's alone. Timings: the best of
 * `reps` steps after `warmup` untimed ones; each step's process CPU time (all threads) is recorded too,
 * as tokens per CPU-second, the figure that stays comparable when other jobs share the cores.
 *
 * This file is also the nuggets child: `node --import tsx bench/train.ts child '<spec json>'`.
 */
import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';
import type { Recorder } from './lib.js';
import { PYTHON, childSpec, maxRssKb, runChild, runSelfChild, torchUnavailable } from './child.js';
import { benchWeights, parameterCount, specConfig, type LlamaSpec } from './llama.js';
import { LlamaModel } from '../src/model/model.js';
import type { ModelConfig } from '../src/model/config.js';
import type { WeightSource } from '../src/model/weights.js';
import { HalfArray } from '../src/engine/half.js';
import { f32ToBf16 } from '../src/engine/dtype.js';
import { RandomInitWeights } from '../src/io/random-model.js';
import { kernels } from '../src/engine/backend.js';
import { Rng } from '../src/engine/rng.js';
import type { EncodedExample } from '../src/data/encode.js';
import { LoraParams } from '../src/train/lora-params.js';
import { AdamW, clipGradNorm } from '../src/train/optimizer.js';
import { batchGradient } from '../src/train/trainer.js';
import { loraDefaultInit } from '../src/transfer/controls.js';
import { LAYER_KINDS, factorShape, moduleRefs, modulePath } from '../src/transfer/modules.js';

const HERE = dirname(fileURLToPath(import.meta.url));
const TORCH_SCRIPT = join(HERE, 'torch', 'lora_train.py');

/** The program spec both children read (the Python script's names). */
export interface Spec extends LlamaSpec {
  seq: number;
  batch: number;
  r: number;
  alpha: number;
  dropout: number;
  lr: number;
  reps: number;
  warmup: number;
  threads: number;
  /** Scale bench: frozen weights drawn lazily, kept f32 or bf16 in memory (default: the fast in-memory draw). */
  weight_dtype?: 'f32' | 'bf16';
}

export interface ChildResult {
  steps: Array<{ seconds: number; cpu_seconds: number; loss: number }>;
  best_seconds: number;
  /** The smallest process CPU time (all threads) of a timed step: robust to other load on a shared machine. */
  best_cpu_seconds: number;
  tokens_per_step: number;
  lora_params: number;
  max_rss_kb: number;
  threads: number;
  backend?: string;
  torch?: string;
}

export const SPEC: Spec = {
  vocab: 32000,
  d: 768,
  layers: 12,
  heads: 12,
  kv_heads: 12,
  mlp: 2048,
  tied: true,
  seq: 256,
  batch: 2,
  r: 16,
  alpha: 16,
  dropout: 0.05,
  lr: 3e-4,
  reps: 2,
  warmup: 1,
  threads: availableParallelism(),
};

/** B rows of T random ids, every position after the first a target. */
function benchRows(s: Spec): EncodedExample[] {
  const rng = new Rng(7);
  return Array.from({ length: s.batch }, (_, b) => {
    const ids = new Int32Array(s.seq);
    for (let t = 0; t < s.seq; t++) ids[t] = rng.int(s.vocab);
    const answerMask = new Uint8Array(s.seq).fill(1);
    answerMask[0] = 0;
    return {
      ids,
      answerMask,
      nTargets: s.seq - 1,
      fullLength: s.seq,
      truncated: false,
      source: `bench:${b + 1}`,
      line: b + 1,
    };
  });
}

/**
 * The frozen weights: the fast in-memory draw by default; with `weight_dtype` (the scale bench), drawn
 * tensor by tensor as the model loads, so the peak RSS is the model's alone, and for 'bf16' handed over
 * as bf16 bits, which the model keeps half (as it does with a bf16 checkpoint).
 */
function childWeights(s: Spec, c: ModelConfig): WeightSource {
  if (!s.weight_dtype) return benchWeights(c);
  const draw = new RandomInitWeights(c, 1, 0.02);
  if (s.weight_dtype === 'f32') return draw;
  const matrix = (name: string) => draw.info(name).shape.length === 2;
  return {
    source: `${draw.source} as bf16`,
    names: () => draw.names(),
    has: (name) => draw.has(name),
    info: (name) => ({ ...draw.info(name), dtype: matrix(name) ? 'BF16' : 'F32' }),
    get: (name) => draw.get(name),
    getStored: (name) => (matrix(name) ? new HalfArray('bf16', f32ToBf16(draw.get(name))) : draw.get(name)),
    close: () => draw.close(),
  };
}

/** The nuggets child: LoRA training steps; prints one JSON line. */
function child(s: Spec): void {
  const c = specConfig(s, s.seq);
  const model = LlamaModel.load({ config: c, weights: childWeights(s, c) });
  // PEFT default init, then B made non-zero so that every LoRA product carries a real signal
  const rng = new Rng(3);
  for (const ref of moduleRefs(LAYER_KINDS, c.numLayers)) {
    const [n, m] = factorShape(ref.kind, c);
    const f = loraDefaultInit(n, m, s.r, false, rng);
    rng.fillNormal(f.B, 0, 0.01);
    model.attachLora(modulePath(ref), { r: s.r, alpha: s.alpha, dropout: s.dropout, A: f.A, B: f.B });
  }
  const params = LoraParams.gather(model);
  const opt = new AdamW(params.size, { beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0 });
  const rows = benchRows(s);
  model.setTraining(true);
  const steps: ChildResult['steps'] = [];
  let best = Infinity,
    bestCpu = Infinity;
  for (let i = 0; i < s.warmup + s.reps; i++) {
    const c0 = process.cpuUsage();
    const t0 = performance.now();
    const g = batchGradient(model, params, rows, s.batch);
    clipGradNorm(params.grad, 1);
    opt.update(params.data, params.grad, s.lr);
    const dt = (performance.now() - t0) / 1000;
    const cu = process.cpuUsage(c0);
    const cpu = (cu.user + cu.system) / 1e6;
    steps.push({ seconds: dt, cpu_seconds: cpu, loss: g.loss });
    if (i >= s.warmup) {
      best = Math.min(best, dt);
      bestCpu = Math.min(bestCpu, cpu);
    }
  }
  const out: ChildResult = {
    steps,
    best_seconds: best,
    best_cpu_seconds: bestCpu,
    tokens_per_step: s.batch * s.seq,
    lora_params: params.size,
    max_rss_kb: maxRssKb(),
    threads: s.threads,
    backend: kernels().name,
  };
  process.stdout.write(JSON.stringify(out) + '\n');
}

export async function run(rec: Recorder): Promise<void> {
  const s = SPEC;
  const params = parameterCount(specConfig(s, s.seq));
  rec.note(
    `LoRA training: LLaMA d ${s.d}, ${s.layers} layers, ${s.heads} heads of ${s.d / s.heads}, MLP ${s.mlp}, vocab ${s.vocab}, ` +
      `${(params / 1e6).toFixed(1)}M frozen parameters; LoRA r ${s.r}, alpha ${s.alpha}, dropout ${s.dropout} on q,k,v,o,gate,up,down; ` +
      `batch ${s.batch} x ${s.seq}, ${s.threads} threads, best of ${s.reps} steps after ${s.warmup} warm-up`,
  );
  const nug = runSelfChild<ChildResult>(import.meta.url, s);
  const why = torchUnavailable();
  let pt: ChildResult | null = null;
  if (why) rec.note(`PyTorch baseline skipped: ${why}`);
  else pt = runChild<ChildResult>(PYTHON, [TORCH_SCRIPT, JSON.stringify(s)], s.threads);
  rec.note(
    `nuggets backend ${nug.backend}, ${nug.lora_params} LoRA parameters; ${pt ? `PyTorch ${pt.torch} with ${pt.threads} threads, ${pt.lora_params} LoRA parameters` : 'no PyTorch'}`,
  );
  rec.note(
    `losses per step: nuggets ${nug.steps.map((x) => x.loss.toFixed(4)).join(', ')}${pt ? `; pytorch ${pt.steps.map((x) => x.loss.toFixed(4)).join(', ')}` : ''} (ln V = ${Math.log(s.vocab).toFixed(4)})`,
  );
  const base = pt ? rec.record('lora train pytorch', pt.tokens_per_step / pt.best_seconds, 'tokens/s') : null;
  rec.record(
    'lora train nuggets',
    nug.tokens_per_step / nug.best_seconds,
    'tokens/s',
    base ? { name: base.name, value: base.value } : null,
  );
  // tokens per CPU-second (all threads): the comparison that survives other jobs on a shared machine
  const baseCpu = pt
    ? rec.record(
        'lora train pytorch per CPU-second',
        pt.tokens_per_step / pt.best_cpu_seconds,
        'tokens/CPU-s',
      )
    : null;
  rec.record(
    'lora train nuggets per CPU-second',
    nug.tokens_per_step / nug.best_cpu_seconds,
    'tokens/CPU-s',
    baseCpu ? { name: baseCpu.name, value: baseCpu.value } : null,
  );
  if (pt) rec.record('lora train peak RSS pytorch', pt.max_rss_kb / 1024, 'MiB');
  rec.record(
    'lora train peak RSS nuggets',
    nug.max_rss_kb / 1024,
    'MiB',
    pt ? { name: 'lora train peak RSS pytorch', value: pt.max_rss_kb / 1024 } : null,
  );
}

const spec = childSpec<Spec>(import.meta.url);
if (spec) child(spec);
