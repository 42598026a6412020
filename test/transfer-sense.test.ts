// docs/method.md step 1: the streaming executor (layer by layer, boundary states only) gives the same
// sensitivities and losses as the whole model in memory, for untied, tied and biased (Qwen2)
// teachers; NaN/Inf stops with the seed and tensor named; abort stops cleanly.
import { bf16ToF32, f32ToBf16 } from '../src/engine/dtype.js';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomWeights, tinyConfig } from '../src/model/random.js';
import { expectedTensorNames, type ModelConfig } from '../src/model/config.js';
import { MemoryWeights } from '../src/model/weights.js';
import { Rng } from '../src/engine/rng.js';
import { SenseAborted } from '../src/transfer/sense/abort.js';
import { NonFiniteGradient } from '../src/transfer/sense/checks.js';
import { runSense } from '../src/transfer/sense/run.js';
import { fromIds } from '../src/transfer/sense/seeds.js';
import { DiskSink, MemorySink } from '../src/transfer/sense/sink.js';
import type { SenseExample } from '../src/transfer/sense/types.js';
import { LlamaModel } from '../src/model/model.js';

/** Seeds of different lengths with a prompt part and an answer part. */
function seeds(c: ModelConfig, seed: number, lengths: number[]): SenseExample[] {
  const rng = new Rng(seed);
  return lengths.map((n, i) => {
    const ids = Array.from({ length: n }, () => rng.int(c.vocabSize));
    const prompt = Math.max(1, Math.floor(n / 3));
    const mask = ids.map((_, t) => (t >= prompt ? 1 : 0));
    return fromIds(i, ids, mask, `seeds:${i + 1}`, i + 1);
  });
}

async function both(c: ModelConfig, weightsSeed: number, ex: SenseExample[]) {
  const w = randomWeights(c, weightsSeed);
  const mem = new MemorySink();
  const a = await runSense({ config: c, weights: w }, ex, mem, { streaming: false });
  const str = new MemorySink();
  const b = await runSense({ config: c, weights: w }, ex, str, { streaming: true });
  return { mem, str, a, b, w };
}

function assertSame(mem: MemorySink, str: MemorySink, c: ModelConfig, rel = 2e-5) {
  assert.deepEqual(str.names().sort(), expectedTensorNames(c).sort());
  assert.deepEqual(mem.names().sort(), expectedTensorNames(c).sort());
  for (const name of expectedTensorNames(c)) {
    const x = mem.get(name),
      y = str.get(name);
    assert.equal(x.length, y.length, name);
    let scale = 0;
    for (const v of x) scale = Math.max(scale, Math.abs(v));
    assert.ok(scale > 0, `${name}: sensitivity is all zero`);
    for (let i = 0; i < x.length; i++) {
      assert.ok(
        Math.abs(x[i] - y[i]) <= rel * (Math.abs(x[i]) + 1e-3 * scale),
        `${name}[${i}]: in-memory ${x[i]} vs streaming ${y[i]}`,
      );
    }
    assert.ok(Math.abs(mem.sum(name) - str.sum(name)) <= 1e-5 * Math.abs(mem.sum(name)), name);
  }
}

test('streaming equals the in-memory path: untied GQA LLaMA, every tensor and every seed loss', async () => {
  const c = tinyConfig({ numLayers: 3 });
  const ex = seeds(c, 1, [7, 12, 5, 9]);
  const { mem, str, a, b } = await both(c, 21, ex);
  assertSame(mem, str, c);
  assert.equal(a.losses.length, 4);
  for (let j = 0; j < 4; j++) {
    assert.equal(b.losses[j].index, j);
    assert.ok(Math.abs(a.losses[j].loss - b.losses[j].loss) < 1e-6, `seed ${j}`);
    assert.ok(a.losses[j].loss > 1 && a.losses[j].loss < 10);
  }
  assert.equal(a.tokens, 33);
  // rows of tokens that occur in no seed have no embedding sensitivity; lm_head rows all do
  // (a token reaches the loss unless it only sits at the last position, whose output is not scored)
  const used = new Set(ex.flatMap((e) => Array.from(e.ids.subarray(0, e.ids.length - 1))));
  const E = str.get('model.embed_tokens.weight');
  const d = c.hiddenSize;
  for (let v = 0; v < c.vocabSize; v++) {
    const rowSum = E.subarray(v * d, (v + 1) * d).reduce((s, x) => s + x, 0);
    assert.equal(rowSum > 0, used.has(v), `embedding row ${v}`);
  }
});

