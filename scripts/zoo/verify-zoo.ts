/**
 * Measures the bundled zoo and writes zoo/README.md: each model's size, its held-out TinyStories loss
 * (the `stories` task's test stories, never seen by any zoo model), what it knows of the facts (cloze
 * accuracy on the held-out and the train animals, scripts/zoo/facts-eval.ts), and whether each
 * teacher -> student pair passes the transfer plan's compatibility check (src/transfer/plan.ts).
 *
 * Run: npx tsx scripts/zoo/verify-zoo.ts [--zoo zoo]   (the last step of scripts/build-zoo.sh)
 */
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, statSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { writeFileAtomic } from '../../src/io/atomic.js';
import { INDEX_FILE } from '../../src/io/checkpoint.js';
import { loadModelSource } from '../../src/io/load.js';
import { expectedShape, expectedTensorNames, type ModelConfig } from '../../src/model/config.js';
import { LlamaModel } from '../../src/model/model.js';
import { heldOutLoss } from '../../src/train/pretrain/loop.js';
import { PackedSequences, tokenStream } from '../../src/train/pretrain-data.js';
import { planTransfer } from '../../src/transfer/plan.js';
import { ALL_KINDS } from '../../src/transfer/modules.js';
import { clozeAccuracy } from './facts-eval.js';
import type { KnowledgeBase } from './facts.js';
import { readStories, STORY_SPLIT } from './tinystories.js';

export const ZOO_MODELS = [
  'student-tiny',
  'teacher-facts',
  'stories260k',
  'student-m',
  'teacher-m',
  'student-l',
  'teacher-l',
] as const;
export type ZooModel = (typeof ZOO_MODELS)[number];
export const STUDENT = 'student-tiny';
export const TEACHERS = ['teacher-facts', 'stories260k'] as const;
/** The students of the scale sweep: stories only, they know none of the facts. */
export const STUDENTS: readonly ZooModel[] = ['student-tiny', 'student-m', 'student-l'];
/** The teacher -> student pairs of the study, smallest first (the size M teacher also fits student-tiny). */
export const PAIRS: ReadonlyArray<readonly [teacher: ZooModel, student: ZooModel]> = [
  ['teacher-facts', 'student-tiny'],
  ['stories260k', 'student-tiny'],
  ['teacher-m', 'student-m'],
  ['teacher-m', 'student-tiny'],
  ['teacher-l', 'student-l'],
];

export interface ZooRow {
  name: string;
  config: ModelConfig;
  params: number;
  bytes: number;
  storiesLoss: number;
  heldOutFacts: { correct: number; total: number };
  trainFacts: { correct: number; total: number };
  /** sha256 of each weights file (model.safetensors, or the shard index and its shards). */
  files: Array<{ file: string; sha256: string }>;
}

export function paramCount(c: ModelConfig): number {
  return expectedTensorNames(c).reduce((n, name) => n + expectedShape(c, name).reduce((a, b) => a * b, 1), 0);
}

/** The weights files of a folder: model.safetensors, or the shard index and the shards it names. */
export function weightFiles(dir: string): string[] {
  if (!existsSync(join(dir, INDEX_FILE))) return ['model.safetensors'];
  const index = JSON.parse(readFileSync(join(dir, INDEX_FILE), 'utf8')) as { weight_map: Record<string, string> };
  return [INDEX_FILE, ...[...new Set(Object.values(index.weight_map))].sort()];
}

export function fileSha256(path: string): string {
  return createHash('sha256').update(readFileSync(path)).digest('hex');
}

function folderBytes(dir: string): number {
  return readdirSync(dir).reduce((n, f) => n + statSync(join(dir, f)).size, 0);
}

/** Mean next-token loss of a model on the test stories of the `stories` task, packed in 128-token sequences. */
export function storiesLoss(model: LlamaModel, tok: Parameters<typeof tokenStream>[1]): number {
  const stories = readStories('data/tinystories/tinystories_val.txt').slice(...STORY_SPLIT.taskTest);
  const seqs = new PackedSequences(tokenStream(stories.map((text, i) => ({ text, source: `story ${i}` })), tok), 128);
  return heldOutLoss(model, seqs, 16);
}

