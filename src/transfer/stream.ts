/**
 * The streaming executor of METHOD.md step 1: S = sum over seeds of |theta * grad|, computed layer
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
 * Peak memory: one layer's weights + gradients + S, plus the boundary states of all seeds
 * ((L + 1) * tokens * d floats), plus one [V, d] tensor and its S during B and D.
 */
import { kernels } from '../engine/backend.js';
import { checkNoExtraTensors, loadTensor } from '../model/params.js';
import { DecoderLayer } from '../model/block.js';
import { seqContext } from '../model/batch.js';
import { Workspace } from '../model/workspace.js';
import type { SeqContext } from '../model/block.js';
import {
  checkGradient, checkLoss, seedLoss, tick,
  type SeedLoss, type SenseExample, type SenseRunOptions, type SensSink, type TeacherSource,
} from './sensitivity.js';

type F32 = Float32Array;

/** lm_head gradient rows formed at once (about 16 MB of floats at any d). */
const HEAD_CHUNK_FLOATS = 1 << 22;

export async function senseStreaming(
  src: TeacherSource, examples: readonly SenseExample[], sink: SensSink, opts: SenseRunOptions = {},
): Promise<SeedLoss[]> {
  const k = kernels();
  const c = src.config;
  const ws = src.weights;
  checkNoExtraTensors(ws, c);
  const d = c.hiddenSize, V = c.vocabSize, L = c.numLayers;
  const tied = c.tieWordEmbeddings;
  const EMB = 'model.embed_tokens.weight';
  const HEAD = tied ? EMB : 'lm_head.weight';
  const nSeeds = examples.length;
  const T = examples.map((e) => e.ids.length);
  const ctx: SeqContext[] = examples.map((e) => seqContext({ ids: e.ids, B: 1, T: e.ids.length }));
  const workspace = new Workspace();

  // Progress in units of work: a layer forward of one token = 1, its backward (recompute + backward) = 3,
  // the head per token costs about 3 * V*d / (layer params) of those.
  const layerParams = layerParamCount(c);
  const headCost = Math.max(1, (3 * V * d) / layerParams);
  const tokens = T.reduce((a, b) => a + b, 0);
  const totalWork = tokens * (L + headCost + 3 * L) + tokens;
  let work = 0;
  let lossSum = 0, lossCount = 0;
  const report = (phase: string, add: number) => {
    work += add;
    const fields: Record<string, string | number> = { phase };
    if (lossCount > 0) fields.loss = lossSum / lossCount;
    opts.onProgress?.(Math.min(work, totalWork), totalWork, fields);
  };

  // ---- A. embedding and the forward pass, keeping boundary states
  const bounds: Array<Array<F32 | null>> = Array.from({ length: L + 1 }, () => new Array<F32 | null>(nSeeds).fill(null));
  {
    const E = loadTensor(ws, c, EMB);
    for (let j = 0; j < nSeeds; j++) {
      const h = new Float32Array(T[j] * d);
      k.embeddingForward(h, examples[j].ids, E, T[j], d);
      bounds[0][j] = h;
    }
  }
  for (let l = 0; l < L; l++) {
    const layer = DecoderLayer.load(ws, c, l, workspace);
    for (let j = 0; j < nSeeds; j++) {
      bounds[l + 1][j] = layer.forward(bounds[l][j]!, ctx[j]).slice();
      report(`forward ${l + 1}/${L}`, T[j]);
      await tick(opts.signal);
    }
    layer.releaseActivations();
    layer.params.clear();
  }

  // ---- B. head: loss, dL/dh_L, S of the final norm and of lm_head (or the tied embedding's share)
  const dh: F32[] = new Array(nSeeds);
  const losses: SeedLoss[] = new Array(nSeeds);
  /** Tied only: per seed, its distinct token ids and the lm_head gradient rows of those ids. */
  const headRows: Array<{ ids: Int32Array; rows: F32 } | null> = new Array(nSeeds).fill(null);
  {
    const normW = loadTensor(ws, c, 'model.norm.weight');
    const W = loadTensor(ws, c, HEAD);
    const Snorm = new Float32Array(d);
    const SW = new Float32Array(V * d);
    const normGrad = new Float32Array(d);
    const chunk = Math.max(1, Math.min(V, Math.floor(HEAD_CHUNK_FLOATS / d)));
    for (let j = 0; j < nSeeds; j++) {
      const ex = examples[j];
      const n = T[j];
      const h = bounds[L][j]!;
      const hn = workspace.view('sense.hn', n * d), rstd = workspace.view('sense.rstd', n);
      k.rmsnormForward(hn, rstd, h, normW, n, d, c.rmsNormEps);
      const logits = workspace.view('sense.logits', n * V);
      k.gemm(false, true, n, V, d, 1, hn, d, W, d, 0, logits, V);
      // answer-only mean token cross-entropy; dL/dlogits replaces the logits
      const loss = k.crossEntropy(logits, ex.targets, n, V, logits, 1 / ex.nTargets, null) / ex.nTargets;
      checkLoss(loss, ex);
      losses[j] = seedLoss(ex, loss);
      lossSum += loss;
      lossCount++;
      const dhn = workspace.view('sense.dhn', n * d);
      k.gemm(false, false, n, d, V, 1, logits, V, W, d, 0, dhn, d);
      const g = new Float32Array(n * d);
      normGrad.fill(0);
      k.rmsnormBackward(g, normGrad, dhn, h, normW, rstd, n, d);
      checkGradient(normGrad, d, 'model.norm.weight', ex);
      k.sensAccumulate(Snorm, normW, normGrad, d);
      dh[j] = g;

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
        checkGradient(G, rows * d, HEAD === EMB ? `${EMB} (as lm_head)` : HEAD, ex);
        if (own) {
          // rows of this seed's own tokens wait for the embedding contribution (phase D)
          for (let r = 0; r < rows; r++) {
            const at = own.at.get(v0 + r);
            if (at === undefined) continue;
            own.rows.set(G.subarray(r * d, (r + 1) * d), at * d);
            G.fill(0, r * d, (r + 1) * d);
          }
        }
        k.sensAccumulate(SW.subarray(v0 * d, (v0 + rows) * d), W.subarray(v0 * d, (v0 + rows) * d), G, rows * d);
      }
      if (own) headRows[j] = { ids: own.ids, rows: own.rows };
      bounds[L][j] = null;
      report('head', n * headCost);
      await tick(opts.signal);
    }
    sink.put('model.norm.weight', [d], Snorm);
    if (tied) sink.put('~tied-lm-head-share', [V, d], SW);
    else sink.put('lm_head.weight', [V, d], SW);
  }

  // ---- C. backward through the layers, top down
  for (let l = L - 1; l >= 0; l--) {
    const layer = DecoderLayer.load(ws, c, l, workspace);
    layer.params.enableGrads();
    const params = layer.params.unique();
    const S = params.map((p) => new Float32Array(p.data.length));
    for (let j = 0; j < nSeeds; j++) {
      const ex = examples[j];
      const n = T[j] * d;
      for (const p of params) p.grad!.fill(0);
      layer.forward(bounds[l][j]!, ctx[j]); // recompute this layer's activations
      const dx = workspace.view('sense.dx', n);
      layer.backward(dh[j], dx);
      dh[j].set(dx);
      params.forEach((p, i) => {
        checkGradient(p.grad!, p.data.length, p.name, ex);
        k.sensAccumulate(S[i], p.data, p.grad!, p.data.length);
      });
      report(`backward ${l + 1}/${L}`, 3 * T[j]);
      await tick(opts.signal);
    }
    params.forEach((p, i) => sink.put(p.name, [...p.shape], S[i]));
    layer.releaseActivations();
    layer.params.clear();
    for (let j = 0; j < nSeeds; j++) bounds[l][j] = null;
  }

  // ---- D. the embedding
  {
    const E = loadTensor(ws, c, EMB);
    const SE = tied ? sink.take('~tied-lm-head-share') : new Float32Array(V * d);
    for (let j = 0; j < nSeeds; j++) {
      const ex = examples[j];
      const ids = headRows[j]?.ids ?? distinct(ex.ids);
      const at = new Map(Array.from(ids, (v, i) => [v, i]));
      const G = new Float32Array(ids.length * d);
      const g = dh[j];
      for (let t = 0; t < T[j]; t++) {
        const r = at.get(ex.ids[t])! * d;
        for (let x = 0; x < d; x++) G[r + x] += g[t * d + x];
      }
      const own = headRows[j];
      if (own) for (let i = 0; i < G.length; i++) G[i] += own.rows[i];
      checkGradient(G, G.length, EMB, ex);
      for (let i = 0; i < ids.length; i++) {
        const v = ids[i];
        k.sensAccumulate(SE.subarray(v * d, (v + 1) * d), E.subarray(v * d, (v + 1) * d), G.subarray(i * d, (i + 1) * d), d);
      }
      report('embedding', T[j]);
      await tick(opts.signal);
    }
    sink.put(EMB, [V, d], SE);
  }
  return losses;
}

/** The distinct values of ids, ascending. */
function distinct(ids: Int32Array): Int32Array {
  return Int32Array.from(new Set(ids)).sort();
}

function layerParamCount(c: TeacherSource['config']): number {
  const d = c.hiddenSize, f = c.intermediateSize;
  const qd = c.numHeads * c.headDim, kvd = c.numKvHeads * c.headDim;
  return d * qd * 2 + d * kvd * 2 + 3 * d * f + 2 * d;
}
