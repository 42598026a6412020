/**
 * nuggets' model against an independent PyTorch reference (scripts/fixtures/make_model_fixture.py,
 * committed outputs in fixtures/model/): logits, answer-only loss, the gradient of every parameter,
 * of every LoRA factor (PEFT semantics, embedding and lm_head included) and of the embedding output.
 *   llama-gqa:  GQA 4/2, head_dim 8 != 24/4, untied lm_head, rope_theta 1000, left + right padding
 *   qwen2-lora: q/k/v biases, tied embeddings, rope_theta 1e6, LoRA on every module type, padding
 * The reference is computed in float64; the default backend in float32 must match to 1e-4 relative,
 * the TypeScript backend in float64 mode to 1e-9.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { kernels, setKernels } from '../src/engine/backend.js';
import { tsKernels } from '../src/engine/ts/index.js';
import { setPrecision } from '../src/engine/alloc.js';
import { openHfModel } from '../src/io/checkpoint.js';
import { openSafetensors } from '../src/io/safetensors.js';
import { LlamaModel } from '../src/model/model.js';
import type { Batch } from '../src/model/batch.js';
import { ROOT } from './model-helpers.js';

const FIX = join(ROOT, 'fixtures', 'model');

interface Inputs {
  B: number;
  T: number;
  ids: number[];
  attention_mask: number[];
  targets: number[];
  loss: number;
}

/** PEFT adapter key -> module path and factor. */
function parsePeftKey(key: string): { module: string; factor: 'A' | 'B' } {
  const m =
    /^base_model\.model\.(.+)\.(lora_A\.weight|lora_B\.weight|lora_embedding_A|lora_embedding_B)$/.exec(key);
  if (!m) throw new Error(`not a PEFT LoRA key: ${key}`);
  return { module: m[1], factor: m[2].includes('A') ? 'A' : 'B' };
}

/**
 * Largest per-element error |got - want| / max(|want|, floor * max|want|): relative, with a floor
 * at a small share of the tensor's scale so that entries that are ~0 in truth do not turn float32
 * rounding into huge "relative" errors.
 */
function relErr(got: ArrayLike<number>, want: ArrayLike<number>, floor: number): { err: number; i: number } {
  let scale = 0;
  for (let i = 0; i < want.length; i++) scale = Math.max(scale, Math.abs(want[i]));
  let err = 0,
    at = -1;
  for (let i = 0; i < want.length; i++) {
    const e = Math.abs(got[i] - want[i]) / Math.max(Math.abs(want[i]), floor * scale, 1e-30);
    if (!(e <= err)) {
      err = e;
      at = i;
    }
  }
  return { err, i: at };
}

function check(
  name: string,
  got: ArrayLike<number>,
  want: ArrayLike<number>,
  tol: number,
  floor: number,
): number {
  assert.equal(got.length, want.length, `${name}: length`);
  const { err, i } = relErr(got, want, floor);
  assert.ok(
    err <= tol,
    `${name}[${i}]: nuggets ${got[i]} vs PyTorch ${want[i]} (relative error ${err.toExponential(2)})`,
  );
  return err;
}

/** The fixture's expected values are stored as F64 (exact float64 truth); read them without rounding. */
function openF64(path: string) {
  const r = openSafetensors(path);
  return {
    names: () => r.names(),
    close: () => r.close(),
    get(name: string): Float64Array {
      const dtype = r.info(name).dtype;
      if (dtype !== 'F64') throw new Error(`${path}: ${name} is ${dtype}, expected F64`);
      const raw = r.getRaw(name);
      return new Float64Array(raw.buffer, raw.byteOffset, raw.byteLength / 8);
    },
  };
}

function runFixture(name: string, tol: number, floor: number): { checked: number; worst: number } {
  const folder = join(FIX, name);
  const inputs = JSON.parse(readFileSync(join(folder, 'inputs.json'), 'utf8')) as Inputs;
  const model = LlamaModel.load(openHfModel(folder));
  const expected = openF64(join(folder, 'expected.safetensors'));
  let adapterKeys: string[] = [];
  if (existsSync(join(folder, 'adapter_model.safetensors'))) {
    const adapter = openSafetensors(join(folder, 'adapter_model.safetensors'));
    const acfg = JSON.parse(readFileSync(join(folder, 'adapter_config.json'), 'utf8')) as {
      r: number;
      lora_alpha: number;
    };
    adapterKeys = adapter.names();
    const byModule = new Map<string, { A?: Float32Array; B?: Float32Array }>();
    for (const key of adapterKeys) {
      const { module, factor } = parsePeftKey(key);
      const e = byModule.get(module) ?? {};
      e[factor] = adapter.get(key);
      byModule.set(module, e);
    }
    for (const [module, { A, B }] of byModule)
      model.attachLora(module, { r: acfg.r, alpha: acfg.lora_alpha, A, B });
    adapter.close();
  }

  const { B, T } = inputs;
  const V = model.config.vocabSize,
    d = model.config.hiddenSize;
  const batch: Batch = {
    ids: Int32Array.from(inputs.ids),
    B,
    T,
    attentionMask: Uint8Array.from(inputs.attention_mask),
  };
  const targets = Int32Array.from(inputs.targets);
  let worst = 0,
    checked = 0;
  const track = (e: number) => {
    worst = Math.max(worst, e);
    checked++;
  };

  // logits on real tokens (padded rows are never used; HF fills them with attention over padding)
  const logits = model.forward(batch).slice();
  const wantLogits = expected.get('logits');
  const realRows = inputs.attention_mask.flatMap((m, r) => (m ? [r] : []));
  const pick = (a: ArrayLike<number>) =>
    realRows.flatMap((r) => Array.from({ length: V }, (_, v) => a[r * V + v]));
  track(check('logits', pick(logits), pick(wantLogits), tol, floor));

  model.enableGrads();
  model.zeroGrads();
  const loss = model.loss(batch, targets);
  track(check('loss', [loss], expected.get('loss'), tol, 0));
  model.backward();

  for (const p of model.params.unique())
    track(check(`grad.${p.name}`, p.grad!, expected.get(`grad.${p.name}`), tol, floor));
  const loras = model.loras();
  for (const key of adapterKeys) {
    const { module, factor } = parsePeftKey(key);
    const l = loras.get(module)!;
    track(check(`grad.${key}`, factor === 'A' ? l.dA : l.dB, expected.get(`grad.${key}`), tol, floor));
  }
  track(check('grad.inputs_embeds', model.inputGrad, expected.get('grad.inputs_embeds'), tol, floor));
  // every expected tensor was compared
  assert.equal(checked, expected.names().length, 'all expected tensors checked');
  assert.equal(model.inputGrad.length, B * T * d);
  expected.close();
  return { checked, worst };
}

for (const name of ['llama-gqa', 'qwen2-lora']) {
  test(`${name}: matches the PyTorch reference to 1e-4 relative (default backend, float32)`, (t) => {
    const { checked, worst } = runFixture(name, 1e-4, 1e-2);
    t.diagnostic(
      `${kernels().name} backend: ${checked} tensors, worst relative error ${worst.toExponential(2)}`,
    );
  });

  test(`${name}: matches the PyTorch reference to 1e-9 (TypeScript backend, float64)`, (t) => {
    const prev = kernels();
    setKernels(tsKernels);
    setPrecision('f64');
    try {
      const { checked, worst } = runFixture(name, 1e-9, 1e-6);
      t.diagnostic(`float64: ${checked} tensors, worst relative error ${worst.toExponential(2)}`);
    } finally {
      setPrecision('f32');
      setKernels(prev);
    }
  });
}