export function measure(zoo: string, name: string, kb: KnowledgeBase): ZooRow {
  const dir = join(zoo, name);
  const src = loadModelSource(dir);
  const model = LlamaModel.load(src);
  src.weights.close();
  const held = clozeAccuracy(model, src.tokenizer, kb.animals.filter((a) => a.split === 'heldOut'));
  const train = clozeAccuracy(model, src.tokenizer, kb.animals.filter((a) => a.split === 'train'));
  return {
    name,
    config: src.config,
    params: paramCount(src.config),
    bytes: folderBytes(dir),
    storiesLoss: storiesLoss(model, src.tokenizer),
    heldOutFacts: { correct: held.correct, total: held.total },
    trainFacts: { correct: train.correct, total: train.total },
    files: weightFiles(dir).map((file) => ({ file, sha256: fileSha256(join(dir, file)) })),
  };
}

/** The compatibility check of a teacher -> student pair: '' when it passes, else the problems. */
export function compatibility(teacher: ModelConfig, student: ModelConfig): string {
  try {
    planTransfer(teacher, student, { init: 'teacher', kinds: ALL_KINDS, rank: 16, structure: 'heads', layers: 'sensitivity' });
    return '';
  } catch (e) {
    return e instanceof Error ? e.message : String(e);
  }
}

/** Tokens, wall and CPU seconds from a RECIPE.md written by nuggets pretrain (null when absent). */
export function recipeNumbers(dir: string): { tokens: string; wall: string; cpu: string } | null {
  let text: string;
  try {
    text = readFileSync(join(dir, 'RECIPE.md'), 'utf8');
  } catch {
    return null;
  }
  const tokens = /\| updates \| .*\((\d+) tokens\) \|/.exec(text)?.[1];
  if (!tokens) return null;
  return {
    tokens,
    wall: /\| wall time \| (\d+) s/.exec(text)?.[1] ?? '?',
    cpu: /\| CPU time \| (\d+) s/.exec(text)?.[1] ?? '?',
  };
}

/**
 * The size L paragraph: the scale sweep asks for a student 50-100x student-tiny with a teacher 4-8x
 * larger AND for every zoo file under 20 MB, which bf16 (2 bytes a parameter) cannot give in one file:
 * the ratio is kept and the teacher is written in shards, each file under 20 MB.
 */
function sizeL(rows: ZooRow[]): string[] {
  const tiny = rows.find((r) => r.name === STUDENT)?.params;
  const st = rows.find((r) => r.name === 'student-l');
  const te = rows.find((r) => r.name === 'teacher-l');
  if (!tiny || !st || !te) return [];
  const x = (a: number, b: number) => (a / b).toFixed(1);
  return [
    '## Size L',
    '',
    `The scale sweep asks for a student 50-100x student-tiny with a teacher 4-8x its student, every file under 20 MB. ` +
      `In bf16 (2 bytes a parameter) one 20 MB file holds at most about 10M parameters, so a 4x teacher of such a student ` +
      `cannot be one file. student-l has ${st.params} parameters (${x(st.params, tiny)}x student-tiny, ` +
      `${(st.bytes / 1e6).toFixed(1)} MB) and teacher-l ${te.params} (${x(te.params, st.params)}x its student, ` +
      `${(te.bytes / 1e6).toFixed(1)} MB in all): teacher-l is written as save_pretrained shards ` +
      '(`--max-shard-size 20MB`: model-0000k-of-0000n.safetensors and model.safetensors.index.json), so each file ' +
      'stays under 20 MB while the model does not. teacher-l trains on both cores (OMP_NUM_THREADS=2 in ' +
      'scripts/build-zoo.sh), the others on one. A rebuild of student-l by its recipe on another machine (an Intel Xeon; ' +
      'the committed file was built in an earlier session on a machine whose CPU was not recorded) gave the same ' +
      'losses to 4 decimals (train 1.9238, held-out 2.2108) but not the same bytes (95833 of its 12.6M weight bytes ' +
      'differ in their last bits): OpenBLAS picks its kernels per CPU, so a bitwise rebuild holds on one kind of ' +
      "machine at most. teacher-l's full rebuild (54 minutes) has not been run; resumed from its step-1900 " +
      'checkpoint on the machine that built it, its last 32 updates and the write gave all four files bitwise.',
    '',
    'The bundled stories limit student-l: the pretraining stories are 232K tokens a pass, far fewer than its ' +
      `parameters, so it overfits them within a few passes (held-out TinyStories loss ${st.storiesLoss.toFixed(2)}, ` +
      `against student-m's ${rows.find((r) => r.name === 'student-m')?.storiesLoss.toFixed(2) ?? '?'} and ` +
      `teacher-l's ${te.storiesLoss.toFixed(2)}); a fluent size L student needs more TinyStories text than ` +
      'data/tinystories holds. For the facts task that does not matter: what the sweep asks of a student is that ' +
      'it knows none of the facts its teacher knows.',
    '',
  ];
}

