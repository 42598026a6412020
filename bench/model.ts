/**
 * Model throughput (src/model): forward+backward tokens/s and peak RSS of a ~110M-parameter
 * LLaMA (d 768, 12 layers, 12 heads of 64, MLP 2048, vocab 32000, tied embeddings, random weights) at
 * batch 1 and 4 x sequence 256, for nuggets and for an equivalent PyTorch program
 * (bench/torch/llama_fwd_bwd.py: same math, fp32, same thread count, /usr/bin/python3) in the same run;
 * ratio nuggets / PyTorch (target >= 1.0); and greedy generation tokens/s with the KV cache.
 *
 * Each program runs in its own child process, so each peak RSS is that program's alone (the figure
 * is the child's own getrusage maxrss). Both compute gradients for every parameter (the embedding
 * included), the loss over all B*T positions. Throughput is also given per CPU-second (the child's
 * CPU time over all its threads), which a busy shared machine disturbs much less than wall time.
 * Timings are the best of `reps` steps after `warmup` untimed ones; one of each by default, because
 * a PyTorch B4 step alone takes ~15-45 s on 2 shared cores and the module should stay near 3 minutes.
 * The PyTorch program was checked once against nuggets on shared weights (tiny GQA config, untied):
 * loss equal to 1e-7 and every parameter gradient to 8e-7 relative.
 *
 * This file is also the nuggets child: `node --import tsx bench/model.ts child '<spec json>'`.
 */
import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';
import { benchHelpers, type Recorder } from './lib.js';
import { PYTHON, childSpec, maxRssKb, runChild, runSelfChild, torchUnavailable } from './child.js';
import { benchWeights, parameterCount, specConfig, type LlamaSpec } from './llama.js';
import { LlamaModel } from '../src/model/model.js';
import { generate } from '../src/model/generate.js';
import { kernels } from '../src/engine/backend.js';

const HERE = dirname(fileURLToPath(import.meta.url));
const TORCH_SCRIPT = join(HERE, 'torch', 'llama_fwd_bwd.py');

/** The program spec both children read (the Python script's names). */
export interface Spec extends LlamaSpec {
  seq: number;
  batches: number[];
  reps: number;
  warmup: number;
  threads: number;
  gen_tokens: number;
}

export interface ChildResult {
  /** seconds: wall time of the best step; cpu_seconds: the process's CPU time (all threads) in the best step. */
  fwd_bwd: Array<{ B: number; T: number; seconds: number; cpu_seconds: number; loss: number }>;
  gen?: { tokens: number; seconds: number };
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
  batches: [1, 4],
  reps: 1,
  warmup: 1,
  threads: availableParallelism(),
  gen_tokens: 32,
};

/** The model's config: positions for the sequence and for generation from BOS. */
function modelConfig(s: Spec) {
  return specConfig(s, Math.max(s.seq, s.gen_tokens + 1));
}

/** xorshift32 token ids in [0, V). */
function randomIds(n: number, V: number, seed: number): Int32Array {
  const out = new Int32Array(n);
  let s = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    out[i] = s % V;
  }
  return out;
}

/** The nuggets child: fwd+bwd per batch size, then generation; prints one JSON line. */
function child(s: Spec): void {
  const c = modelConfig(s);
  const model = LlamaModel.load({ config: c, weights: benchWeights(c) });
  model.enableGrads();
  const out: ChildResult = { fwd_bwd: [], max_rss_kb: 0, threads: s.threads, backend: kernels().name };
  for (const B of s.batches) {
    const T = s.seq;
    const batch = { ids: randomIds(B * T, s.vocab, 7 + B), B, T };
    const targets = randomIds(B * T, s.vocab, 99 + B);
    let best = Infinity,
      cpu = Infinity,
      loss = NaN;
    for (let r = 0; r < s.warmup + s.reps; r++) {
      const t0 = performance.now(),
        c0 = process.cpuUsage();
      model.zeroGrads();
      loss = model.loss(batch, targets);
      model.backward();
      const dt = (performance.now() - t0) / 1000;
      const c = process.cpuUsage(c0);
      if (r >= s.warmup) {
        best = Math.min(best, dt);
        cpu = Math.min(cpu, (c.user + c.system) / 1e6);
      }
    }
    out.fwd_bwd.push({ B, T, seconds: best, cpu_seconds: cpu, loss });
  }
  if (s.gen_tokens > 0) {
    const t0 = performance.now();
    const [g] = generate(model, [[1]], { maxNewTokens: s.gen_tokens, eosIds: [] });
    out.gen = { tokens: g.tokens.length, seconds: (performance.now() - t0) / 1000 };
  }
  out.max_rss_kb = maxRssKb();
  process.stdout.write(JSON.stringify(out) + '\n');
}

