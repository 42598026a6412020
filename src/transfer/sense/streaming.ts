/**
 * The streaming executor of docs/method.md step 1: S = sum over seeds of |theta * grad|, computed layer
 * by layer so that a teacher far larger than memory can be measured.
 *
 *   A. forward, layer-major: the embedding gives each seed's hidden state h_0; then each decoder
 *      layer is loaded from the WeightSource, run on every seed (h_l -> h_{l+1}) and dropped. Only
 *      the boundary hidden states h_0..h_L of every seed are kept.
 *   B. head: final RMSNorm + lm_head per seed: the loss, dL/dh_L, and the S of the final norm and of
 *      lm_head. The lm_head gradient [V, d] is formed in row chunks, folded into S and dropped, so it
 *      never exists whole.
 *   C. backward, layer-major from the top: layer l is loaded again with gradients; per seed its
 *      forward is recomputed from h_l, its backward turns dL/dh_{l+1} into dL/dh_l, and its S is
 *      accumulated; the layer's S goes to the sink and the layer and h_l are dropped.
 *   D. embedding: the gradient of row v for seed j is the sum of dL/dh_0 over the positions holding
 *      token v; with tied embeddings the lm_head contribution to those rows (kept from B, only the
 *      rows of the seed's own tokens) is added first, so |theta * grad| sees the true per-example
 *      gradient of the shared parameter. Rows of tokens outside a seed got their (lm_head-only)
 *      share in B.
 *
 * Peak memory: one layer's weights + gradients + S, plus dL/dh of every seed (tokens * d floats),
 * plus one [V, d] weight and its S during B and D, plus the boundary states h_0..h_L: in memory
 * ((L + 1) * tokens * d floats) for a small teacher, or spilled to scratch files with one seed's
 * state in memory (boundaries.ts; `spill` option), so that the peak does not grow with depth.
 * docs/memory.md has the numbers for real model sizes.
 *
 * Each phase and each layer runs in its own function, and memory is collected after each
 * (releaseMemory): a suspended async frame keeps every local it ever held alive, so a dropped layer
 * must not be a local of the long-running loop, and V8 left alone frees large arrays late.
 */
import { kernels } from '../../engine/backend.js';
import { accumulateSensitivity, checkNoExtraTensors, loadTensor } from '../../model/params.js';
import { DecoderLayer } from '../../model/block.js';
import { seqContext } from '../../model/batch.js';
import { Workspace } from '../../model/workspace.js';
import type { SeqContext } from '../../model/block.js';
import type { ModelConfig } from '../../model/config.js';
import { tick } from './abort.js';
import { openBoundaries, type BoundaryStore } from './boundaries.js';
import { checkGradient, checkLoss } from './checks.js';
import { releaseMemory } from './release-memory.js';
import { seedLoss } from './seeds.js';
import type { SensSink } from './sink.js';
import type { SeedLoss, SenseExample, SenseRunOptions, TeacherSource } from './types.js';

type F32 = Float32Array;

/** lm_head gradient rows formed at once (about 16 MB of floats at any d). */
const HEAD_CHUNK_FLOATS = 1 << 22;
const EMB = 'model.embed_tokens.weight';
/** Collect after each phase and layer when a layer or a [V, d] tensor has at least this many bytes. */
const COLLECT_BYTES = 16 << 20;

/** What every phase shares. */
interface Run {
  src: TeacherSource;
  c: ModelConfig;
  examples: readonly SenseExample[];
  T: number[];
  ctx: SeqContext[];
  sink: SensSink;
  opts: SenseRunOptions;
  workspace: Workspace;
  /** bounds.get(l, j): hidden state of seed j entering layer l (l = L: the last layer's output). */
  bounds: BoundaryStore;
  /** dL/dh of each seed at the current boundary (from phase B on). */
  dh: F32[];
  losses: SeedLoss[];
  /** Tied only: per seed, its distinct token ids and the lm_head gradient rows of those ids. */
  headRows: Array<{ ids: Int32Array; rows: F32 } | null>;
  headCost: number;
  /** Collect after phases and big loads (big models only). */
  collectEach: boolean;
  report(phase: string, add: number, loss?: number): void;
}

