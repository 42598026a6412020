/**
 * Putting trainable LoRA adapters on a student before fine-tuning (docs/method.md step 5), from one of:
 *   - an initialisation folder written by `nuggets extract` (PEFT adapter + manifest.json): when the
 *     manifest says `subtract`, every adapted base weight becomes W' = W - scale·B0·A0 (embedding:
 *     W - scale·(B0·A0)^T) and the LoRA starts at (B0, A0), so the model starts as the student itself;
 *   - PEFT's default init (A Kaiming-uniform, B = 0; embedding A = 0, B normal): nothing to subtract;
 *   - PiSSA: the student's own top-r SVD with the same subtract trick.
 * A tied lm_head is untied first (lm_head.weight becomes a copy of the embedding) whenever the
 * subtract trick touches the embedding or lm_head: subtracting from a shared matrix would change both.
 *
 * The initial factors (B0, A0) are kept when the subtract trick was used: the plain rank-2r adapter
 * written after training (docs/method.md step 7) needs them.
 */
import { Rng } from '../engine/rng.js';
import { InputError } from '../errors.js';
import type { ModelConfig } from '../model/config.js';
import type { WeightSource } from '../model/weights.js';
import { loadAllParams } from '../model/params.js';
import { LlamaModel } from '../model/model.js';
import { Linear } from '../model/linear.js';
import { deriveSeed } from '../transfer/extract.js';
import { readAdapter, type AdapterModule } from '../transfer/peft.js';
import { readManifest, type Manifest } from '../transfer/manifest.js';
import { loraDefaultInit, pissaInit } from '../transfer/controls.js';
import { subtractInit } from '../transfer/inject.js';
import type { Factors } from '../transfer/factorize.js';
import {
  ALL_KINDS,
  factorShape,
  isTransposed,
  modulePath,
  moduleRefs,
  type ModuleKind,
  type ModuleRef,
} from '../transfer/modules.js';

export type LoraInitSpec = { kind: 'folder'; dir: string } | { kind: 'default' } | { kind: 'pissa' };

export interface LoraSetupOptions {
  init: LoraInitSpec;
  /** Module kinds requested (parsed). With an init folder the folder's modules are used; a different explicit request is refused. */
  kinds: readonly ModuleKind[];
  /** True when `kinds` is the schema default ("all"), which an init folder's modules may narrow. */
  kindsAreDefault: boolean;
  rank: number;
  alpha: number;
  dropout: number;
  /** Seeds the PEFT default init draws (deriveSeed(seed, 'lora'), the stream `extract --init lora` uses). */
  seed: number;
  /** Names the student in messages. */
  studentName?: string;
}

export interface LoraSetup {
  model: LlamaModel;
  /** The adapted modules, canonical order. */
  refs: ModuleRef[];
  /** The initial factors when the subtract trick was applied (else null: B0·A0 = 0 or nothing subtracted). */
  initFactors: AdapterModule[] | null;
  subtract: boolean;
  /** lm_head was untied from the embedding (the merged model must then store both). */
  untied: boolean;
  /** The init folder's manifest, when one was given. */
  manifest: Manifest | null;
  init: LoraInitSpec['kind'];
}

function sameKinds(a: readonly ModuleKind[], b: readonly ModuleKind[]): boolean {
  return a.length === b.length && a.every((k) => b.includes(k));
}

/** The weight array a module's delta applies to (a Linear's [out, in], the embedding's [V, d]). */
function weightOf(model: LlamaModel, path: string): Float32Array {
  const m = model.module(path);
  return m.weight.data;
}

function transposeOf(x: ArrayLike<number>, rows: number, cols: number): Float32Array {
  const out = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[c * rows + r] = x[r * cols + c];
  return out;
}

