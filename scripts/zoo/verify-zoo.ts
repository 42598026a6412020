/**
 * Measures the bundled zoo and writes zoo/README.md: each model's size, its held-out TinyStories loss
 * (the `stories` task's test stories, never seen by any zoo model), what it knows of the facts (cloze
 * accuracy on the held-out and the train animals, scripts/zoo/facts-eval.ts), and whether each
 * teacher -> student pair passes the transfer plan's compatibility check (src/transfer/plan.ts).
 *
 * Run: npx tsx scripts/zoo/verify-zoo.ts [--zoo zoo]   (the last step of scripts/build-zoo.sh)
 */
import { readFileSync, statSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { writeFileAtomic } from '../../src/io/atomic.js';
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

export const ZOO_MODELS = ['student-tiny', 'teacher-facts', 'stories260k'] as const;
export const STUDENT = 'student-tiny';
export const TEACHERS = ['teacher-facts', 'stories260k'] as const;

export interface ZooRow {
  name: string;
  config: ModelConfig;
  params: number;
  bytes: number;
  storiesLoss: number;
  heldOutFacts: { correct: number; total: number };
  trainFacts: { correct: number; total: number };
}

function params(c: ModelConfig): number {
  return expectedTensorNames(c).reduce((n, name) => n + expectedShape(c, name).reduce((a, b) => a * b, 1), 0);
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
    params: params(src.config),
    bytes: folderBytes(dir),
    storiesLoss: storiesLoss(model, src.tokenizer),
    heldOutFacts: { correct: held.correct, total: held.total },
    trainFacts: { correct: train.correct, total: train.total },
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

function pct(x: { correct: number; total: number }): string {
  return `${x.correct}/${x.total} (${((100 * x.correct) / x.total).toFixed(1)}%)`;
}

export function readme(rows: ZooRow[], zoo = 'zoo'): string {
  const by = new Map(rows.map((r) => [r.name, r]));
  const s = by.get(STUDENT)!;
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
      const role = r.name === STUDENT ? 'student' : r.name === 'stories260k' ? 'teacher (real, converted from llama2.c)' : 'teacher (knows the facts)';
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
    '## Transfer compatibility (checked with src/transfer/plan.ts, every module, rank 16, head-aligned windows)',
    '',
    ...TEACHERS.filter((t) => by.has(t)).map((t) => {
      const problems = compatibility(by.get(t)!.config, s.config);
      return `- ${t} -> ${STUDENT}: ${problems === '' ? 'compatible' : `NOT compatible: ${problems}`}`;
    }),
    '',
  ];
  return lines.join('\n');
}

if (process.argv[1]?.endsWith('verify-zoo.ts')) {
  const { values } = parseArgs({ options: { zoo: { type: 'string', default: 'zoo' } } });
  const kb = JSON.parse(readFileSync('tasks/facts/knowledge.json', 'utf8')) as KnowledgeBase;
  const rows = ZOO_MODELS.map((n) => measure(values.zoo!, n, kb));
  for (const r of rows) {
    console.log(`${r.name.padEnd(14)} params ${String(r.params).padStart(8)}  stories loss ${r.storiesLoss.toFixed(4)}  facts held-out ${pct(r.heldOutFacts)}  train ${pct(r.trainFacts)}`);
  }
  writeFileAtomic(join(values.zoo!, 'README.md'), [readme(rows, values.zoo!)]);
  console.log(`wrote ${join(values.zoo!, 'README.md')}`);
}