export async function senseStreaming(
  src: TeacherSource,
  examples: readonly SenseExample[],
  sink: SensSink,
  opts: SenseRunOptions = {},
): Promise<SeedLoss[]> {
  const c = src.config;
  checkNoExtraTensors(src.weights, c);
  const L = c.numLayers,
    n = examples.length;
  const T = examples.map((e) => e.ids.length);
  // Progress in units of work: a layer forward of one token = 1, its backward (recompute + backward)
  // = 3, the head per token about 3 * V*d / (layer params) of those.
  const headCost = Math.max(1, (3 * c.vocabSize * c.hiddenSize) / layerParamCount(c));
  const tokens = T.reduce((a, b) => a + b, 0);
  const totalWork = tokens * (L + headCost + 3 * L) + tokens;
  let work = 0,
    lossSum = 0,
    lossCount = 0;
  const run: Run = {
    src,
    c,
    examples,
    T,
    sink,
    opts,
    ctx: examples.map((e) => seqContext({ ids: e.ids, B: 1, T: e.ids.length })),
    workspace: new Workspace(),
    bounds: openBoundaries(
      L,
      T.map((t) => t * c.hiddenSize),
      opts,
    ),
    dh: new Array<F32>(n),
    losses: new Array<SeedLoss>(n),
    headRows: new Array(n).fill(null),
    headCost,
    // a full collection costs tens of ms: worth it only when a layer or a [V, d] tensor is big
    collectEach: Math.max(layerParamCount(c), c.vocabSize * c.hiddenSize) * 4 >= COLLECT_BYTES,
    report(phase, add, loss) {
      work += add;
      if (loss !== undefined) {
        lossSum += loss;
        lossCount++;
      }
      const fields: Record<string, string | number> = { phase };
      if (lossCount > 0) fields.loss = lossSum / lossCount;
      opts.onProgress?.(Math.min(work, totalWork), totalWork, fields);
    },
  };

  // A full collection costs tens of ms; it is worth it only when a layer or a [V, d] tensor is big.
  const collect = async () => {
    if (run.collectEach) await collectNow();
  };
  try {
    embedForward(run);
    await collect();
    for (let l = 0; l < L; l++) {
      await layerForward(run, l);
      await collect();
    }
    await head(run);
    await collect();
    for (let l = L - 1; l >= 0; l--) {
      await layerBackward(run, l);
      await collect();
    }
    await embedBackward(run);
    await collect();
  } finally {
    run.bounds.close(); // scratch files go after success, error and abort alike
  }
  return run.losses;
}

/**
 * Frees what the phase just finished held: first a fresh macrotask, so that no frame of the phase is
 * still on the stack or in the promise job that resumed us, then a full collection.
 */
async function collectNow(): Promise<void> {
  await new Promise<void>((r) => setImmediate(r));
  releaseMemory();
}

/** A: h_0 of every seed. */
function embedForward(run: Run): void {
  const { c, examples, T } = run;
  const d = c.hiddenSize;
  const E = loadTensor(run.src.weights, c, EMB);
  for (let j = 0; j < examples.length; j++) {
    const h = new Float32Array(T[j] * d);
    kernels().embeddingForward(h, examples[j].ids, E, T[j], d);
    run.bounds.put(0, j, h);
  }
}

/** A: h_{l+1} = layer_l(h_l) for every seed. */
async function layerForward(run: Run, l: number): Promise<void> {
  const { c, examples, T, bounds } = run;
  const layer = DecoderLayer.load(run.src.weights, c, l, run.workspace);
  for (let j = 0; j < examples.length; j++) {
    bounds.put(l + 1, j, layer.forward(bounds.get(l, j), run.ctx[j]));
    run.report(`forward ${l + 1}/${c.numLayers}`, T[j]);
    await tick(run.opts.signal);
  }
  layer.releaseActivations();
}

/** B: loss, dL/dh_L, and the S of the final norm and of lm_head (or the tied embedding's share). */
async function head(run: Run): Promise<void> {
  const k = kernels();
  const { c, examples, T, workspace, sink } = run;
  const d = c.hiddenSize,
    V = c.vocabSize,
    L = c.numLayers;
  const tied = c.tieWordEmbeddings;
  const HEAD = tied ? EMB : 'lm_head.weight';
  const normW = loadTensor(run.src.weights, c, 'model.norm.weight');
  const W = loadTensor(run.src.weights, c, HEAD);
  if (run.collectEach) releaseMemory(); // the reader's raw bytes of W
  const Snorm = new Float32Array(d);
  const SW = new Float32Array(V * d);
  const normGrad = new Float32Array(d);
  const chunk = Math.max(1, Math.min(V, Math.floor(HEAD_CHUNK_FLOATS / d)));
  for (let j = 0; j < examples.length; j++) {
    const ex = examples[j];
    const n = T[j];
    const h = run.bounds.get(L, j);
    const hn = workspace.view('sense.hn', n * d),
      rstd = workspace.view('sense.rstd', n);
    k.rmsnormForward(hn, rstd, h, normW, n, d, c.rmsNormEps);
    const logits = workspace.view('sense.logits', n * V);
    k.gemm(false, true, n, V, d, 1, hn, d, W, d, 0, logits, V);
    // answer-only mean token cross-entropy; dL/dlogits replaces the logits
    const loss = k.crossEntropy(logits, ex.targets, n, V, logits, 1 / ex.nTargets, null) / ex.nTargets;
    checkLoss(loss, ex);
    run.losses[j] = seedLoss(ex, loss);
    const dhn = workspace.view('sense.dhn', n * d);
    k.gemm(false, false, n, d, V, 1, logits, V, W, d, 0, dhn, d);
    const g = new Float32Array(n * d);
    normGrad.fill(0);
    k.rmsnormBackward(g, normGrad, dhn, h, normW, rstd, n, d);
    checkGradient(normGrad, d, 'model.norm.weight', ex);
    k.sensAccumulate(Snorm, normW, normGrad, d);
    run.dh[j] = g;

    let own: { ids: Int32Array; rows: F32; at: Map<number, number> } | null = null;
    if (tied) {
      const ids = distinct(ex.ids);
      own = { ids, rows: new Float32Array(ids.length * d), at: new Map(Array.from(ids, (v, i) => [v, i])) };
    }
    // dW = dlogits^T hn, rows [v0, v0 + rows) at a time
    for (let v0 = 0; v0 < V; v0 += chunk) {
      const rows = Math.min(chunk, V - v0);
      const G = workspace.view('sense.headGrad', rows * d);
      k.gemm(true, false, rows, d, n, 1, logits.subarray(v0), V, hn, d, 0, G, d);
      checkGradient(G, rows * d, tied ? `${EMB} (as lm_head)` : HEAD, ex);
      if (own) {
        // rows of this seed's own tokens wait for the embedding contribution (phase D)
        for (let r = 0; r < rows; r++) {
          const at = own.at.get(v0 + r);
          if (at === undefined) continue;
          own.rows.set(G.subarray(r * d, (r + 1) * d), at * d);
          G.fill(0, r * d, (r + 1) * d);
        }
      }
      k.sensAccumulate(
        SW.subarray(v0 * d, (v0 + rows) * d),
        W.subarray(v0 * d, (v0 + rows) * d),
        G,
        rows * d,
      );
    }
    if (own) run.headRows[j] = { ids: own.ids, rows: own.rows };
    run.report('head', n * run.headCost, loss);
    await tick(run.opts.signal);
  }
  run.bounds.drop(L);
  workspace.release(); // the [T, V] logits
  sink.put('model.norm.weight', [d], Snorm);
  if (tied) sink.put('~tied-lm-head-share', [V, d], SW);
  else sink.put('lm_head.weight', [V, d], SW);
}

