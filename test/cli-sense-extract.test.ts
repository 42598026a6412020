// The `sense` and `extract` commands end to end through the command line (in process, and one
// child process for Ctrl-C): stories260K converted to an HF folder is the teacher, a smaller random
// HF model with the same tokenizer the student; the llama2.c checkpoint itself also serves as a
// teacher. Checks the output files, the subtract-trick acceptance (the initialised student gives the
// untouched student's logits to 1e-5), the PEFT structure, YAML configs, and every refusal the
// issue lists, each naming the file or option.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { main } from '../src/cli/main.js';
import { convertLlama2cToHf } from '../src/io/convert.js';
import { writeHfModel } from '../src/io/checkpoint.js';
import { openSafetensors, writeSafetensorsLazy } from '../src/io/safetensors.js';
import { loadModelSource } from '../src/io/load.js';
import { randomWeights, tinyConfig } from '../src/model/random.js';
import { LlamaModel } from '../src/model/model.js';
import { readSummary } from '../src/transfer/shard.js';
import { assertAdapterFolder } from '../src/transfer/peft.js';
import { readManifest } from '../src/transfer/manifest.js';
import { setupLora } from '../src/train/lora-init.js';
import { ALL_KINDS } from '../src/transfer/modules.js';
import { recordedSums, type SensSummary } from '../src/transfer/sense/summary.js';
import { layerScores } from '../src/transfer/layers.js';

const ROOT = join(import.meta.dirname, '..');
const LLAMA2C = join(ROOT, 'data', 'stories260k', 'checkpoint_legacy.bin');
const dir = mkdtempSync(join(tmpdir(), 'nuggets-cli-sense-'));
const teacher = join(dir, 'teacher');
const student = join(dir, 'student');
const seeds = join(dir, 'seeds.jsonl');
const SEEDS = [
  {
    prompt: 'Tell me about Lily.',
    answer: 'Lily was a little girl who loved to play in the park with her ball.',
  },
  { question: 'What did Tom see?', answer: 'Tom saw a big red ball in the garden and he was happy.' },
  {
    dataset: 'toy',
    id: 'x3',
    messages: [
      { role: 'user', content: 'Say something kind.' },
      { role: 'assistant', content: 'You are a good friend.' },
    ],
  },
];

mkdirSync(teacher);
convertLlama2cToHf(LLAMA2C, join(ROOT, 'data', 'stories260k', 'tokenizer.bin'), teacher);
// student: d 48 < 64, 3 < 5 layers, 6 heads of 8 on 3 kv heads, MLP 128 < 172, same vocabulary, untied
const scfg = tinyConfig({
  vocabSize: 512,
  hiddenSize: 48,
  intermediateSize: 128,
  numLayers: 3,
  numHeads: 6,
  numKvHeads: 3,
  headDim: 8,
  maxPositionEmbeddings: 512,
  bosTokenId: 1,
  eosTokenId: [2],
  padTokenId: null,
});
mkdirSync(student);
writeHfModel(student, scfg, randomWeights(scfg, 7));
for (const f of ['tokenizer.json', 'tokenizer_config.json']) copyFileSync(join(teacher, f), join(student, f));
writeFileSync(seeds, SEEDS.map((s) => JSON.stringify(s)).join('\n') + '\n');

/** Runs the CLI in process; returns the exit code and what it printed on stderr. */
async function cli(...args: string[]): Promise<{ code: number; err: string }> {
  let err = '';
  const orig = process.stderr.write.bind(process.stderr);
  const origError = console.error;
  process.stderr.write = ((s: string | Uint8Array) => {
    err += typeof s === 'string' ? s : Buffer.from(s).toString();
    return true;
  }) as typeof process.stderr.write;
  console.error = (...a: unknown[]) => {
    err += a.map(String).join(' ') + '\n';
  };
  try {
    const code = await main(['node', 'nuggets', ...args]);
    return { code, err };
  } finally {
    process.stderr.write = orig;
    console.error = origError;
  }
}

const sens = join(dir, 'sens.safetensors');
/** The teacher's sensitivity (bf16), computed once by the first test that needs it. */
let sensRun: Promise<{ code: number; err: string }> | null = null;
const senseOnce = () =>
  (sensRun ??= cli(
    'sense',
    '--teacher',
    teacher,
    '--seeds',
    seeds,
    '-o',
    sens,
    '--no-progress',
    '--dtype',
    'bf16',
  ));