test('streaming equals the in-memory path: tied embeddings (both gradient contributions summed per example)', async () => {
  const c = tinyConfig({ tieWordEmbeddings: true, numLayers: 2 });
  const ex = seeds(c, 2, [6, 11, 8]);
  const { mem, str, w } = await both(c, 22, ex);
  assertSame(mem, str, c);
  assert.ok(!str.has('lm_head.weight'));
  // independent check of the tied rule on one element: the per-example gradient of the tied
  // parameter is d(loss)/d(E[v, x]) with E used twice; finite differences on the loss, float64.
  const model = LlamaModel.load({ config: c, weights: w });
  const v = ex[0].ids[2],
    x = 3,
    d = c.hiddenSize;
  const E = model.params.get('model.embed_tokens.weight').data;
  const theta = E[v * d + x];
  let want = 0;
  for (const e of ex) {
    const loss = (val: number) => {
      E[v * d + x] = val;
      return model.loss({ ids: e.ids, B: 1, T: e.ids.length }, e.targets);
    };
    const h = 1e-2;
    const g = (loss(theta + h) - loss(theta - h)) / (2 * h);
    E[v * d + x] = theta;
    want += Math.abs(theta * g);
  }
  const got = str.get('model.embed_tokens.weight')[v * d + x];
  assert.ok(
    Math.abs(got - want) <= 2e-3 * Math.abs(want) + 1e-6,
    `tied S ${got} vs finite differences ${want}`,
  );
});

test('streaming equals the in-memory path: Qwen2-style q/k/v biases and o/MLP biases get sensitivities too', async () => {
  const c = tinyConfig({
    arch: 'qwen2',
    attentionBias: true,
    oBias: true,
    mlpBias: true,
    numKvHeads: 1,
    numLayers: 2,
  });
  const ex = seeds(c, 3, [9, 4]);
  const { mem, str } = await both(c, 23, ex);
  assertSame(mem, str, c);
  assert.ok(str.has('model.layers.1.self_attn.q_proj.bias') && str.has('model.layers.0.mlp.down_proj.bias'));
});

test('NaN/Inf stops the run naming the seed and the tensor', async () => {
  const c = tinyConfig({ numLayers: 2 });
  const w = randomWeights(c, 24);
  const tensors = new Map<string, { shape: number[]; data: Float32Array }>();
  for (const name of w.names()) tensors.set(name, { shape: w.info(name).shape, data: w.get(name) });
  // Token 31's embedding row is Inf. As the LAST token of seed 1 it never reaches the loss (causal
  // attention; the last position has no target), so the loss stays finite, but 0 * NaN poisons the
  // weight gradients (PyTorch gives the same NaN).
  const d = c.hiddenSize;
  tensors.get('model.embed_tokens.weight')!.data.fill(Infinity, 31 * d, 32 * d);
  const bad = new MemoryWeights('bad', tensors);
  const ex = [
    fromIds(0, [1, 5, 7, 9, 3], [0, 0, 1, 1, 1], 'seeds:1', 1),
    fromIds(1, [1, 6, 8, 10, 31], [0, 0, 1, 1, 1], 'seeds:2', 2),
  ];
  for (const streaming of [true, false]) {
    await assert.rejects(
      runSense({ config: c, weights: bad }, ex, new MemorySink(), { streaming }),
      (e: unknown) => {
        assert.ok(e instanceof NonFiniteGradient, String(e));
        assert.match(
          (e as Error).message,
          /^seeds:2: seed 1 \(line 2\): the gradient of (lm_head|model\.(norm|embed_tokens))\.weight holds NaN at element \d+; sensitivity stopped$/,
        );
        return true;
      },
    );
  }
  // a forward pass that overflows is stopped at the loss, naming the seed
  const huge = new Map(tensors);
  huge.set('model.embed_tokens.weight', {
    shape: [c.vocabSize, d],
    data: w.get('model.embed_tokens.weight'),
  });
  const norm = w.get('model.layers.1.post_attention_layernorm.weight').map((x) => x * 1e25);
  huge.set('model.layers.1.post_attention_layernorm.weight', { shape: [d], data: norm });
  await assert.rejects(
    runSense({ config: c, weights: new MemoryWeights('huge', huge) }, ex, new MemorySink()),
    /^NonFiniteGradient: seeds:1: seed 0 \(line 1\): the gradient of the loss is NaN/,
  );
});

