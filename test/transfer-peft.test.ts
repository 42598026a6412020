// PEFT LoRA adapter folders: exact key names and shapes (docs/formats.md), write/read round trip, and the
// structural check catching a wrong key or shape for every module type, the embedding included.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  ADAPTER_CONFIG,
  ADAPTER_WEIGHTS,
  assertAdapterFolder,
  checkAdapterStructure,
  parsePeftKey,
  peftKeys,
  readAdapter,
  writeAdapter,
  type AdapterModule,
} from '../src/transfer/peft.js';
import { ALL_KINDS, factorShape, moduleRefs, type ModuleKind } from '../src/transfer/modules.js';
import { openSafetensors, writeSafetensors } from '../src/io/safetensors.js';
import { Rng } from '../src/engine/rng.js';
import { InputError } from '../src/errors.js';
import { tinyConfig } from './transfer-helpers.js';
import { randomAdapter } from './helpers/adapter.js';

const cfg = tinyConfig(); // d 16, f 24, V 32, 4 heads / 2 KV heads of 4, 2 layers
const tmp = () => mkdtempSync(join(tmpdir(), 'nuggets-peft-'));

function randomModules(
  kinds: readonly ModuleKind[],
  r: number,
  alpha: number,
  seed: number,
): AdapterModule[] {
  return randomAdapter(kinds, cfg, new Rng(seed), { r, alpha });
}

/** The tensor list (name, shape) of a correct all-modules adapter with r = 4. */
function goodTensors(r = 4) {
  return randomModules(ALL_KINDS, r, 8, 1).flatMap((mod) => {
    const [n, m] = factorShape(mod.ref.kind, cfg);
    const k = peftKeys(mod.ref);
    return [
      { name: k.A, shape: [r, m], dtype: 'F32' },
      { name: k.B, shape: [n, r], dtype: 'F32' },
    ];
  });
}
const goodConfig = () => ({
  peft_type: 'LORA',
  task_type: 'CAUSAL_LM',
  r: 4,
  lora_alpha: 8,
  lora_dropout: 0.05,
  target_modules: [...ALL_KINDS],
  bias: 'none',
  base_model_name_or_path: 'student',
  inference_mode: false,
  init_lora_weights: true,
  fan_in_fan_out: false,
  modules_to_save: null,
  rank_pattern: {},
  alpha_pattern: {},
});

test("key names and shapes are exactly PEFT's", () => {
  assert.deepEqual(peftKeys({ kind: 'q_proj', layer: 3 }), {
    A: 'base_model.model.model.layers.3.self_attn.q_proj.lora_A.weight',
    B: 'base_model.model.model.layers.3.self_attn.q_proj.lora_B.weight',
  });
  assert.deepEqual(peftKeys({ kind: 'down_proj', layer: 0 }), {
    A: 'base_model.model.model.layers.0.mlp.down_proj.lora_A.weight',
    B: 'base_model.model.model.layers.0.mlp.down_proj.lora_B.weight',
  });
  assert.deepEqual(peftKeys({ kind: 'lm_head', layer: null }), {
    A: 'base_model.model.lm_head.lora_A.weight',
    B: 'base_model.model.lm_head.lora_B.weight',
  });
  assert.deepEqual(peftKeys({ kind: 'embed_tokens', layer: null }), {
    A: 'base_model.model.model.embed_tokens.lora_embedding_A',
    B: 'base_model.model.model.embed_tokens.lora_embedding_B',
  });
  assert.equal(
    parsePeftKey('base_model.model.model.layers.1.mlp.q_proj.lora_A.weight'),
    null,
    'q_proj lives in self_attn',
  );
  assert.equal(parsePeftKey('base_model.model.model.embed_tokens.lora_embedding_A.weight'), null);
  assert.equal(parsePeftKey('base_model.model.model.layers.01.self_attn.q_proj.lora_A.weight'), null);
  assert.deepEqual(parsePeftKey('base_model.model.model.layers.1.mlp.up_proj.lora_B.weight'), {
    ref: { kind: 'up_proj', layer: 1 },
    factor: 'B',
  });
});