test('sense writes one tensor per teacher parameter and a summary with per-tensor, per-layer sums and seed losses', async () => {
  const r = await senseOnce();
  assert.equal(r.code, 0, r.err);
  assert.match(
    r.err,
    /sense: wrote .*sens\.safetensors and .*sens\.summary\.json: 3 seeds, mean answer loss \d/,
  );
  assert.match(r.err, /max length 2048 lowered to the teacher's context of 512 tokens/);
  const f = openSafetensors(sens);
  try {
    const src = loadModelSource(teacher);
    // tied teacher: every tensor but lm_head, bf16
    assert.deepEqual(
      f.names(),
      src.weights.names().filter((n) => n !== 'lm_head.weight'),
    );
    for (const n of f.names()) {
      assert.equal(f.info(n).dtype, 'BF16');
      assert.deepEqual(f.info(n).shape, src.weights.info(n).shape);
    }
    src.weights.close();
    const s = readSummary(f);
    const onDisk = JSON.parse(readFileSync(join(dir, 'sens.summary.json'), 'utf8')) as SensSummary;
    assert.deepEqual(onDisk, s);
    assert.equal(s.loss.perSeed.length, 3);
    assert.deepEqual(
      s.loss.perSeed.map((x) => x.line),
      [1, 2, 3],
    );
    assert.ok(s.loss.perSeed.every((x) => x.loss > 0 && x.loss < 15 && x.answerTokens > 5));
    assert.ok(s.tiedEmbeddings!.includes('no separate lm_head.weight'));
    assert.equal(s.layers.length, 5);
    // per-layer sums are sums of the per-tensor sums; the stored bf16 values agree with them to bf16 rounding
    for (let l = 0; l < 5; l++) {
      const want = Object.entries(s.tensors)
        .filter(([n]) => n.startsWith(`model.layers.${l}.`))
        .reduce((a, [, t]) => a + t.sum, 0);
      assert.ok(Math.abs(want - s.layers[l]) < 1e-9 * want);
    }
    const q = f.get('model.layers.2.self_attn.q_proj.weight');
    const stored = q.reduce((a, x) => a + x, 0);
    assert.ok(Math.abs(stored - s.tensors['model.layers.2.self_attn.q_proj.weight'].sum) < 1e-2 * stored);
    assert.ok(s.outer.lm_head === null && s.outer.embed_tokens > 0 && s.outer.norm > 0);
  } finally {
    f.close();
  }
  assert.deepEqual(
    readdirSync(dir).filter((n) => n.startsWith('.')),
    [],
    'no temporary files left',
  );
});

test('sense: chat template option, overflow truncate (reported) or refuse, and bad seed files named by line', async () => {
  // a tokenizer with a chat template
  const tcfg = JSON.parse(readFileSync(join(teacher, 'tokenizer_config.json'), 'utf8'));
  const templated = join(dir, 'teacher-templated');
  mkdirSync(templated);
  for (const f of readdirSync(teacher)) copyFileSync(join(teacher, f), join(templated, f));
  tcfg.chat_template =
    '{% for m in messages %}{{ m.role }}: {{ m.content }}\n{% endfor %}{% if add_generation_prompt %}assistant: {% endif %}';
  writeFileSync(join(templated, 'tokenizer_config.json'), JSON.stringify(tcfg));
  const tpl = join(dir, 'tpl.safetensors');
  let r = await cli(
    'sense',
    '--teacher',
    templated,
    '--seeds',
    seeds,
    '-o',
    tpl,
    '--chat-format',
    'template',
    '--no-progress',
  );
  assert.equal(r.code, 0, r.err);
  r = await cli(
    'sense',
    '--teacher',
    teacher,
    '--seeds',
    seeds,
    '-o',
    join(dir, 'x.safetensors'),
    '--chat-format',
    'template',
    '--no-progress',
  );
  assert.equal(r.code, 2);
  assert.match(r.err, /the tokenizer has no chat template/);

  r = await cli(
    'sense',
    '--teacher',
    teacher,
    '--seeds',
    seeds,
    '-o',
    join(dir, 'trunc.safetensors'),
    '--max-length',
    '50',
    '--no-progress',
  );
  assert.equal(r.code, 0, r.err);
  assert.match(r.err, /truncated to 50 tokens \(lines 1, 2\)/);
  const trunc = JSON.parse(readFileSync(join(dir, 'trunc.summary.json'), 'utf8')) as SensSummary;
  assert.deepEqual(trunc.encode!.truncatedLines, [1, 2]);
  assert.ok(trunc.loss.perSeed.every((s) => s.tokens <= 50));
  assert.deepEqual(
    trunc.loss.perSeed.map((x) => x.truncated),
    [true, true, false],
  );
  r = await cli(
    'sense',
    '--teacher',
    teacher,
    '--seeds',
    seeds,
    '-o',
    join(dir, 'x.safetensors'),
    '--max-length',
    '50',
    '--overflow',
    'refuse',
    '--no-progress',
  );
  assert.equal(r.code, 2);
  assert.match(
    r.err,
    /seeds\.jsonl: 2 example\(s\) longer than the max length 50 tokens \(longest 60\) at line\(s\) 1, 2;/,
  );

  const bad = join(dir, 'bad.jsonl');
  writeFileSync(bad, `${JSON.stringify(SEEDS[0])}\n{"prompt": "x", "answer": "  "}\n`);
  r = await cli(
    'sense',
    '--teacher',
    teacher,
    '--seeds',
    bad,
    '-o',
    join(dir, 'x.safetensors'),
    '--no-progress',
  );
  assert.equal(r.code, 2);
  assert.match(r.err, /bad\.jsonl:2: the answer is empty/);
  writeFileSync(bad, `${JSON.stringify(SEEDS[0])}\n\n{"prompt": "x", "answer": "y"\n`);
  r = await cli(
    'sense',
    '--teacher',
    teacher,
    '--seeds',
    bad,
    '-o',
    join(dir, 'x.safetensors'),
    '--no-progress',
  );
  assert.equal(r.code, 2);
  assert.match(r.err, /bad\.jsonl:3: not valid JSON/);
  r = await cli(
    'sense',
    '--teacher',
    teacher,
    '--seeds',
    join(dir, 'none.jsonl'),
    '-o',
    join(dir, 'x.safetensors'),
  );
  assert.match(r.err, /none\.jsonl: no such seed file/);
  assert.ok(!existsSync(join(dir, 'x.safetensors')));
});

/** The student as the trainer initialises it from `folder` (docs/method.md step 5: W - scale·B·A plus the LoRA (B, A)). */
function initialised(folder: string): LlamaModel {
  const man = readManifest(folder);
  assert.equal(man.untieStudentHead, false);
  const src = loadModelSource(student);
  try {
    const setup = setupLora(src.config, src.weights, {
      init: { kind: 'folder', dir: folder },
      kinds: ALL_KINDS,
      kindsAreDefault: true,
      rank: man.lora.r,
      alpha: man.lora.alpha,
      dropout: 0,
      seed: 0,
    });
    assert.equal(setup.subtract, true);
    return setup.model;
  } finally {
    src.weights.close();
  }
}

test('extract: PEFT folder + manifest; the initialised student gives the untouched logits (1e-5); YAML config with flag overrides', async () => {
  assert.equal((await senseOnce()).code, 0);
  const init = join(dir, 'init');
  const yaml = join(dir, 'extract.yaml');
  // relative paths in the file resolve against its folder; the flag --rank overrides the file's
  writeFileSync(
    yaml,
    `extract:\n  teacher: teacher\n  student: student\n  sensitivity: sens.safetensors\n  rank: 8\n  alpha: 8\n  heads: true\n  svd: randomized\n  seed: 3\n`,
  );
  const r = await cli('extract', '--config', yaml, '-o', init, '--rank', '4', '--no-progress');
  assert.equal(r.code, 0, r.err);
  assertAdapterFolder(init, scfg);
  const man = readManifest(init);
  assert.deepEqual(man.lora, { r: 4, alpha: 8, scale: 2, dropout: 0.05 });
  assert.equal(man.layers!.method, 'sensitivity');
  assert.equal(man.layers!.teacherLayers.length, 3);
  // the selected layers are the 3 best by the summary's per-layer sums
  const s = JSON.parse(readFileSync(join(dir, 'sens.summary.json'), 'utf8')) as SensSummary;
  const best = s.layers
    .map((v, l) => [v, l])
    .sort((a, b) => b[0] - a[0])
    .slice(0, 3)
    .map((x) => x[1])
    .sort((a, b) => a - b);
  assert.deepEqual(man.layers!.teacherLayers, best);
  // heads: q/k/v windows start on head boundaries
  for (const m of man.matrices) {
    if (m.kind === 'q_proj' || m.kind === 'k_proj' || m.kind === 'v_proj')
      assert.equal(m.offset![0] % 8, 0, m.module);
    if (m.kind === 'o_proj') assert.equal(m.offset![1] % 8, 0, m.module);
    assert.ok(m.energyKept! > 0 && m.energyKept! <= 1 && m.singularValues.length === 4, m.module);
  }
  assert.equal(man.matrices.length, 2 + 7 * 3);
  assert.equal((man.options as { svd: { method: string } }).svd.method, 'randomized');
  assert.ok(man.inputs.sensitivity && man.inputs.teacher && man.inputs.student);
  // docs/method.md step 5 acceptance
  const ids = Int32Array.from([1, 403, 29, 17, 260, 45, 8, 301, 2, 99]);
  const plain = loadModelSource(student);
  const base = LlamaModel.load(plain);
  plain.weights.close();
  const want = base.forward({ ids, B: 1, T: ids.length });
  const got = initialised(init).forward({ ids, B: 1, T: ids.length });
  let worst = 0;
  for (let i = 0; i < want.length; i++) worst = Math.max(worst, Math.abs(got[i] - want[i]));
  assert.ok(worst < 1e-5, `logits differ by ${worst}`);

  // controls: PEFT default LoRA and PiSSA need no teacher; random-matched and self do
  for (const args of [
    ['--init', 'lora'],
    ['--init', 'pissa'],
    ['--init', 'random-matched', '--teacher', teacher, '--sensitivity', sens],
  ]) {
    const out = join(dir, `init-${args[1]}`);
    const rr = await cli(
      'extract',
      '--teacher',
      'self',
      '--student',
      student,
      '-o',
      out,
      '--rank',
      '4',
      '--no-progress',
      ...args,
    );
    assert.equal(rr.code, 0, rr.err);
    assertAdapterFolder(out, scfg);
    assert.equal(readManifest(out).init, args[1]);
  }
  const again = await cli('extract', '--config', yaml, '-o', init, '--rank', '4', '--no-progress');
  assert.equal(again.code, 2);
  assert.match(
    again.err,
    /already holds adapter_config\.json, adapter_model\.safetensors, manifest\.json; .* --force/,
  );
  assert.equal(
    (await cli('extract', '--config', yaml, '-o', init, '--rank', '4', '--no-progress', '--force')).code,
    0,
  );
});

test("extract scores layers from the sensitivity file's summary without reading it, refuses a file changed since, and sums the values of a file without one", async () => {
  assert.equal((await senseOnce()).code, 0);
  const file = openSafetensors(sens);
  const names = file.names();
  const raw = new Map(names.map((n) => [n, file.getRaw(n)]));
  const infos = new Map(names.map((n) => [n, file.info(n)]));
  const recorded = recordedSums(file)!;
  assert.ok(recorded, 'sense writes the summary into the file');
  // the recorded sums are the float32 ones; the file's bf16 values reproduce them within bf16 rounding
  const fromFile = layerScores(file, 5, sens);
  const fromSummary = layerScores(
    { names: () => names, get: () => assert.fail('read a tensor') },
    5,
    sens,
    recorded,
  );
  const s = JSON.parse(readFileSync(join(dir, 'sens.summary.json'), 'utf8')) as SensSummary;
  for (let l = 0; l < 5; l++) {
    assert.ok(Math.abs(fromSummary[l] - s.layers[l]) <= 1e-12 * s.layers[l], `layer ${l}`);
    assert.ok(
      Math.abs(fromFile[l] - s.layers[l]) <= 1e-2 * s.layers[l],
      `layer ${l}: ${fromFile[l]} vs ${s.layers[l]}`,
    );
    assert.notEqual(fromFile[l], fromSummary[l]); // really two routes: the bf16 values differ in the last bits
  }
  file.close();
  const rewrite = (out: string, meta: Record<string, string> | undefined, zero?: string) =>
    writeSafetensorsLazy(
      out,
      names.map((n) => ({
        name: n,
        shape: infos.get(n)!.shape,
        dtype: infos.get(n)!.dtype,
        loadRaw: () => (n === zero ? new Uint8Array(raw.get(n)!.length) : raw.get(n)!),
      })),
      meta,
    );
  const meta = openSafetensors(sens).metadata!;
  // a tensor the selected layers use, zeroed after sense wrote the file: refused, naming it
  const best = s.layers.map((v, l) => [v, l]).sort((a, b) => b[0] - a[0])[0][1];
  const changed = join(dir, 'sens-changed.safetensors');
  rewrite(changed, meta, `model.layers.${best}.mlp.up_proj.weight`);
  const args = (sf: string, out: string) => [
    'extract',
    '--teacher',
    teacher,
    '--student',
    student,
    '--sensitivity',
    sf,
    '-o',
    out,
    '--rank',
    '4',
    '--no-progress',
  ];
  const bad = await cli(...args(changed, join(dir, 'init-changed')));
  assert.equal(bad.code, 2, bad.err);
  assert.match(
    bad.err,
    new RegExp(
      `sens-changed\\.safetensors.*model\\.layers\\.${best}\\.mlp\\.up_proj\\.weight sums to 0, but the file's summary records .*changed after sense wrote it`,
    ),
  );
  assert.ok(!existsSync(join(dir, 'init-changed', 'adapter_model.safetensors')));
  // no summary (a file from another tool): the values are summed, the same layers are chosen
  const bare = join(dir, 'sens-bare.safetensors');
  rewrite(bare, undefined);
  const a = await cli(...args(sens, join(dir, 'init-summary')));
  const b = await cli(...args(bare, join(dir, 'init-bare')));
  assert.equal(a.code, 0, a.err);
  assert.equal(b.code, 0, b.err);
  const ma = readManifest(join(dir, 'init-summary'));
  const mb = readManifest(join(dir, 'init-bare'));
  assert.deepEqual(mb.layers!.teacherLayers, ma.layers!.teacherLayers);
  assert.deepEqual(ma.layers!.scores, Array.from(fromSummary));
  assert.deepEqual(mb.layers!.scores, Array.from(fromFile));
  // --svd auto (the default) is exact on these small blocks, recorded per matrix
  assert.equal((ma.options as { svd: { method: string } }).svd.method, 'auto');
  for (const m of ma.matrices) assert.equal(m.svd, 'exact', m.module);
  assert.deepEqual(
    ma.matrices.map((m) => m.singularValues),
    mb.matrices.map((m) => m.singularValues),
  );
});

test('extract refuses impossible pairs and option mistakes before any heavy work, saying which and why', async () => {
  assert.equal((await senseOnce()).code, 0);
  const out = join(dir, 'never');
  // student as teacher: every student dimension is smaller than the "teacher"'s
  let r = await cli('extract', '--teacher', student, '--student', teacher, '--sensitivity', sens, '-o', out);
  assert.equal(r.code, 2);
  assert.match(r.err, /cannot transfer:/);
  assert.match(r.err, /the student has 5 layers but the teacher only 3/);
  assert.match(r.err, /q_proj: the student's hidden_size is 64 but the teacher's is 48/);
  r = await cli('extract', '--teacher', teacher, '--student', student, '-o', out);
  assert.match(r.err, /--sensitivity: the teacher init needs the teacher's sensitivity file/);
  r = await cli(
    'extract',
    '--teacher',
    teacher,
    '--student',
    student,
    '--sensitivity',
    sens,
    '-o',
    out,
    '--heads',
    '--structure',
    'rowcol',
  );
  assert.match(r.err, /--heads: applies to the block structure .* not to --structure rowcol/);
  r = await cli(
    'extract',
    '--teacher',
    teacher,
    '--student',
    student,
    '--sensitivity',
    sens,
    '-o',
    out,
    '--rank',
    '40',
  );
  assert.match(r.err, /k_proj: rank 40 exceeds the smaller side of the student's \[24, 48\] matrix/);
  // another vocabulary
  const other = join(dir, 'other-vocab');
  const ocfg = { ...scfg, vocabSize: 600 };
  mkdirSync(other);
  writeHfModel(other, ocfg, randomWeights(ocfg, 9));
  for (const f of ['tokenizer.json', 'tokenizer_config.json']) copyFileSync(join(teacher, f), join(other, f));
  r = await cli('extract', '--teacher', teacher, '--student', other, '--sensitivity', sens, '-o', out);
  assert.match(r.err, /vocabularies differ: teacher vocab_size 512, student 600/);
  // a sensitivity file of another model
  r = await cli(
    'extract',
    '--teacher',
    teacher,
    '--student',
    student,
    '--sensitivity',
    join(ROOT, 'fixtures', 'model', 'llama-gqa', 'model.safetensors'),
    '-o',
    out,
  );
  assert.equal(r.code, 2);
  assert.match(r.err, /sensitivity has no tensor model\.layers\.2\.|sensitivity tensor .* has shape/);
  assert.ok(!existsSync(out), 'nothing written');
});

test("extract: a llama2.c teacher with an HF student of the same vocabulary gives the converted teacher's adapter; another vocabulary is refused by id", async () => {
  assert.equal((await senseOnce()).code, 0);
  // the bundled zoo/student-tiny shares stories260K's 512-token vocabulary (tok512)
  const tiny = join(ROOT, 'zoo', 'student-tiny');
  const fromLlama2c = join(dir, 'init-llama2c');
  const fromHf = join(dir, 'init-converted');
  for (const [t, out] of [
    [LLAMA2C, fromLlama2c],
    [teacher, fromHf],
  ]) {
    const r = await cli(
      'extract',
      '--teacher',
      t,
      '--student',
      tiny,
      '--sensitivity',
      sens,
      '-o',
      out,
      '--rank',
      '4',
      '--no-progress',
    );
    assert.equal(r.code, 0, r.err);
  }
  // the llama2.c checkpoint is loaded in the HF layout, so the factors are the converted teacher's, bit for bit
  assert.deepEqual(
    readFileSync(join(fromLlama2c, 'adapter_model.safetensors')),
    readFileSync(join(fromHf, 'adapter_model.safetensors')),
  );
  // a student of the same size whose tokenizer.json has two pieces exchanged
  const swapped = join(dir, 'swapped-vocab');
  mkdirSync(swapped);
  writeHfModel(swapped, scfg, randomWeights(scfg, 7));
  copyFileSync(join(teacher, 'tokenizer_config.json'), join(swapped, 'tokenizer_config.json'));
  const tj = JSON.parse(readFileSync(join(teacher, 'tokenizer.json'), 'utf8'));
  const vocab = tj.model.vocab as Record<string, number>;
  [vocab['\u2581ha'], vocab['\u2581S']] = [vocab['\u2581S'], vocab['\u2581ha']];
  assert.equal(vocab['\u2581S'], 300);
  writeFileSync(join(swapped, 'tokenizer.json'), JSON.stringify(tj));
  const out = join(dir, 'never-swapped');
  const r = await cli(
    'extract',
    '--teacher',
    LLAMA2C,
    '--student',
    swapped,
    '--sensitivity',
    sens,
    '-o',
    out,
  );
  assert.equal(r.code, 2);
  assert.match(
    r.err,
    /checkpoint_legacy\.bin -> .*swapped-vocab: tokenizers differ at token 300: " ha" \(teacher\) vs "▁S" \(student\)/,
  );
  assert.ok(!existsSync(out), 'nothing written');
});

test('Ctrl-C (SIGINT) during sense exits 130 and leaves no output file, temporary or final', async () => {
  const gsm = join(ROOT, '..', 'shared', 'data', 'paraknowtransfer', 'gsm', 'sample_gsm.jsonl');
  const work = join(dir, 'sigint');
  mkdirSync(work);
  const out = join(work, 'sens.safetensors');
  const child = spawn(
    process.execPath,
    [
      '--import',
      'tsx',
      join(ROOT, 'src', 'cli', 'run.ts'),
      'sense',
      '--teacher',
      LLAMA2C,
      '--seeds',
      existsSync(gsm) ? gsm : seeds,
      '-o',
      out,
    ],
    {
      cwd: ROOT,
      stdio: ['ignore', 'ignore', 'pipe'],
    },
  );
  let err = '';
  let sent = false;
  child.stderr.on('data', (b: Buffer) => {
    err += b.toString();
    // progress lines ("sense 12/1000 ...") start once the first layer has run on a seed
    if (!sent && /sense \d+\/1000/.test(err)) {
      sent = true;
      child.kill('SIGINT');
    }
  });
  const code = await new Promise<number | null>((res) => child.on('close', (c) => res(c)));
  assert.ok(sent, `no progress line seen: ${err}`);
  assert.equal(code, 130, err);
  assert.match(err, /interrupted; no output written/);
  assert.deepEqual(readdirSync(work), []);
});

test.after(() => rmSync(dir, { recursive: true, force: true }));