/**
 * Model FLOP/s of fwd+bwd (PaLM's count: 6 N + 12 L d T a token, N the matrix parameters with lm_head)
 * as a fraction of OpenBLAS sgemm called from C on this machine in this run, at the model's largest
 * product (the MLP: rows = tokens, d -> MLP width): how much of the machine's GEMM speed the whole
 * training step keeps, with attention, norms and everything between the products included.
 */
function sgemmFraction(rec: Recorder, s: Spec, rows: number, tokensPerSecond: number): void {
  const { helpers, error } = benchHelpers();
  if (!helpers) return rec.note(`sgemm fraction skipped: ${error}`);
  const perLayer = s.d * s.d * 2 + 2 * s.d * ((s.d / s.heads) * s.kv_heads) + 3 * s.d * s.mlp;
  const N = s.layers * perLayer + s.vocab * s.d;
  const flopsPerToken = 6 * N + 12 * s.layers * s.d * s.seq;
  const modelGflops = (flopsPerToken * tokensPerSecond) / 1e9;
  const secs = helpers.benchSgemmDirect(rows, s.mlp, s.d, 5);
  const sgemm = (2 * rows * s.mlp * s.d) / secs / 1e9;
  const base = rec.record(`openblas sgemm from C ${rows}x${s.mlp}x${s.d}`, sgemm, 'GFLOP/s');
  rec.record(`model fwd+bwd nuggets ${rows} tokens model GFLOP/s / sgemm`, modelGflops, 'GFLOP/s', base);
}

export async function run(rec: Recorder): Promise<void> {
  const s = SPEC;
  const params = parameterCount(modelConfig(s));
  rec.note(
    `LLaMA d ${s.d}, ${s.layers} layers, ${s.heads} heads (${s.kv_heads} kv) of ${s.d / s.heads}, MLP ${s.mlp}, vocab ${s.vocab}, ` +
      `${s.tied ? 'tied' : 'untied'} embeddings: ${(params / 1e6).toFixed(1)}M parameters; seq ${s.seq}, ${s.threads} threads, ` +
      `best of ${s.reps} after ${s.warmup} warm-up, gradients of every parameter`,
  );
  const nug = runSelfChild<ChildResult>(import.meta.url, s);
  const why = torchUnavailable();
  let pt: ChildResult | null = null;
  if (why) rec.note(`PyTorch baseline skipped: ${why}`);
  else pt = runChild<ChildResult>(PYTHON, [TORCH_SCRIPT, JSON.stringify(s)], s.threads);
  rec.note(
    `nuggets backend ${nug.backend}; ${pt ? `PyTorch ${pt.torch} with ${pt.threads} threads` : 'no PyTorch'}`,
  );
  for (const r of nug.fwd_bwd) {
    const tps = (r.B * r.T) / r.seconds;
    const p = pt?.fwd_bwd.find((x) => x.B === r.B);
    const base = p
      ? rec.record(`model fwd+bwd pytorch B${r.B}x${r.T}`, (p.B * p.T) / p.seconds, 'tokens/s')
      : null;
    rec.record(
      `model fwd+bwd nuggets B${r.B}x${r.T}`,
      tps,
      'tokens/s',
      base ? { name: base.name, value: base.value } : null,
    );
    // On a shared machine wall time depends on what else runs; CPU time much less so.
    const cbase = p
      ? rec.record(
          `model fwd+bwd pytorch B${r.B}x${r.T} per CPU-second`,
          (p.B * p.T) / p.cpu_seconds,
          'tokens/CPU-s',
        )
      : null;
    rec.record(
      `model fwd+bwd nuggets B${r.B}x${r.T} per CPU-second`,
      (r.B * r.T) / r.cpu_seconds,
      'tokens/CPU-s',
      cbase ? { name: cbase.name, value: cbase.value } : null,
    );
    rec.note(
      `B${r.B}: loss nuggets ${r.loss.toFixed(4)}${p ? `, pytorch ${p.loss.toFixed(4)}` : ''} (ln V = ${Math.log(s.vocab).toFixed(4)})`,
    );
    sgemmFraction(rec, s, r.B * r.T, tps);
  }
  if (pt) rec.record('model fwd+bwd peak RSS pytorch', pt.max_rss_kb / 1024, 'MiB');
  rec.record(
    'model fwd+bwd peak RSS nuggets',
    nug.max_rss_kb / 1024,
    'MiB',
    pt ? { name: 'model fwd+bwd peak RSS pytorch', value: pt.max_rss_kb / 1024 } : null,
  );
  if (nug.gen) {
    const base = pt?.gen
      ? rec.record(
          'model generate pytorch (KV cache, B1, greedy)',
          pt.gen.tokens / pt.gen.seconds,
          'tokens/s',
        )
      : null;
    rec.record(
      'model generate nuggets (KV cache, B1, greedy)',
      nug.gen.tokens / nug.gen.seconds,
      'tokens/s',
      base ? { name: base.name, value: base.value } : null,
    );
  }
}

const spec = childSpec<Spec>(import.meta.url);
if (spec) child(spec);