/** C: recompute layer l's forward per seed, backward, accumulate its S; dL/dh moves down a layer. */
async function layerBackward(run: Run, l: number): Promise<void> {
  const { c, examples, T } = run;
  const d = c.hiddenSize;
  const layer = DecoderLayer.load(run.src.weights, c, l, run.workspace);
  layer.params.enableGrads();
  const params = layer.params.unique();
  const S = params.map((p) => new Float32Array(p.size));
  for (let j = 0; j < examples.length; j++) {
    const ex = examples[j];
    for (const p of params) p.grad!.fill(0);
    layer.forward(run.bounds.get(l, j), run.ctx[j]); // recompute this layer's activations
    const dx = run.workspace.view('sense.dx', T[j] * d);
    layer.backward(run.dh[j], dx);
    run.dh[j].set(dx);
    params.forEach((p, i) => {
      checkGradient(p.grad!, p.size, p.name, ex);
      accumulateSensitivity(S[i], p);
    });
    run.report(`backward ${l + 1}/${c.numLayers}`, 3 * T[j]);
    await tick(run.opts.signal);
  }
  params.forEach((p, i) => run.sink.put(p.name, [...p.shape], S[i]));
  layer.releaseActivations();
  run.bounds.drop(l);
}

/** D: the embedding's S from dL/dh_0 (plus, tied, the lm_head rows kept in B). */
async function embedBackward(run: Run): Promise<void> {
  const k = kernels();
  const { c, examples, T, sink } = run;
  const d = c.hiddenSize,
    V = c.vocabSize;
  const E = loadTensor(run.src.weights, c, EMB);
  if (run.collectEach) releaseMemory();
  const SE = c.tieWordEmbeddings ? sink.take('~tied-lm-head-share') : new Float32Array(V * d);
  for (let j = 0; j < examples.length; j++) {
    const ex = examples[j];
    const own = run.headRows[j];
    const ids = own?.ids ?? distinct(ex.ids);
    const at = new Map(Array.from(ids, (v, i) => [v, i]));
    const G = new Float32Array(ids.length * d);
    const g = run.dh[j];
    for (let t = 0; t < T[j]; t++) {
      const r = at.get(ex.ids[t])! * d;
      for (let x = 0; x < d; x++) G[r + x] += g[t * d + x];
    }
    if (own) for (let i = 0; i < G.length; i++) G[i] += own.rows[i];
    checkGradient(G, G.length, EMB, ex);
    for (let i = 0; i < ids.length; i++) {
      const v = ids[i];
      k.sensAccumulate(
        SE.subarray(v * d, (v + 1) * d),
        E.subarray(v * d, (v + 1) * d),
        G.subarray(i * d, (i + 1) * d),
        d,
      );
    }
    run.report('embedding', T[j]);
    await tick(run.opts.signal);
  }
  sink.put(EMB, [V, d], SE);
}

/** The distinct values of ids, ascending. */
function distinct(ids: Int32Array): Int32Array {
  return Int32Array.from(new Set(ids)).sort();
}

function layerParamCount(c: ModelConfig): number {
  const d = c.hiddenSize,
    f = c.intermediateSize;
  const qd = c.numHeads * c.headDim,
    kvd = c.numKvHeads * c.headDim;
  return d * qd * 2 + d * kvd * 2 + 3 * d * f + 2 * d;
}
