/**
 * What training leaves behind (docs/method.md step 7), as PEFT adapter folders:
 *
 *   <out>/adapter_config.json + adapter_model.safetensors
 *       the adapter that loads on the UNTOUCHED student. Without the subtract trick (PEFT default
 *       init) it is the trained adapter itself; with it (teacher init, PiSSA, random-matched) it is the
 *       plain rank-2r adapter B = [B1 | B0], A = [A1 ; -A0] with alpha doubled, so that
 *       W + scale·B·A = W - scale·B0·A0 + scale·B1·A1 exactly as training ran.
 *   <out>/trained_adapter/   (subtract trick only)
 *       the trained factors (B1, A1) themselves. They belong on W - scale·B0·A0, not on the student:
 *       the folder carries a nuggets_adapter.json marker saying so, and `nuggets merge` refuses it.
 *
 * Keeping the untouched-student adapter at the top means `nuggets generate/eval --adapter <out>` and
 * PEFT's `PeftModel.from_pretrained(student, out)` compute the trained model, never a silently
 * different one.
 */
import { join } from 'node:path';
import { writeFileAtomic, writeJsonAtomic } from '../io/atomic.js';
import type { ModelConfig } from '../model/config.js';
import { plainAdapterFactors } from '../transfer/inject.js';
import { writeAdapter, type AdapterModule } from '../transfer/peft.js';
import { factorShape, modulePath, type ModuleRef } from '../transfer/modules.js';
import type { LoraParams } from './lora-params.js';

export const TRAINED_ADAPTER_DIR = 'trained_adapter';
export const ADAPTER_MARKER = 'nuggets_adapter.json';

export interface AdapterExportOptions {
  config: ModelConfig;
  /** base_model_name_or_path. */
  baseModel: string | null;
  loraDropout: number;
  dtype?: 'F32' | 'F16' | 'BF16';
}

/** The trained factors as adapter modules (copies), in `refs` order. */
export function trainedModules(params: LoraParams, refs: readonly ModuleRef[]): AdapterModule[] {
  return refs.map((ref) => {
    const path = modulePath(ref);
    const l = params.loras.get(path);
    if (!l) throw new Error(`no trained LoRA for ${path}`);
    return { ref, r: l.r, alpha: l.alpha, A: Float32Array.from(l.A), B: Float32Array.from(l.B) };
  });
}

/**
 * The plain adapter of docs/method.md step 7 for each module: rank 2r, alpha 2·alpha (same scale), from
 * the trained factors and the initial ones.
 */
export function plainModules(
  trained: readonly AdapterModule[],
  init: readonly AdapterModule[],
  config: ModelConfig,
): AdapterModule[] {
  const byPath = new Map(init.map((m) => [modulePath(m.ref), m]));
  return trained.map((t) => {
    const i = byPath.get(modulePath(t.ref));
    if (!i) throw new Error(`no initial factors for ${modulePath(t.ref)}`);
    if (i.alpha / i.r !== t.alpha / t.r)
      throw new Error(`${modulePath(t.ref)}: initial and trained scales differ`);
    const [n, m] = factorShape(t.ref.kind, config);
    const f = plainAdapterFactors({ B: t.B, A: t.A, n, m, r: t.r }, { B: i.B, A: i.A, n, m, r: i.r });
    return { ref: t.ref, r: f.r, alpha: 2 * t.alpha, A: f.A, B: f.B };
  });
}

/** The modules of the adapter that loads on the untouched student. */
export function studentAdapterModules(
  params: LoraParams,
  refs: readonly ModuleRef[],
  init: readonly AdapterModule[] | null,
  config: ModelConfig,
): AdapterModule[] {
  const trained = trainedModules(params, refs);
  return init ? plainModules(trained, init, config) : trained;
}

/** Writes the adapter(s) described in the file comment into `dir`. Returns the folders written. */
export function writeTrainedAdapters(
  dir: string,
  params: LoraParams,
  refs: readonly ModuleRef[],
  init: readonly AdapterModule[] | null,
  o: AdapterExportOptions,
): { student: string; trained: string | null } {
  const wopts = { baseModel: o.baseModel, loraDropout: o.loraDropout, dtype: o.dtype, inferenceMode: true };
  const trained = trainedModules(params, refs);
  if (!init) {
    writeAdapter(dir, trained, o.config, wopts);
    return { student: dir, trained: null };
  }
  writeAdapter(dir, plainModules(trained, init, o.config), o.config, wopts);
  const tdir = join(dir, TRAINED_ADAPTER_DIR);
  writeAdapter(tdir, trained, o.config, wopts);
  writeJsonAtomic(join(tdir, ADAPTER_MARKER), {
    base: 'student-minus-init',
    note:
      'These are the trained factors (B1, A1). They apply to the student with W - scale*B0*A0 (the subtract trick), ' +
      'NOT to the untouched student; the adapter in the parent folder ([B1 | B0], [A1 ; -A0]) loads on the untouched student.',
  });
  writeFileAtomic(join(tdir, 'README.md'), [
    '# Trained LoRA factors (subtract trick)\n\n' +
      'These factors (B1, A1) were trained on the student whose adapted weights were replaced by W - scale·B0·A0 ' +
      '(docs/method.md step 5). Loaded on the untouched student they give a different model. Use the adapter in the ' +
      'parent folder (rank 2r: B = [B1 | B0], A = [A1 ; -A0]) or `nuggets merge`.\n',
  ]);
  return { student: dir, trained: tdir };
}
