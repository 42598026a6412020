/**
 * The trainable LoRA factors of a model as ONE flat parameter group: every adapter's A and B are
 * views into a single `data` array, and their gradients views into a single `grad` array. The
 * optimizer then runs one kernels().adamw call per update over the whole group, gradient clipping is
 * one pass over one array, and a checkpoint stores three arrays (factors and the two AdamW moments)
 * with a layout list to check them against on resume.
 *
 * Layout: modules in the model's own order (embed_tokens, then per layer q,k,v,o,gate,up,down, then
 * lm_head), each as A then B. Buffers come from `alloc`, so the float64 gradient-check mode gets a
 * Float64Array group and the same code runs unchanged.
 */
import { alloc } from '../engine/alloc.js';
import type { LlamaModel } from '../model/model.js';
import type { Lora } from '../model/lora.js';

type F32 = Float32Array;

export interface LoraSegment {
  /** PEFT module path, e.g. `model.layers.0.self_attn.q_proj`. */
  module: string;
  factor: 'A' | 'B';
  /** [rows, cols] of the factor as stored (A [r, in], B [out, r]; embedding A [r, V], B [d, r]). */
  shape: [number, number];
  offset: number;
  length: number;
}

export class LoraParams {
  /** Every factor's values, concatenated (the adapters' A/B arrays are views into it). */
  readonly data: F32;
  /** Every factor's gradient, same layout (the adapters' dA/dB are views into it). */
  readonly grad: F32;
  readonly segments: readonly LoraSegment[];
  /** The adapters by module path, in layout order. */
  readonly loras: ReadonlyMap<string, Lora>;

  private constructor(data: F32, grad: F32, segments: LoraSegment[], loras: Map<string, Lora>) {
    this.data = data;
    this.grad = grad;
    this.segments = segments;
    this.loras = loras;
  }

  /**
   * Gathers the adapters attached to `model` into one group: their current values are copied into
   * the flat array and each Lora is rebound to views of it (so forward/backward read and write the
   * group directly). Call once, after every LoRA is attached.
   */
  static gather(model: LlamaModel): LoraParams {
    const loras = model.loras();
    if (loras.size === 0) throw new Error('LoraParams.gather: the model has no LoRA attached');
    const segments: LoraSegment[] = [];
    let total = 0;
    for (const [module, l] of loras) {
      segments.push({ module, factor: 'A', shape: [l.r, l.inDim], offset: total, length: l.A.length });
      total += l.A.length;
      segments.push({ module, factor: 'B', shape: [l.outDim, l.r], offset: total, length: l.B.length });
      total += l.B.length;
    }
    const data = alloc(total);
    const grad = alloc(total);
    for (const s of segments) {
      const l = loras.get(s.module)!;
      const view = data.subarray(s.offset, s.offset + s.length);
      const gview = grad.subarray(s.offset, s.offset + s.length);
      if (s.factor === 'A') {
        view.set(l.A);
        l.A = view;
        l.dA = gview;
      } else {
        view.set(l.B);
        l.B = view;
        l.dB = gview;
      }
    }
    return new LoraParams(data, grad, segments, loras);
  }

  get size(): number {
    return this.data.length;
  }

  zeroGrad(): void {
    this.grad.fill(0);
  }

  /** One factor's values (a view). */
  factor(module: string, which: 'A' | 'B'): F32 {
    const s = this.segments.find((x) => x.module === module && x.factor === which);
    if (!s) throw new Error(`no LoRA factor ${which} for ${module}`);
    return this.data.subarray(s.offset, s.offset + s.length);
  }

  /** The layout as plain data (saved in checkpoints, compared on resume). */
  layout(): Array<[string, 'A' | 'B', number, number]> {
    return this.segments.map((s) => [s.module, s.factor, s.shape[0], s.shape[1]]);
  }

  /** Problems comparing a saved layout with this one (empty = identical). */
  layoutDiff(saved: unknown): string[] {
    const mine = this.layout();
    if (!Array.isArray(saved)) return ['the checkpoint has no LoRA layout'];
    const out: string[] = [];
    const key = (x: unknown) => (Array.isArray(x) ? `${x[0]}.lora_${x[1]} [${x[2]}, ${x[3]}]` : String(x));
    const savedKeys = saved.map(key);
    const mineKeys = mine.map(key);
    const inSaved = new Set(savedKeys);
    const inMine = new Set(mineKeys);
    for (const k of savedKeys) if (!inMine.has(k)) out.push(`${k} is in the checkpoint but not in this run`);
    for (const k of mineKeys) if (!inSaved.has(k)) out.push(`${k} is in this run but not in the checkpoint`);
    if (out.length === 0 && savedKeys.some((k, i) => k !== mineKeys[i]))
      out.push('the factors are in a different order');
    return out;
  }
}