test('token ids outside the vocabulary and sequences past the context are refused, naming the seed', async () => {
  const c = tinyConfig({ maxPositionEmbeddings: 8 });
  const w = randomWeights(c, 25);
  const bad = fromIds(3, [1, 2, 40, 4], [0, 0, 1, 1], 'seeds.jsonl:7', 7);
  await assert.rejects(
    runSense({ config: c, weights: w }, [bad], new MemorySink()),
    /seeds\.jsonl:7: seed 3: token id 40 at position 2 is outside the vocabulary \[0, 32\)/,
  );
  const long = fromIds(
    0,
    Array.from({ length: 9 }, () => 3),
    Array.from({ length: 9 }, (_, t) => (t > 4 ? 1 : 0)),
    'seeds.jsonl:1',
    1,
  );
  await assert.rejects(
    runSense({ config: c, weights: w }, [long], new MemorySink()),
    /seed 0 has 9 tokens, more than the model's context of 8/,
  );
  assert.throws(
    () => fromIds(0, [1, 2, 3], [0, 0, 0], 'seeds.jsonl:2', 2),
    /seeds\.jsonl:2: no answer token/,
  );
});

test('an aborted run stops with SenseAborted and the disk sink leaves nothing behind', async () => {
  const c = tinyConfig({ numLayers: 3 });
  const w = randomWeights(c, 26);
  const ex = seeds(c, 5, [6, 6, 6]);
  const dir = mkdtempSync(join(tmpdir(), 'nuggets-sense-'));
  try {
    const ac = new AbortController();
    const sink = new DiskSink(join(dir, 'sens.safetensors'));
    let calls = 0;
    await assert.rejects(
      (async () => {
        try {
          await runSense({ config: c, weights: w }, ex, sink, {
            signal: ac.signal,
            onProgress: () => {
              if (++calls === 5) ac.abort();
            },
          });
        } finally {
          sink.close();
        }
      })(),
      SenseAborted,
    );
    assert.deepEqual(readdirSync(dir), []);
    // a complete disk-sink run reads back what it stored
    const sink2 = new DiskSink(join(dir, 'sens.safetensors'));
    const mem = new MemorySink();
    await runSense({ config: c, weights: w }, ex, sink2);
    await runSense({ config: c, weights: w }, ex, mem);
    for (const name of expectedTensorNames(c)) assert.deepEqual(sink2.get(name), mem.get(name), name);
    sink2.close();
    assert.ok(!existsSync(sink2.dir));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a bf16 disk sink keeps its parts rounded to bf16: exactly the values of a bf16 file, sums of the float32 S', async () => {
  // tied embeddings: the lm_head share is a "~" scratch tensor that must stay float32 until added to
  const c = tinyConfig({ numLayers: 2, tieWordEmbeddings: true });
  const w = randomWeights(c, 27);
  const ex = seeds(c, 6, [7, 5]);
  const dir = mkdtempSync(join(tmpdir(), 'nuggets-sense-bf16-'));
  try {
    const half = new DiskSink(join(dir, 'sens.safetensors'), 'bf16');
    const mem = new MemorySink();
    await runSense({ config: c, weights: w }, ex, half);
    await runSense({ config: c, weights: w }, ex, mem);
    const parts = readdirSync(half.dir);
    assert.ok(parts.length > 0 && parts.every((f) => f.endsWith('.bf16')), parts.join());
    for (const name of expectedTensorNames(c)) {
      const full = mem.get(name);
      assert.deepEqual(half.get(name), bf16ToF32(f32ToBf16(full)), name);
      assert.equal(half.sum(name), mem.sum(name), `${name}: sum of the float32 S`);
    }
    half.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