/** Loads the student and attaches LoRA adapters as `opts.init` says. */
export function setupLora(config: ModelConfig, weights: WeightSource, opts: LoraSetupOptions): LoraSetup {
  const studentName = opts.studentName ?? weights.source;
  if (!(Number.isInteger(opts.rank) && opts.rank >= 1))
    throw new InputError('--rank', `must be a positive integer, got ${opts.rank}`);
  if (!(opts.alpha > 0)) throw new InputError('--alpha', `must be positive, got ${opts.alpha}`);
  if (!(opts.dropout >= 0 && opts.dropout < 1))
    throw new InputError('--dropout', `must be in [0, 1), got ${opts.dropout}`);

  // Which modules get which initial factors.
  let manifest: Manifest | null = null;
  let factors: AdapterModule[];
  let subtract: boolean;
  if (opts.init.kind === 'folder') {
    const dir = opts.init.dir;
    manifest = readManifest(dir);
    const adapter = readAdapter(dir, config);
    factors = adapter.modules;
    const kinds = ALL_KINDS.filter((k) => factors.some((f) => f.ref.kind === k));
    if (!opts.kindsAreDefault && !sameKinds(kinds, opts.kinds)) {
      throw new InputError(
        dir,
        `initialises ${kinds.join(', ')} but --modules asks for ${opts.kinds.join(', ')}; leave --modules out to train the folder's modules`,
      );
    }
    for (const f of factors) {
      if (f.r !== opts.rank) {
        throw new InputError(
          dir,
          `${modulePath(f.ref)} has rank ${f.r} but --rank is ${opts.rank}; give --rank ${f.r} (the rank is fixed by the init folder)`,
        );
      }
      if (f.alpha !== opts.alpha) {
        throw new InputError(
          dir,
          `${modulePath(f.ref)} has lora_alpha ${f.alpha} but --alpha is ${opts.alpha}; give --alpha ${f.alpha} (the scale is fixed by the init folder)`,
        );
      }
    }
    subtract = manifest.subtract;
  } else {
    const refs = moduleRefs(opts.kinds, config.numLayers);
    if (refs.length === 0) throw new InputError('--modules', 'selects no module');
    const scale = opts.alpha / opts.rank;
    if (opts.init.kind === 'default') {
      const rng = new Rng(deriveSeed(opts.seed, 'lora'));
      factors = refs.map((ref) => {
        const [n, m] = factorShape(ref.kind, config);
        const f = loraDefaultInit(n, m, opts.rank, ref.kind === 'embed_tokens', rng);
        return { ref, r: opts.rank, alpha: opts.alpha, A: f.A, B: f.B };
      });
      subtract = false;
    } else {
      // PiSSA on the student's own weights (read once per module, in the factor layout).
      factors = refs.map((ref) => {
        const [n, m] = factorShape(ref.kind, config);
        const name =
          ref.kind === 'lm_head' && config.tieWordEmbeddings
            ? 'model.embed_tokens.weight'
            : `${modulePath(ref)}.weight`;
        const w = weights.get(name);
        const Ws = isTransposed(ref.kind) ? transposeOf(w, m, n) : w;
        const f = pissaInit(
          Ws,
          n,
          m,
          opts.rank,
          scale,
          { method: 'exact' },
          `${studentName}: ${name} (pissa)`,
        );
        return { ref, r: opts.rank, alpha: opts.alpha, A: f.A, B: f.B };
      });
      subtract = true;
    }
  }

  const refs = factors.map((f) => f.ref);
  const touchesTied = refs.some((r) => r.kind === 'embed_tokens' || r.kind === 'lm_head');
  const untied = subtract && config.tieWordEmbeddings && touchesTied;
  const params = loadAllParams(weights, config);
  let modelConfig = config;
  if (untied) {
    // lm_head gets its own copy of the embedding, so the two deltas no longer write into one matrix.
    const emb = params.get('model.embed_tokens.weight');
    params.add('lm_head.weight', emb.shape, emb.data.slice());
    modelConfig = { ...config, tieWordEmbeddings: false };
  }
  const model = new LlamaModel(modelConfig, params);

  for (const f of factors) {
    const path = modulePath(f.ref);
    const [n, m] = factorShape(f.ref.kind, config);
    if (subtract) {
      const fac: Factors = { B: f.B, A: f.A, n, m, r: f.r };
      // docs/method.md step 5: W' = W - scale·B0·A0, so W' + scale·B0·A0 = W at step 0.
      subtractInit(weightOf(model, path), fac, f.alpha / f.r, isTransposed(f.ref.kind));
    }
    const mod = model.module(path);
    const dropout = mod instanceof Linear ? opts.dropout : 0; // PEFT applies no dropout to embedding LoRA
    model.attachLora(path, { r: f.r, alpha: f.alpha, dropout, A: f.A, B: f.B });
  }
  return {
    model,
    refs,
    initFactors: subtract
      ? factors.map((f) => ({ ...f, A: Float32Array.from(f.A), B: Float32Array.from(f.B) }))
      : null,
    subtract,
    untied,
    manifest,
    init: opts.init.kind,
  };
}
