/**
 * The whole of `nuggets extract` below the command line: plan (checks first), layer selection
 * (step 2), per-matrix cut (step 3) and factorisation (step 4) or a control init, then the PEFT
 * adapter folder holding (B, A) and manifest.json. The trainer applies step 5 (train/lora-init.ts,
 * through inject.ts subtractInit) from the adapter and the manifest's `subtract` / `untieStudentHead` flags.
 *
 * Memory: one teacher matrix and its sensitivity at a time, plus the (small) factors.
 */
import { mkdirSync } from 'node:fs';
import type { ModelConfig } from '../model/config.js';
import type { WeightSource } from '../model/weights.js';
import { Rng } from '../engine/rng.js';
import { resolveSvdMethod } from '../engine/svd.js';
import { InputError } from '../errors.js';
import {
  checkRecordedSum,
  layerScores,
  selectLayers,
  type RecordedSums,
  type LayerMethod,
  type LayerSelection,
  type TensorSource,
} from './layers.js';
import { cutSubmatrix, type Structure } from './submatrix.js';
import { factorize, type Factors, type SvdOptions } from './factorize.js';
import { loraDefaultInit, pissaInit, productNorm, randomMatched } from './controls.js';
import { planTransfer, type InitKind, type ShapeSource, type TransferPlan } from './plan.js';
import { writeAdapter, type AdapterModule } from './peft.js';
import {
  hashInput,
  writeManifest,
  MANIFEST_FORMAT,
  MANIFEST_VERSION,
  type Manifest,
  type MatrixRecord,
} from './manifest.js';
import { modulePath, parseModules, weightName } from './modules.js';

export interface ExtractOptions {
  init: InitKind;
  /** "all", groups (attention, mlp, embedding, lm_head) or module kinds. */
  modules: string[] | string;
  rank: number;
  alpha: number;
  dropout: number;
  structure: Structure;
  layers: LayerMethod;
  svd: SvdOptions;
  /** Seeds random layer choice, random entries, LoRA/random-matched draws and the randomized SVD. */
  seed: number;
  /** base_model_name_or_path of the adapter. */
  baseModel?: string | null;
  teacherName?: string;
  studentName?: string;
  /** Input paths to hash into the manifest (teacher, student, sensitivity, seeds...). */
  inputPaths?: Record<string, string>;
  onProgress?: (done: number, total: number, label: string) => void;
}

export interface ExtractSources {
  teacher?: WeightSource;
  teacherConfig?: ModelConfig;
  student: WeightSource;
  studentConfig: ModelConfig;
  /** Sensitivity of the teacher, one tensor per teacher parameter (HF names). */
  sensitivity?: TensorSource & ShapeSource;
  /** The sensitivity file's recorded per-tensor sums (its summary), when it has them. */
  sensitivitySums?: RecordedSums | null;
}

export interface ExtractResult {
  plan: TransferPlan;
  modules: AdapterModule[];
  manifest: Manifest;
}

/** A per-purpose seed derived from the user's seed (FNV-1a over the tag), so streams never overlap. */
export function deriveSeed(seed: number, tag: string): number {
  let h = (0x811c9dc5 ^ (seed >>> 0)) >>> 0;
  for (let i = 0; i < tag.length; i++) h = Math.imul(h ^ tag.charCodeAt(i), 0x01000193) >>> 0;
  return h;
}