test('write then read: exact files, config fields and factors round trip', () => {
  const dir = tmp();
  try {
    const mods = randomModules(ALL_KINDS, 4, 8, 2);
    writeAdapter(dir, mods, cfg, { baseModel: 'models/student', loraDropout: 0.05 });
    assert.deepEqual(readdirSync(dir).sort(), [ADAPTER_CONFIG, ADAPTER_WEIGHTS]);
    const json = JSON.parse(readFileSync(join(dir, ADAPTER_CONFIG), 'utf8'));
    assert.deepEqual(json, { ...goodConfig(), base_model_name_or_path: 'models/student' });
    const st = openSafetensors(join(dir, ADAPTER_WEIGHTS));
    try {
      const shapes = Object.fromEntries(st.names().map((n) => [n, st.info(n).shape]));
      assert.equal(st.names().length, 2 * (2 + 7 * cfg.numLayers));
      assert.deepEqual(shapes['base_model.model.model.embed_tokens.lora_embedding_A'], [4, 32]); // [r, V]
      assert.deepEqual(shapes['base_model.model.model.embed_tokens.lora_embedding_B'], [16, 4]); // [d, r]
      assert.deepEqual(shapes['base_model.model.model.layers.1.self_attn.q_proj.lora_A.weight'], [4, 16]);
      assert.deepEqual(shapes['base_model.model.model.layers.1.self_attn.k_proj.lora_B.weight'], [8, 4]); // GQA: 2 x 4
      assert.deepEqual(shapes['base_model.model.model.layers.0.self_attn.o_proj.lora_A.weight'], [4, 16]);
      assert.deepEqual(shapes['base_model.model.model.layers.0.mlp.gate_proj.lora_B.weight'], [24, 4]);
      assert.deepEqual(shapes['base_model.model.model.layers.0.mlp.down_proj.lora_A.weight'], [4, 24]);
      assert.deepEqual(shapes['base_model.model.lm_head.lora_B.weight'], [32, 4]);
      assert.equal(st.metadata?.format, 'pt');
    } finally {
      st.close();
    }
    const back = readAdapter(dir, cfg);
    assert.equal(back.modules.length, mods.length);
    for (let i = 0; i < mods.length; i++) {
      assert.deepEqual(back.modules[i].ref, mods[i].ref);
      assert.equal(back.modules[i].r, 4);
      assert.equal(back.modules[i].alpha, 8);
      assert.deepEqual(back.modules[i].A, mods[i].A);
      assert.deepEqual(back.modules[i].B, mods[i].B);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('per-module ranks go to rank_pattern / alpha_pattern and read back; a rank-2r plain adapter keeps the scale with 2·alpha', () => {
  const dir = tmp();
  try {
    const mods = randomModules(['q_proj', 'v_proj', 'lm_head'], 4, 8, 3);
    const odd = mods.findIndex((m) => m.ref.kind === 'v_proj' && m.ref.layer === 1);
    const [n, m] = factorShape('v_proj', cfg);
    mods[odd] = {
      ...mods[odd],
      r: 2,
      alpha: 3,
      B: new Float32Array(n * 2).fill(1),
      A: new Float32Array(2 * m).fill(2),
    };
    const head = mods.findIndex((x) => x.ref.kind === 'lm_head');
    mods[head] = { ...mods[head], alpha: 5 };
    const c = writeAdapter(dir, mods, cfg, { baseModel: null, loraDropout: 0 });
    assert.equal(c.r, 4);
    assert.deepEqual(c.rank_pattern, { 'layers.1.self_attn.v_proj': 2 });
    assert.deepEqual(c.alpha_pattern, { 'layers.1.self_attn.v_proj': 3, lm_head: 5 });
    assert.deepEqual(c.target_modules, ['q_proj', 'v_proj', 'lm_head']);
    const back = readAdapter(dir, cfg);
    const v1 = back.modules.find((x) => x.ref.kind === 'v_proj' && x.ref.layer === 1)!;
    assert.equal(v1.r, 2);
    assert.equal(v1.alpha, 3);
    assert.equal(back.modules.find((x) => x.ref.kind === 'v_proj' && x.ref.layer === 0)!.r, 4);
    assert.equal(back.modules.find((x) => x.ref.kind === 'lm_head')!.alpha, 5);
    // layers.1 must not capture layers.11 etc.: PEFT's pattern match is anchored on a dot.
    const big = tinyConfig({ numLayers: 12 });
    const probs = checkAdapterStructure(
      { ...goodConfig(), target_modules: ['v_proj'], rank_pattern: { 'layers.1.self_attn.v_proj': 2 } },
      moduleRefs(['v_proj'], 12).flatMap((ref) => {
        const r = ref.layer === 1 ? 2 : 4;
        const k = peftKeys(ref);
        return [
          { name: k.A, shape: [r, 16] },
          { name: k.B, shape: [8, r] },
        ];
      }),
      big,
    );
    assert.deepEqual(probs, []);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  const plain = randomModules(ALL_KINDS, 8, 16, 4); // rank 2r = 8 from r = 4, alpha 8 -> 16: scale stays 2
  const dir2 = tmp();
  try {
    const c = writeAdapter(dir2, plain, cfg, { baseModel: null, loraDropout: 0.05 });
    assert.equal(c.lora_alpha / c.r, 2);
    assert.deepEqual(c.rank_pattern, {});
    assertAdapterFolder(dir2, cfg);
  } finally {
    rmSync(dir2, { recursive: true, force: true });
  }
});

test('structural check: a correct adapter has no problems', () => {
  assert.deepEqual(checkAdapterStructure(goodConfig(), goodTensors(), cfg), []);
});

test('structural check catches a wrong key name for every module type, the embedding included', () => {
  const wrongNames: Record<ModuleKind, [string, string]> = {
    embed_tokens: [
      'base_model.model.model.embed_tokens.lora_embedding_A',
      'base_model.model.model.embed_tokens.lora_embedding_A.weight',
    ],
    q_proj: [
      'base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight',
      'base_model.model.model.layers.0.self_attn.q_proj.lora_A',
    ],
    k_proj: [
      'base_model.model.model.layers.0.self_attn.k_proj.lora_B.weight',
      'base_model.model.layers.0.self_attn.k_proj.lora_B.weight',
    ],
    v_proj: [
      'base_model.model.model.layers.1.self_attn.v_proj.lora_A.weight',
      'base_model.model.model.layers.1.self_attn.v_proj.lora_A.default.weight',
    ],
    o_proj: [
      'base_model.model.model.layers.1.self_attn.o_proj.lora_B.weight',
      'model.layers.1.self_attn.o_proj.lora_B.weight',
    ],
    gate_proj: [
      'base_model.model.model.layers.0.mlp.gate_proj.lora_A.weight',
      'base_model.model.model.layers.0.self_attn.gate_proj.lora_A.weight',
    ],
    up_proj: [
      'base_model.model.model.layers.0.mlp.up_proj.lora_B.weight',
      'base_model.model.model.layers.0.mlp.up_proj.lora_b.weight',
    ],
    down_proj: [
      'base_model.model.model.layers.1.mlp.down_proj.lora_A.weight',
      'base_model.model.model.layers.1.mlp.down_proj.lora_embedding_A',
    ],
    lm_head: ['base_model.model.lm_head.lora_B.weight', 'base_model.model.model.lm_head.lora_B.weight'],
  };
  for (const kind of ALL_KINDS) {
    const [good, bad] = wrongNames[kind];
    const tensors = goodTensors().map((t) => (t.name === good ? { ...t, name: bad } : t));
    assert.equal(tensors.filter((t) => t.name === bad).length, 1, `fixture for ${kind}`);
    const probs = checkAdapterStructure(goodConfig(), tensors, cfg);
    assert.ok(
      probs.some((p) => p.includes(bad)),
      `${kind}: the wrong key is named: ${probs.join(' | ')}`,
    );
    assert.ok(
      probs.some((p) => p.includes(good) && /missing/.test(p)),
      `${kind}: the real key is reported missing: ${probs.join(' | ')}`,
    );
  }
});

test('structural check catches a wrong shape for every module type and both factors', () => {
  for (const kind of ALL_KINDS) {
    for (const factor of ['A', 'B'] as const) {
      const key = peftKeys({ kind, layer: kind === 'embed_tokens' || kind === 'lm_head' ? null : 1 })[factor];
      const tensors = goodTensors().map((t) =>
        t.name === key ? { ...t, shape: [t.shape[1], t.shape[0]] } : t,
      );
      const probs = checkAdapterStructure(goodConfig(), tensors, cfg);
      assert.equal(probs.length, 1, `${kind}.${factor}: ${probs.join(' | ')}`);
      assert.ok(probs[0].includes(key) && /expected \[/.test(probs[0]), probs[0]);
    }
  }
  // A rank that disagrees with r (both factors consistent, config says 4).
  const r3 = goodTensors(3);
  assert.ok(checkAdapterStructure(goodConfig(), r3, cfg).length >= 2 * ALL_KINDS.length);
});

test('structural check: missing modules, untargeted modules, lone factors, layers past the model, bad config', () => {
  const g = goodTensors();
  const dropLayer = g.filter((t) => !t.name.includes('layers.1.mlp.up_proj'));
  assert.ok(
    checkAdapterStructure(goodConfig(), dropLayer, cfg).some(
      (p) => /model\.layers\.1\.mlp\.up_proj/.test(p) && /missing keys/.test(p),
    ),
  );
  const noHeadTarget = { ...goodConfig(), target_modules: ALL_KINDS.filter((k) => k !== 'lm_head') };
  assert.ok(
    checkAdapterStructure(noHeadTarget, g, cfg).some((p) => /lm_head is not in target_modules/.test(p)),
  );
  const loneA = g.filter((t) => t.name !== 'base_model.model.lm_head.lora_B.weight');
  assert.ok(
    checkAdapterStructure(goodConfig(), loneA, cfg).some((p) => /lm_head\.lora_B\.weight is missing/.test(p)),
  );
  const deep = [
    ...g,
    { name: 'base_model.model.model.layers.2.self_attn.q_proj.lora_A.weight', shape: [4, 16], dtype: 'F32' },
  ];
  assert.ok(
    checkAdapterStructure(goodConfig(), deep, cfg).some((p) => /layer 2, the model has 2 layers/.test(p)),
  );
  const cases: Array<[Record<string, unknown>, RegExp]> = [
    [{ peft_type: 'IA3' }, /peft_type/],
    [{ task_type: 'SEQ_CLS' }, /task_type/],
    [{ r: 0 }, /r is 0/],
    [{ lora_alpha: -1 }, /lora_alpha/],
    [{ bias: 'all' }, /bias/],
    [{ fan_in_fan_out: true }, /fan_in_fan_out/],
    [{ init_lora_weights: 'pissa' }, /change the base weights/],
    [{ use_rslora: true }, /rslora/],
    [{ target_modules: 5 }, /target_modules/],
  ];
  for (const [patch, re] of cases) {
    const probs = checkAdapterStructure({ ...goodConfig(), ...patch }, g, cfg);
    assert.ok(
      probs.some((p) => re.test(p)),
      `${JSON.stringify(patch)}: ${probs.join(' | ')}`,
    );
  }
  // A regex target_modules is matched against the whole module path, as PEFT's re.fullmatch.
  const rx = {
    ...goodConfig(),
    target_modules:
      '.*\\.(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj)|model\\.embed_tokens|lm_head',
  };
  assert.deepEqual(checkAdapterStructure(rx, g, cfg), []);
});

test('folders: problems are reported with the folder name; pickled or malformed adapters are refused', () => {
  const dir = tmp();
  try {
    assert.throws(
      () => readAdapter(dir, cfg),
      (e: unknown) =>
        e instanceof InputError && e.message.includes(dir) && /adapter_config\.json/.test(e.message),
    );
    writeFileSync(join(dir, ADAPTER_CONFIG), '{"r": 4,');
    assert.throws(() => readAdapter(dir, cfg), /not valid JSON/);
    writeFileSync(join(dir, ADAPTER_CONFIG), JSON.stringify(goodConfig()));
    writeFileSync(join(dir, 'adapter_model.bin'), 'x');
    assert.throws(() => readAdapter(dir, cfg), /pickled adapter_model\.bin/);
    const tensors = goodTensors().map((t) => ({
      name: t.name,
      shape: t.shape,
      data: new Float32Array(t.shape[0] * t.shape[1]),
    }));
    tensors[0] = { ...tensors[0], name: tensors[0].name + '.weight' }; // the embedding A with a stray suffix
    writeSafetensors(join(dir, ADAPTER_WEIGHTS), tensors);
    assert.throws(
      () => assertAdapterFolder(dir, cfg),
      (e: unknown) =>
        e instanceof InputError && e.message.includes(dir) && /lora_embedding_A\.weight/.test(e.message),
    );
    assert.throws(() => readAdapter(dir, cfg), /lora_embedding_A is missing/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('writer refusals: wrong factor sizes, duplicate modules, layers past the model, base-mutating init', () => {
  const dir = tmp();
  try {
    const mods = randomModules(['q_proj'], 4, 8, 5);
    assert.throws(
      () =>
        writeAdapter(dir, [{ ...mods[0], A: new Float32Array(3) }], cfg, { baseModel: null, loraDropout: 0 }),
      /expected B \[16, 4\] and A \[4, 16\]/,
    );
    assert.throws(
      () => writeAdapter(dir, [mods[0], mods[0]], cfg, { baseModel: null, loraDropout: 0 }),
      /given twice/,
    );
    assert.throws(
      () =>
        writeAdapter(dir, [{ ...mods[0], ref: { kind: 'q_proj', layer: 5 } }], cfg, {
          baseModel: null,
          loraDropout: 0,
        }),
      /layer 5/,
    );
    assert.throws(
      () => writeAdapter(dir, mods, cfg, { baseModel: null, loraDropout: 0, initLoraWeights: 'pissa' }),
      /change the base weights/,
    );
    assert.deepEqual(readdirSync(dir), [], 'nothing written on refusal');
    // F16 storage round-trips to within half precision.
    writeAdapter(dir, mods, cfg, { baseModel: null, loraDropout: 0, dtype: 'F16' });
    const back = readAdapter(dir, cfg);
    for (let i = 0; i < mods.length; i++) {
      for (let j = 0; j < mods[i].A.length; j++)
        assert.ok(
          Math.abs(back.modules[i].A[j] - mods[i].A[j]) <= 1e-3 * Math.max(1, Math.abs(mods[i].A[j])),
        );
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