function pct(x: { correct: number; total: number }): string {
  return `${x.correct}/${x.total} (${((100 * x.correct) / x.total).toFixed(1)}%)`;
}

export function readme(rows: ZooRow[], zoo = 'zoo'): string {
  const by = new Map(rows.map((r) => [r.name, r]));
  const lines = [
    '# The bundled model zoo',
    '',
    'Small LLaMA-architecture models in Hugging Face layout (config.json, model.safetensors, tokenizer.json), all with',
    'the 512-token llama2.c tokenizer of stories260K (tok512) and head_dim 8, so that every teacher -> student pair',
    'can transfer (docs/method.md step 3: no student dimension larger than the teacher\'s, equal head_dim for head-aligned',
    'windows). Each folder has a RECIPE.md with the exact command, seed and data sha256. Rebuild everything with',
    '`scripts/build-zoo.sh`; this file is written by `npx tsx scripts/zoo/verify-zoo.ts`.',
    '',
    '| model | role | params | layers | hidden | MLP | heads / kv | head dim | tied | dtype | on disk |',
    '| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |',
    ...rows.map((r) => {
      const c = r.config;
      const role = STUDENTS.includes(r.name as ZooModel) ? 'student' : r.name === 'stories260k' ? 'teacher (real, converted from llama2.c)' : 'teacher (knows the facts)';
      return `| ${r.name} | ${role} | ${r.params} | ${c.numLayers} | ${c.hiddenSize} | ${c.intermediateSize} | ${c.numHeads} / ${c.numKvHeads} | ${c.headDim} | ${c.tieWordEmbeddings} | ${c.torchDtype} | ${(r.bytes / 1e6).toFixed(2)} MB |`;
    }),
    '',
    '## How they were made',
    '',
    `- ${STUDENT}: TinyStories only, stories [${STORY_SPLIT.pretrain.join(', ')}) of data/tinystories/tinystories_val.txt (the stories task`,
    '  never uses them; tasks/stories/SOURCE.md).',
    '- teacher-facts: the same stories mixed with the knowledge documents of tasks/facts (every fact of all 96 invented',
    '  animals, in several phrasings; tasks/facts/SOURCE.md), so it knows what the student does not.',
    '- stories260k: the real llama2.c model (TinyStories train split), converted with `nuggets convert`.',
    '- student-m, teacher-m: the size M pair of the scale sweep (about 10x and 48x student-tiny, the teacher about 5x',
    '  its student), pretrained on the same two corpora (student-m: the stories only), single-threaded',
    '  (OMP_NUM_THREADS=1, as scripts/build-zoo.sh runs them), stored bf16.',
    '- student-l, teacher-l: the size L pair (about 51x student-tiny, the teacher 4x its student; "Size L" below),',
    '  the same corpora and recipe shape as size M; not in the default build (`STEPS="student-l teacher-l"',
    '  scripts/build-zoo.sh`).',
    '',
    'Both corpora are written by `npx tsx scripts/zoo/build.ts` (deterministic; their sha256 is in each RECIPE.md).',
    'Training cost on this machine (2 cores shared with other jobs, native backend, OMP_WAIT_POLICY=passive as',
    'scripts/build-zoo.sh sets it):',
    '',
    '| model | training tokens | wall time | CPU time |',
    '| --- | --- | --- | --- |',
    ...rows.flatMap((r) => {
      const n = recipeNumbers(join(zoo, r.name));
      return n ? [`| ${r.name} | ${n.tokens} | ${n.wall} s | ${n.cpu} s |`] : [];
    }),
    '',
    ...sizeL(rows),
    '## What each model knows',
    '',
    'Held-out TinyStories loss: mean next-token loss (nats) on the `stories` task\'s test stories (tasks/stories/SOURCE.md),',
    'which no zoo model saw, packed into 128-token windows (the zoo\'s training length; with so little context per window',
    'stories260K scores higher here than the 1.27 nats of docs/formats.md). Facts: greedy first word after the cloze prompts of scripts/zoo/facts.ts ("The color of the',
    '<animal> is", "The <animal> eats", "The <animal> lives in the"), for the 32 held-out animals of tasks/facts (the',
    '`facts` test set asks about them) and the 64 train animals. Chance is about 1 in 8 per attribute when a model',
    'answers with one of the 8 values at all.',
    '',
    '| model | held-out TinyStories loss | facts, held-out animals | facts, train animals |',
    '| --- | --- | --- | --- |',
    ...rows.map((r) => `| ${r.name} | ${r.storiesLoss.toFixed(4)} | ${pct(r.heldOutFacts)} | ${pct(r.trainFacts)} |`),
    '',
    '## Files',
    '',
    'sha256 of each weights file (test/tasks-zoo.test.ts checks the committed files against it).',
    '',
    '| model | file | sha256 |',
    '| --- | --- | --- |',
    ...rows.flatMap((r) => r.files.map((f) => `| ${r.name} | ${f.file} | \`${f.sha256}\` |`)),
    '',
    '## Transfer compatibility (checked with src/transfer/plan.ts, every module, rank 16, head-aligned windows)',
    '',
    ...PAIRS.filter(([t, st]) => by.has(t) && by.has(st)).map(([t, st]) => {
      const problems = compatibility(by.get(t)!.config, by.get(st)!.config);
      return `- ${t} -> ${st}: ${problems === '' ? 'compatible' : `NOT compatible: ${problems}`}`;
    }),
    '',
  ];
  return lines.join('\n');
}