/** Runs the extraction in memory (no files written). */
export function extract(src: ExtractSources, opts: ExtractOptions): ExtractResult {
  const kinds = parseModules(opts.modules);
  const tcfg = src.teacherConfig ?? null;
  const scfg = src.studentConfig;
  if (!(opts.alpha > 0)) throw new InputError('lora_alpha', `must be positive, got ${opts.alpha}`);
  if (!(opts.dropout >= 0 && opts.dropout < 1))
    throw new InputError('lora_dropout', `must be in [0, 1), got ${opts.dropout}`);
  const plan = planTransfer(
    tcfg,
    scfg,
    {
      init: opts.init,
      kinds,
      rank: opts.rank,
      structure: opts.structure,
      layers: opts.layers,
      teacherName: opts.teacherName,
      studentName: opts.studentName,
    },
    { teacher: src.teacher, student: src.student, sensitivity: src.sensitivity },
  );
  if (plan.needsTeacher && (!src.teacher || !src.sensitivity)) {
    throw new InputError(
      opts.teacherName ?? 'teacher',
      `the ${opts.init} init needs the teacher weights and its sensitivity`,
    );
  }
  const r = opts.rank;
  const scale = opts.alpha / r;
  const svd: SvdOptions = { ...opts.svd, seed: opts.svd.seed ?? deriveSeed(opts.seed, 'svd') };

  // Step 2: which teacher layer feeds each student layer.
  let layers: LayerSelection | null = null;
  if (plan.needsTeacher && tcfg) {
    const scores =
      opts.layers === 'sensitivity'
        ? layerScores(
            src.sensitivity!,
            tcfg.numLayers,
            opts.teacherName ?? 'sensitivity',
            src.sensitivitySums,
          )
        : undefined;
    layers = selectLayers(opts.layers, tcfg.numLayers, scfg.numLayers, {
      scores,
      seed: deriveSeed(opts.seed, 'layers'),
    });
  }

  const loraRng = new Rng(deriveSeed(opts.seed, 'lora'));
  const matchedRng = new Rng(deriveSeed(opts.seed, 'random-matched'));
  const modules: AdapterModule[] = [];
  const records: MatrixRecord[] = [];
  plan.pairs.forEach((pair, idx) => {
    const path = modulePath(pair.ref);
    opts.onProgress?.(idx, plan.pairs.length, path);
    const [n, m] = pair.factor;
    let factors: Factors;
    const rec: MatrixRecord = {
      module: path,
      kind: pair.ref.kind,
      studentLayer: pair.ref.layer,
      teacherLayer: null,
      teacherTensor: null,
      shape: pair.factor,
      teacherShape: pair.teacherFactor,
      transposed: pair.transposed,
      structure: null,
      offset: null,
      share: null,
      singularValues: [],
      energyKept: null,
      svd: null,
      deltaNorm: 0,
    };
    if (plan.needsTeacher) {
      const tLayer = pair.ref.layer === null ? null : layers!.teacherLayers[pair.ref.layer];
      const tName = weightName({ kind: pair.ref.kind, layer: tLayer }, tcfg!);
      // Steps 3-4: cut the student-shaped block out of the teacher matrix, then its top-r SVD.
      const S = src.sensitivity!.get(tName);
      checkRecordedSum(tName, S, src.sensitivitySums, opts.inputPaths?.sensitivity ?? 'sensitivity');
      const cut = cutSubmatrix(
        // bf16/f16 teachers stay in their bits: only the cut window is upcast
        src.teacher!.getStored?.(tName) ?? src.teacher!.get(tName),
        S,
        {
          name: tName,
          teacher: pair.teacherFactor!,
          student: pair.factor,
          transposed: pair.transposed,
          align: pair.align,
        },
        opts.structure,
        { seed: deriveSeed(opts.seed, `cut:${path}`) },
      );
      const f = factorize(cut.data, n, m, r, scale, svd, `${tName} -> ${path}`);
      Object.assign(rec, {
        teacherLayer: tLayer,
        teacherTensor: tName,
        structure: opts.structure,
        offset: cut.offset,
        share: cut.share,
        singularValues: f.singularValues,
        energyKept: f.energyKept,
        svd: resolveSvdMethod(svd.method, n, m),
      });
      factors = opts.init === 'random-matched' ? randomMatched(f, matchedRng) : f;
    } else if (opts.init === 'pissa') {
      const w = src.student.get(pair.studentWeight);
      const Ws = pair.transposed ? transposeOf(w, m, n) : w;
      const f = pissaInit(Ws, n, m, r, scale, svd, `${pair.studentWeight} (pissa)`);
      Object.assign(rec, {
        singularValues: f.singularValues,
        energyKept: f.energyKept,
        svd: resolveSvdMethod(svd.method, n, m),
      });
      factors = f;
    } else {
      factors = loraDefaultInit(n, m, r, pair.ref.kind === 'embed_tokens', loraRng);
    }
    rec.deltaNorm = scale * productNorm(factors);
    records.push(rec);
    modules.push({ ref: pair.ref, r, alpha: opts.alpha, B: factors.B, A: factors.A });
  });
  opts.onProgress?.(plan.pairs.length, plan.pairs.length, 'done');

  const inputs: Manifest['inputs'] = {};
  for (const [key, p] of Object.entries(opts.inputPaths ?? {})) inputs[key] = hashInput(p);
  // the options as given, minus the progress callback and the input paths (hashed into `inputs`)
  const recorded: Record<string, unknown> = { ...opts };
  delete recorded.onProgress;
  delete recorded.inputPaths;
  const manifest: Manifest = {
    format: MANIFEST_FORMAT,
    version: MANIFEST_VERSION,
    created: new Date().toISOString(),
    init: opts.init,
    lora: { r, alpha: opts.alpha, scale, dropout: opts.dropout },
    subtract: plan.subtract,
    untieStudentHead: plan.untieStudentHead,
    layers,
    options: { ...recorded, svd, modules: kinds },
    matrices: records,
    inputs,
    notes: plan.notes,
  };
  return { plan, modules, manifest };
}

/** Runs the extraction and writes the PEFT adapter folder and manifest.json into outDir. */
export function extractToFolder(src: ExtractSources, opts: ExtractOptions, outDir: string): ExtractResult {
  const res = extract(src, opts);
  mkdirSync(outDir, { recursive: true });
  writeAdapter(outDir, res.modules, src.studentConfig, {
    baseModel: opts.baseModel ?? opts.studentName ?? null,
    loraDropout: opts.dropout,
  });
  writeManifest(outDir, res.manifest);
  return res;
}

function transposeOf(x: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[c * rows + r] = x[r * cols + c];
  return out;
}
