/**
 * `nuggets pretrain` (src/train/pretrain.ts): training lowers the loss, the written HF folder reloads
 * with the same held-out loss through its tokenizer.json, continuing the real stories260K starts at
 * its known held-out loss, packing and document splitting, and bad input named clearly.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { InputError } from '../src/errors.js';
import { loadModelSource } from '../src/io/load.js';
import { Llama2cTokenizer } from '../src/io/tokenizer-llama2c.js';
import { LlamaModel } from '../src/model/model.js';
import { pretrain } from '../src/train/pretrain.js';
import { heldOutLoss } from '../src/train/pretrain/loop.js';
import { PRETRAIN_DEFAULTS, type PretrainOptions } from '../src/train/pretrain/options.js';
import { initialWeights } from '../src/train/pretrain/resolve.js';
import { PackedSequences, readCorpus, splitDocuments, tokenStream } from '../src/train/pretrain-data.js';
import { readTrainerLog } from '../src/train/log.js';
import { main } from '../src/cli/main.js';
import { readStories } from '../scripts/zoo/tinystories.js';

const TOK = 'data/stories260k/tokenizer.bin';
const tmp = mkdtempSync(join(tmpdir(), 'nuggets-pretrain-'));
const stories = readStories('data/tinystories/tinystories_val.txt');
const quiet = { log: () => {} };

function corpus(name: string, docs: string[]): string {
  const p = join(tmp, name);
  writeFileSync(p, docs.map((t) => JSON.stringify({ text: t })).join('\n') + '\n');
  return p;
}

const TRAIN = corpus('train.jsonl', stories.slice(0, 12));
const VAL = corpus('val.jsonl', stories.slice(12, 14));

function tiny(over: Partial<PretrainOptions>): PretrainOptions {
  return {
    ...PRETRAIN_DEFAULTS,
    data: TRAIN,
    valData: VAL,
    out: join(tmp, 'tiny'),
    tokenizer: TOK,
    hiddenSize: 16,
    numLayers: 2,
    numHeads: 2,
    numKvHeads: 1,
    intermediateSize: 32,
    seqLen: 32,
    batchSize: 8,
    microBatchSize: 4,
    learningRate: 1e-2,
    warmupSteps: 2,
    maxSteps: 25,
    progress: false,
    ...over,
  };
}

test('pretraining a tiny model lowers the held-out loss and writes a loadable HF folder with its recipe', () => {
  const out = join(tmp, 'tiny-a');
  const r = pretrain(tiny({ out, loggingSteps: 5, evalSteps: 10 }), {
    ...quiet,
    command: 'nuggets pretrain --test',
  });
  assert.equal(r.steps, 25);
  assert.ok(r.initialValLoss !== null && r.valLoss !== null);
  // from ~ln(512) = 6.24 at init; 25 updates at lr 1e-2 learn at least the unigram statistics (~5 nats)
  assert.ok(Math.abs(r.initialValLoss! - Math.log(512)) < 0.1, `initial loss ${r.initialValLoss}`);
  assert.ok(r.valLoss! < r.initialValLoss! - 1.0, `held-out loss ${r.initialValLoss} -> ${r.valLoss}`);
  for (const f of [
    'config.json',
    'model.safetensors',
    'tokenizer.json',
    'tokenizer_config.json',
    'generation_config.json',
    'RECIPE.md',
    'trainer_log.jsonl',
  ]) {
    assert.ok(existsSync(join(out, f)), f);
  }
  // The folder reloads through tokenizer.json (not tokenizer.bin) and gives the same held-out loss:
  // the weights, the config and the converted tokenizer all round-trip.
  const src = loadModelSource(out);
  assert.equal(src.format, 'hf');
  assert.equal(src.config.hiddenSize, 16);
  assert.equal(src.config.numKvHeads, 1);
  assert.equal(src.config.vocabSize, 512);
  const valDocs = readCorpus(VAL).documents;
  const hfIds = tokenStream(valDocs, src.tokenizer);
  const binIds = tokenStream(valDocs, Llama2cTokenizer.fromFile(TOK));
  assert.deepEqual([...hfIds], [...binIds]);
  const model = LlamaModel.load(src);
  const again = heldOutLoss(model, new PackedSequences(hfIds, 32), 4);
  assert.ok(Math.abs(again - r.valLoss!) < 1e-5, `reloaded held-out loss ${again} vs ${r.valLoss}`);
  // trainer_log.jsonl: LLaMA-Factory fields, one line per 5 updates, eval lines at 10, 20, 25
  const log = readTrainerLog(join(out, 'trainer_log.jsonl'));
  assert.deepEqual(
    log.map((l) => l.current_steps),
    [5, 10, 15, 20, 25],
  );
  assert.deepEqual(
    log.filter((l) => l.eval_loss !== undefined).map((l) => l.current_steps),
    [10, 20, 25],
  );
  assert.equal(log.at(-1)!.eval_loss, Math.round(r.valLoss! * 1e4) / 1e4);
  for (const k of [
    'total_steps',
    'loss',
    'learning_rate',
    'epoch',
    'percentage',
    'elapsed_time',
    'remaining_time',
  ])
    assert.ok(k in log[0], k);
  // RECIPE.md records the command, the seed and the data's sha256
  const recipe = readFileSync(join(out, 'RECIPE.md'), 'utf8');
  assert.match(recipe, /nuggets pretrain --test/);
  assert.ok(recipe.includes(readCorpus(TRAIN).sha256));
  assert.match(recipe, /\| seed \| 42 \|/);
});

test('same options, same model: training is deterministic', () => {
  const a = pretrain(tiny({ out: join(tmp, 'det-a'), maxSteps: 3 }), quiet);
  const b = pretrain(tiny({ out: join(tmp, 'det-b'), maxSteps: 3 }), quiet);
  assert.equal(a.valLoss, b.valLoss);
  assert.deepEqual(
    readFileSync(join(tmp, 'det-a', 'model.safetensors')),
    readFileSync(join(tmp, 'det-b', 'model.safetensors')),
  );
});

test('--gradient-checkpointing: the same model bytes and recipe as without it', () => {
  const a = pretrain(tiny({ out: join(tmp, 'cp-off'), maxSteps: 3 }), quiet);
  const b = pretrain(tiny({ out: join(tmp, 'cp-on'), maxSteps: 3, gradientCheckpointing: true }), quiet);
  assert.equal(a.valLoss, b.valLoss);
  assert.deepEqual(
    readFileSync(join(tmp, 'cp-on', 'model.safetensors')),
    readFileSync(join(tmp, 'cp-off', 'model.safetensors')),
  );
  const options = (dir: string) =>
    readFileSync(join(tmp, dir, 'RECIPE.md'), 'utf8').split('All options as resolved:')[1];
  assert.equal(options('cp-on').replace(/cp-on/g, 'X'), options('cp-off').replace(/cp-off/g, 'X'));
});

test('--max-shard-size: save_pretrained shards holding the same tensors as the single file', () => {
  pretrain(tiny({ out: join(tmp, 'one-file'), maxSteps: 2 }), quiet);
  pretrain(tiny({ out: join(tmp, 'sharded'), maxSteps: 2, maxShardSize: '40KB' }), quiet);
  assert.ok(!existsSync(join(tmp, 'sharded', 'model.safetensors')));
  const index = JSON.parse(readFileSync(join(tmp, 'sharded', 'model.safetensors.index.json'), 'utf8')) as {
    weight_map: Record<string, string>;
  };
  const shards = [...new Set(Object.values(index.weight_map))].sort();
  assert.ok(shards.length >= 2, `${shards.length} shards`);
  assert.match(shards[0], /^model-00001-of-0000\d\.safetensors$/);
  // 40 KB of tensor bytes a shard, plus its JSON header
  for (const f of shards) assert.ok(statSync(join(tmp, 'sharded', f)).size <= 40_000 + 4096, f);
  const one = loadModelSource(join(tmp, 'one-file'));
  const many = loadModelSource(join(tmp, 'sharded'));
  assert.deepEqual([...many.weights.names()].sort(), [...one.weights.names()].sort());
  for (const name of one.weights.names())
    assert.deepEqual(many.weights.get(name), one.weights.get(name), name);
  one.weights.close();
  many.weights.close();
  assert.throws(() => pretrain(tiny({ maxShardSize: 'big' }), quiet), /"big" is not a size/);
});

test('continuing the real stories260K starts from its known held-out loss (about 1.27 nats)', () => {
  // --init with a llama2.c checkpoint: the weights are permuted to HF layout and trained as such; a
  // wrong permutation or tokenizer would show as a far higher loss than the model's 1.27.
  const r = pretrain(
    {
      ...PRETRAIN_DEFAULTS,
      data: corpus('s260-train.jsonl', stories.slice(20, 24)),
      valData: corpus('s260-val.jsonl', stories.slice(30, 36)),
      out: join(tmp, 's260'),
      init: 'data/stories260k/checkpoint_legacy.bin',
      seqLen: 256,
      batchSize: 2,
      microBatchSize: 2,
      maxSteps: 1,
      learningRate: 1e-5,
      warmupSteps: 0,
      progress: false,
    },
    quiet,
  );
  assert.ok(
    r.initialValLoss! > 1.0 && r.initialValLoss! < 1.6,
    `stories260K held-out loss ${r.initialValLoss}`,
  );
  assert.ok(
    Math.abs(r.valLoss! - r.initialValLoss!) < 0.05,
    `one tiny step moved the loss ${r.initialValLoss} -> ${r.valLoss}`,
  );
  const src = loadModelSource(join(tmp, 's260'));
  assert.equal(src.config.hiddenSize, 64);
  assert.equal(src.config.tieWordEmbeddings, true);
});

test('gradient accumulation: micro-batches of 2 give the update of one micro-batch of 8 (to float rounding)', () => {
  const a = pretrain(tiny({ out: join(tmp, 'acc-a'), maxSteps: 2, microBatchSize: 8 }), quiet);
  const b = pretrain(tiny({ out: join(tmp, 'acc-b'), maxSteps: 2, microBatchSize: 2 }), quiet);
  const wa = loadModelSource(join(tmp, 'acc-a')).weights,
    wb = loadModelSource(join(tmp, 'acc-b')).weights;
  let worst = 0;
  for (const name of wa.names()) {
    const x = wa.get(name),
      y = wb.get(name);
    for (let i = 0; i < x.length; i++) worst = Math.max(worst, Math.abs(x[i] - y[i]));
  }
  // two AdamW updates at lr 1e-2 move weights by ~2e-2; accumulation order only changes rounding
  assert.ok(worst < 1e-4, `max weight difference ${worst}`);
  assert.ok(Math.abs(a.valLoss! - b.valLoss!) < 1e-4);
});

test('the architecture can come from an HF config.json (vocab must match the tokenizer)', () => {
  const cfg = join(tmp, 'config.json');
  writeFileSync(
    cfg,
    JSON.stringify({
      model_type: 'llama',
      vocab_size: 512,
      hidden_size: 24,
      intermediate_size: 40,
      num_hidden_layers: 1,
      num_attention_heads: 3,
      num_key_value_heads: 1,
      max_position_embeddings: 64,
      rms_norm_eps: 1e-6,
    }),
  );
  const arch = {
    hiddenSize: undefined,
    numLayers: undefined,
    numHeads: undefined,
    numKvHeads: undefined,
    intermediateSize: undefined,
  };
  const r = pretrain(tiny({ ...arch, modelConfig: cfg, out: join(tmp, 'from-config'), maxSteps: 1 }), quiet);
  assert.equal(r.config.hiddenSize, 24);
  assert.equal(r.config.headDim, 8);
  assert.equal(r.config.rmsNormEps, 1e-6);
  assert.equal(loadModelSource(join(tmp, 'from-config')).config.maxPositionEmbeddings, 64);
  writeFileSync(
    cfg,
    JSON.stringify({
      model_type: 'llama',
      vocab_size: 600,
      hidden_size: 24,
      intermediate_size: 40,
      num_hidden_layers: 1,
      num_attention_heads: 3,
    }),
  );
  assert.throws(
    () => pretrain(tiny({ ...arch, modelConfig: cfg, out: join(tmp, 'from-config-bad') }), quiet),
    (e: unknown) => e instanceof InputError && e.source === cfg && /vocab_size 600/.test(e.problem),
  );
  assert.throws(() => pretrain(tiny({ modelConfig: cfg }), quiet), /not both/);
});

test('packing: BOS before each document, llama2.c sequences overlapping by one token', () => {
  const tok = Llama2cTokenizer.fromFile(TOK);
  const docs = [
    { text: 'Hello world.', source: 'a:1' },
    { text: 'The cat sat.', source: 'a:2' },
  ];
  const s = tokenStream(docs, tok);
  const a = tok.encode('Hello world.', { addBos: true }),
    b = tok.encode('The cat sat.', { addBos: true });
  assert.deepEqual([...s], [...a, ...b]);
  const withEos = tokenStream(docs, tok, { eos: true });
  assert.deepEqual([...withEos], [...a, 2, ...b, 2]);
  const packed = new PackedSequences(
    Int32Array.from({ length: 10 }, (_, i) => i),
    3,
  );
  assert.equal(packed.count, 3);
  const ids = new Int32Array(3),
    tg = new Int32Array(3);
  packed.fill(2, ids, tg, 0);
  assert.deepEqual([...ids], [6, 7, 8]);
  assert.deepEqual([...tg], [7, 8, 9]);
});

test('plain text files split into documents by blank lines, lines, or not at all; held-out split is seeded', () => {
  const p = join(tmp, 'plain.txt');
  writeFileSync(p, 'First doc line one.\nline two.\n\n\nSecond doc.\n \nThird.\n');
  const blank = readCorpus(p, 'blank-line').documents;
  assert.deepEqual(
    blank.map((d) => d.text),
    ['First doc line one.\nline two.', 'Second doc.', 'Third.'],
  );
  assert.deepEqual(
    blank.map((d) => d.source),
    [`${p}:1`, `${p}:5`, `${p}:7`],
  );
  assert.deepEqual(
    readCorpus(p, 'line').documents.map((d) => d.source),
    [`${p}:1`, `${p}:2`, `${p}:5`, `${p}:7`],
  );
  assert.equal(readCorpus(p, 'none').documents.length, 1);
  const docs = Array.from({ length: 40 }, (_, i) => ({ text: `d${i}`, source: `x:${i}` }));
  const s1 = splitDocuments(docs, 0.1, 5),
    s2 = splitDocuments(docs, 0.1, 5);
  assert.equal(s1.val.length, 4);
  assert.equal(s1.train.length, 36);
  assert.deepEqual(s1.val, s2.val);
  assert.notDeepEqual(splitDocuments(docs, 0.1, 6).val, s1.val);
});

test('the random init: norms 1, matrices N(0, std^2), residual projections scaled by 1/sqrt(2L)', () => {
  const c = { ...loadModelSource(join(tmp, 'tiny-a')).config };
  const w = initialWeights(
    { ...c, hiddenSize: 64, intermediateSize: 128, numHeads: 4, numKvHeads: 2, headDim: 16 },
    3,
    0.02,
  );
  const std = (a: Float32Array) => Math.sqrt(a.reduce((s, x) => s + x * x, 0) / a.length);
  assert.ok(w.get('model.norm.weight').every((x) => x === 1));
  assert.ok(Math.abs(std(w.get('model.layers.0.mlp.up_proj.weight')) - 0.02) < 0.001);
  assert.ok(Math.abs(std(w.get('model.layers.1.self_attn.o_proj.weight')) - 0.02 / 2) < 0.0005);
});

test('bad input is refused with the file or option named', () => {
  const bad = join(tmp, 'bad.jsonl');
  writeFileSync(bad, '{"text": "fine"}\n{"prompt": "x", "answer": "y"}\n');
  assert.throws(
    () => pretrain(tiny({ data: bad }), quiet),
    (e: unknown) => e instanceof InputError && e.source === `${bad}:2` && /\{"text"/.test(e.problem),
  );
  const small = corpus('small.jsonl', ['Once upon a time.']);
  assert.throws(
    () => pretrain(tiny({ data: small }), quiet),
    (e: unknown) => e instanceof InputError && e.source === small && /fewer than one batch/.test(e.problem),
  );
  assert.throws(() => pretrain(tiny({ microBatchSize: 3 }), quiet), /must divide --batch-size/);
  assert.throws(() => pretrain(tiny({ hiddenSize: undefined }), quiet), /--hidden-size/);
  assert.throws(() => pretrain(tiny({ numHeads: 3, numKvHeads: 2 }), quiet), /not a multiple/);
  assert.throws(() => pretrain(tiny({ tokenizer: undefined }), quiet), /--tokenizer is required/);
  assert.throws(
    () => pretrain(tiny({ seqLen: 300, maxPositionEmbeddings: 256 }), quiet),
    /exceeds the model's max_position_embeddings/,
  );
  assert.throws(
    () => pretrain(tiny({ data: join(tmp, 'missing.jsonl') }), quiet),
    (e: unknown) => e instanceof InputError && /cannot read file/.test(e.problem),
  );
});

test('the CLI: flags build the run; a bad flag exits 2 with one line', async () => {
  const out = join(tmp, 'cli');
  const args = [
    'node',
    'nuggets',
    'pretrain',
    '--data',
    TRAIN,
    '--val-data',
    VAL,
    '--tokenizer',
    TOK,
    '--hidden-size',
    '16',
    '--num-layers',
    '1',
    '--num-heads',
    '2',
    '--intermediate-size',
    '16',
    '--seq-len',
    '32',
    '--batch-size',
    '4',
    '--micro-batch-size',
    '4',
    '--max-steps',
    '2',
    '--no-progress',
    '--out',
    out,
  ];
  const writes: string[] = [];
  const orig = process.stderr.write.bind(process.stderr);
  const origOut = process.stdout.write.bind(process.stdout);
  process.stderr.write = ((s: string) => (writes.push(String(s)), true)) as typeof process.stderr.write;
  process.stdout.write = ((s: string) => (writes.push(String(s)), true)) as typeof process.stdout.write;
  const origErr = console.error;
  console.error = (...a: unknown[]) => writes.push(a.join(' '));
  let code: number, bad: number;
  try {
    code = await main(args);
    bad = await main([
      ...args.slice(0, 3),
      '--data',
      TRAIN,
      '--out',
      join(tmp, 'cli-bad'),
      '--tokenizer',
      TOK,
      '--hidden-size',
      '16',
      '--num-layers',
      '1',
      '--num-heads',
      '2',
      '--intermediate-size',
      '16',
      '--batch-size',
      '4',
      '--micro-batch-size',
      '3',
    ]);
  } finally {
    process.stderr.write = orig;
    process.stdout.write = origOut;
    console.error = origErr;
  }
  assert.equal(code, 0, writes.join(''));
  assert.ok(existsSync(join(out, 'model.safetensors')));
  const recipe = readFileSync(join(out, 'RECIPE.md'), 'utf8');
  assert.ok(
    recipe.includes(
      `nuggets pretrain --data ${TRAIN} --out ${out} --tokenizer ${TOK} --hidden-size 16 --num-layers 1 --num-heads 2 --intermediate-size 16`,
    ),
    recipe,
  );
  assert.match(recipe, /--max-steps 2 --batch-size 4 --micro-batch-size 4 .*--no-progress/);
  assert.equal(bad, 2);
  assert.ok(
    writes.some((w) => /micro-batch-size/.test(w) && /divide/.test(w)),
    writes.join(''),
  );
});