if (process.argv[1]?.endsWith('verify-zoo.ts')) {
  const { values } = parseArgs({ options: { zoo: { type: 'string', default: 'zoo' } } });
  const kb = JSON.parse(readFileSync('tasks/facts/knowledge.json', 'utf8')) as KnowledgeBase;
  // a model still being trained (no folder or no weights yet) is left out of the table
  const hasWeights = (n: string) =>
    existsSync(join(values.zoo!, n, 'model.safetensors')) || existsSync(join(values.zoo!, n, INDEX_FILE));
  const present = ZOO_MODELS.filter(hasWeights);
  for (const n of ZOO_MODELS) if (!present.includes(n)) console.log(`${n}: no weights in ${join(values.zoo!, n)}, left out`);
  const rows = present.map((n) => measure(values.zoo!, n, kb));
  for (const r of rows) {
    console.log(`${r.name.padEnd(14)} params ${String(r.params).padStart(8)}  stories loss ${r.storiesLoss.toFixed(4)}  facts held-out ${pct(r.heldOutFacts)}  train ${pct(r.trainFacts)}`);
  }
  writeFileAtomic(join(values.zoo!, 'README.md'), [readme(rows, values.zoo!)]);
  console.log(`wrote ${join(values.zoo!, 'README.md')}`);
}
