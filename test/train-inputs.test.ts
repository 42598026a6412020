/**
 * Bad input to `nuggets train` and `nuggets merge` (one clear error each): a malformed JSONL line is
 * named by file and number; examples left with no answer token after truncation are skipped and
 * counted with their lines; resuming from a checkpoint made with other options is refused listing
 * what differs (and a fresh run refuses to overwrite an earlier run's checkpoints); a config file
 * with an unknown key is refused with the closest valid key; an init folder of another rank is
 * refused; merge refuses an adapter made for another model.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { InputError } from '../src/errors.js';
import { resolveOptions } from '../src/config/cli.js';
import { loadModelSource } from '../src/io/load.js';
import { extractToFolder } from '../src/transfer/extract.js';
import { runTrain } from '../src/train/run.js';
import { runMerge } from '../src/train/merge.js';
import { main } from '../src/cli/main.js';
import { writeHfModel } from '../src/io/checkpoint.js';
import { writeJsonAtomic } from '../src/io/atomic.js';
import { buildTokenizerJson } from '../src/io/convert.js';
import { Llama2cTokenizer } from '../src/io/tokenizer-llama2c.js';
import { randomWeights, tinyConfig } from '../src/model/random.js';
import { heldOutStories, STORIES260K } from './model-helpers.js';
import { tempDir } from './train-helpers.js';

const STUDENT = join(STORIES260K, 'checkpoint_legacy.bin');
const dir = tempDir('inputs');
test.after(() => rmSync(dir, { recursive: true, force: true }));
const stories = heldOutStories(8).map((s) => s.slice(0, 200));

function dataFile(name: string, lines: string[]): string {
  const p = join(dir, name);
  writeFileSync(p, lines.join('\n') + '\n');
  return p;
}

const base = (over: Record<string, unknown>) =>
  resolveOptions('train', {
    student: STUDENT,
    epochs: 1,
    batchSize: 4,
    microBatchSize: 4,
    maxLength: 48,
    progress: false,
    warmupRatio: 0,
    learningRate: 1e-3,
    ...over,
  });

function throwsInput(fn: () => unknown, ...patterns: RegExp[]): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof InputError, `expected an InputError, got ${String(e)}`);
    for (const p of patterns) assert.match(e.message, p);
    return true;
  });
}

test('a malformed JSONL line is named by file and line number (library and CLI)', async () => {
  const data = dataFile('bad.jsonl', [
    JSON.stringify({ text: stories[0] }),
    JSON.stringify({ text: stories[1] }),
    '{"text": "unterminated',
    JSON.stringify({ text: stories[2] }),
  ]);
  throwsInput(() => runTrain(base({ data, out: join(dir, 'bad-out') })), /bad\.jsonl:3: not valid JSON/);
  const errs: string[] = [];
  const ce = console.error;
  console.error = (...a: unknown[]) => errs.push(a.join(' '));
  try {
    const code = await main([
      'node',
      'nuggets',
      'train',
      STUDENT,
      '--data',
      data,
      '--out',
      join(dir, 'bad-cli'),
      '--no-progress',
    ]);
    assert.equal(code, 2);
  } finally {
    console.error = ce;
  }
  assert.match(errs.join('\n'), /^nuggets: .*bad\.jsonl:3: not valid JSON/);
  // a row of an unknown shape is named too
  const shape = dataFile('shape.jsonl', [
    JSON.stringify({ text: stories[0] }),
    JSON.stringify({ question: 'q' }),
  ]);
  throwsInput(() => runTrain(base({ data: shape, out: join(dir, 'shape-out') })), /shape\.jsonl:2: /);
});

test('examples with no answer token left after truncation are skipped and counted with their lines', () => {
  const longPrompt = 'word '.repeat(200);
  const rows = stories
    .slice(0, 6)
    .map((s, i) =>
      JSON.stringify(
        i === 1 || i === 4 ? { prompt: longPrompt, answer: s } : { prompt: 'Tell a story.', answer: s },
      ),
    );
  const data = dataFile('trunc.jsonl', rows);
  const said: string[] = [];
  const r = runTrain(base({ data, out: join(dir, 'trunc-out') }), { say: (l) => said.push(l) });
  assert.deepEqual(r.trainReport.skippedLines, [2, 5]);
  assert.equal(r.trainReport.kept, 4);
  assert.equal(r.trainReport.total, 6);
  assert.match(
    said.join('\n'),
    /training data: 4\/6 examples, .*; 2 skipped with no answer token left \(lines 2, 5\)/,
  );
  assert.equal(r.result.steps, 1); // 4 kept examples, batch 4
  // every example skipped: refused, not a silent no-op
  const none = dataFile('none.jsonl', [JSON.stringify({ prompt: longPrompt, answer: 'x' })]);
  throwsInput(
    () => runTrain(base({ data: none, out: join(dir, 'none-out') })),
    /none\.jsonl: no example has an answer token left/,
  );
  // the refuse policy lists the over-long lines instead
  throwsInput(
    () => runTrain(base({ data, out: join(dir, 'refuse-out'), overflow: 'refuse' })),
    /trunc\.jsonl: \d+ example\(s\) longer than the max length 48 tokens/,
  );
});

test('resume from different options is refused listing what differs; a fresh run will not overwrite checkpoints', () => {
  const data = dataFile(
    'resume.jsonl',
    stories.map((s) => JSON.stringify({ text: s })),
  );
  const out = join(dir, 'resume-out');
  const first = runTrain(base({ data, out }), { shouldStop: (s) => s === 1 });
  assert.equal(first.result.stopped, true);
  assert.match(first.summary, /stopped after update 1\/2; checkpoint .*checkpoint-1; continue with --resume/);
  throwsInput(
    () => runTrain(base({ data, out, resume: true, learningRate: 2e-3, dropout: 0.1 })),
    /checkpoint-1: was saved with different options/,
    /learningRate: 0\.001 in the checkpoint, 0\.002 now/,
    /dropout: 0\.05 in the checkpoint, 0\.1 now/,
  );
  throwsInput(
    () => runTrain(base({ data, out })),
    /resume-out: holds checkpoints of an earlier run \(checkpoint-1\): give --resume/,
  );
  // the same options (display options may differ) continue it
  const done = runTrain(base({ data, out, resume: true, progress: true }), { progress: 'off' });
  assert.equal(done.result.steps, 2);
  throwsInput(
    () => runTrain(base({ data, out: join(dir, 'nothing'), resume: true })),
    /nothing: has no checkpoint-<step> folder to resume from/,
  );
});

test('a config file with an unknown key is refused with the closest valid key (library and CLI)', async () => {
  const cfg = join(dir, 'train.yaml');
  writeFileSync(cfg, `student: ${STUDENT}\ndata: x.jsonl\nout: o\nlearning_rat: 0.001\n`);
  throwsInput(
    () => resolveOptions('train', { config: cfg }),
    /train\.yaml: unknown option "learning_rat"; did you mean "learning_rate"\?/,
  );
  const sectioned = join(dir, 'study.yaml');
  writeFileSync(sectioned, `train:\n  student: ${STUDENT}\n  epoch: 2\n`);
  const errs: string[] = [];
  const ce = console.error;
  console.error = (...a: unknown[]) => errs.push(a.join(' '));
  try {
    assert.equal(await main(['node', 'nuggets', 'train', '--config', sectioned]), 2);
    assert.equal(await main(['node', 'nuggets', 'merge', '--config', sectioned]), 2);
  } finally {
    console.error = ce;
  }
  assert.match(errs[0], /study\.yaml \(section train\): unknown option "epoch"; did you mean "epochs"\?/);
  assert.match(errs[1], /study\.yaml \(section train\): unknown option "epoch"/);
});

test('an init folder of another rank or alpha is refused, naming the value to give', () => {
  const src = loadModelSource(STUDENT);
  const init = join(dir, 'init-r4');
  try {
    extractToFolder(
      { student: src.weights, studentConfig: src.config },
      {
        init: 'lora',
        modules: 'attention',
        rank: 4,
        alpha: 4,
        dropout: 0.05,
        structure: 'block',
        layers: 'first',
        svd: { method: 'exact' },
        seed: 1,
      },
      init,
    );
  } finally {
    src.weights.close();
  }
  const data = dataFile(
    'init.jsonl',
    stories.map((s) => JSON.stringify({ text: s })),
  );
  throwsInput(
    () => runTrain(base({ data, out: join(dir, 'init-out'), init })),
    /init-r4: model\.layers\.0\.self_attn\.q_proj has rank 4 but --rank is 16; give --rank 4/,
  );
  throwsInput(
    () => runTrain(base({ data, out: join(dir, 'init-out'), init, rank: 4, alpha: 16 })),
    /has lora_alpha 4 but --alpha is 16; give --alpha 4/,
  );
  throwsInput(
    () => runTrain(base({ data, out: join(dir, 'init-out'), init, rank: 4, alpha: 4, modules: ['mlp'] })),
    /initialises q_proj, k_proj, v_proj, o_proj but --modules asks for gate_proj, up_proj, down_proj/,
  );
  // the folder's own settings train (the 'lora' init has B = 0: nothing to subtract, the adapter is the trained one)
  const ok = runTrain(base({ data, out: join(dir, 'init-ok'), init, rank: 4, alpha: 4 }));
  assert.equal(ok.subtract, false);
  assert.equal(ok.trainedAdapterDir, null);
  // merge refuses an adapter that does not fit the student (an HF model of another width, same tokenizer)
  const other = join(dir, 'other-model');
  const cfg = tinyConfig({ vocabSize: 512, hiddenSize: 32, numLayers: 2 });
  writeHfModel(other, cfg, randomWeights(cfg, 1));
  writeJsonAtomic(
    join(other, 'tokenizer.json'),
    buildTokenizerJson(Llama2cTokenizer.fromFile(join(STORIES260K, 'tokenizer.bin'), 512)),
  );
  throwsInput(
    () => runMerge({ student: other, adapter: join(dir, 'init-ok'), out: join(dir, 'm'), dtype: 'f32' }),
    /init-ok: not a valid PEFT LoRA adapter for this model:/,
    /q_proj\.lora_A\.weight has shape \[4, 64\], expected \[4, 32\]/,
  );
});

test('--chat-format template is refused clearly when the tokenizer has no chat template', () => {
  const data = dataFile('tmpl.jsonl', [JSON.stringify({ prompt: 'Tell a story.', answer: stories[0] })]);
  throwsInput(
    () => runTrain(base({ data, out: join(dir, 'tmpl-out'), chatFormat: 'template' })),
    /the tokenizer has no chat template .*use the tulu format/,
  );
});
