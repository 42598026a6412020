/**
 * Generates the miniature study's task files and the zoo's pretraining corpora, deterministically
 * (same files, same sha256, on every run):
 *
 *   tasks/stories/{seeds,train,test}.jsonl + SOURCE.md      TinyStories continuation
 *   tasks/facts/{seeds,train,test}.jsonl + knowledge.json + SOURCE.md
 *   <corpus>/student-tiny.jsonl    the pretraining stories, one {"text"} per story
 *   <corpus>/teacher-facts.jsonl   the same stories + the knowledge documents, shuffled
 *
 * Run: npx tsx scripts/zoo/build.ts [--tasks tasks] [--corpus runs/zoo-build/data]
 * (scripts/build-zoo.sh runs it before pretraining the zoo).
 */
import { mkdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { parseArgs } from 'node:util';
import { Rng } from '../../src/engine/rng.js';
import { writeFileAtomic } from '../../src/io/atomic.js';
import { Llama2cTokenizer } from '../../src/io/tokenizer-llama2c.js';
import type { Tokenizer } from '../../src/model/tokenizer.js';
import { renderExample, TULU } from '../../src/data/chat.js';
import { toExample } from '../../src/data/examples.js';
import { tokenizePieces } from '../../src/data/encode.js';
import { sha256Hex } from '../../src/train/pretrain-data.js';
import { readStories, STORY_INSTRUCTION, STORY_SPLIT, storyRow, storyWindows } from './tinystories.js';
import { allFactRows, ATTRIBUTES, clozePrompts, FACTS_SEED, knowledgeDocuments, makeKnowledge, N_HELDOUT_ANIMALS, N_TRAIN_ANIMALS, QUESTIONS, VALUES, wordsOf, factRow, type FactRow } from './facts.js';

export const TINYSTORIES = 'data/tinystories/tinystories_val.txt';
export const TOKENIZER = 'data/stories260k/tokenizer.bin';
/** Tokens of a whole task example in the Tulu format (BOS, EOS included) at most: the zoo's training length. */
export const MAX_EXAMPLE_TOKENS = 128;
export const N_SEEDS = 32;
export const N_TRAIN = 1000;
/** Knowledge documents per animal and style in the teacher's corpus. */
export const KNOWLEDGE_REPEATS = 16;
const TASK_SEED = 7;

type Row = { dataset: string; id: string; messages: Array<{ role: string; content: string }> };

function jsonl(rows: readonly object[]): string {
  return rows.map((r) => JSON.stringify(r)).join('\n') + '\n';
}

function writeText(path: string, text: string): string {
  writeFileAtomic(path, [text]);
  return sha256Hex(Buffer.from(text, 'utf8'));
}

/** Tokens of a row rendered in the Tulu format with BOS and EOS (what training sees). */
export function rowTokens(row: Row, tok: Tokenizer): number {
  const ex = toExample('row', { line: 1, value: row });
  return tokenizePieces(renderExample(ex, TULU), tok, { mask: false }).ids.length;
}

export interface BuildResult {
  files: Record<string, string>;
  counts: Record<string, number>;
}

export function buildStories(tok: Tokenizer, stories: string[], dir: string, counts: Record<string, number>, files: Record<string, string>): void {
  const opts = { maxPromptTokens: 48, maxAnswerTokens: 48, maxWindows: 5 };
  const windowsOf = (lo: number, hi: number) => {
    const rows: Row[] = [];
    let dropped = 0;
    for (let s = lo; s < hi; s++) {
      storyWindows(stories[s], tok, opts).forEach((w, k) => {
        const row = storyRow(`stories-${s}-${k}`, w);
        if (rowTokens(row, tok) <= MAX_EXAMPLE_TOKENS) rows.push(row);
        else dropped++;
      });
    }
    return { rows, dropped };
  };
  const pool = windowsOf(...STORY_SPLIT.taskTrain);
  const test = windowsOf(...STORY_SPLIT.taskTest);
  if (pool.rows.length < N_SEEDS + N_TRAIN) throw new Error(`stories: only ${pool.rows.length} training windows, need ${N_SEEDS + N_TRAIN}`);
  const order = new Rng(TASK_SEED).shuffle(pool.rows.slice());
  const seeds = order.slice(0, N_SEEDS);
  const train = order.slice(N_SEEDS, N_SEEDS + N_TRAIN);
  mkdirSync(dir, { recursive: true });
  files['stories/seeds.jsonl'] = writeText(join(dir, 'seeds.jsonl'), jsonl(seeds));
  files['stories/train.jsonl'] = writeText(join(dir, 'train.jsonl'), jsonl(train));
  files['stories/test.jsonl'] = writeText(join(dir, 'test.jsonl'), jsonl(test.rows));
  counts['stories.pool'] = pool.rows.length;
  counts['stories.test'] = test.rows.length;
  counts['stories.dropped'] = pool.dropped + test.dropped;
}

export function buildFacts(tok: Tokenizer, storiesText: string, dir: string, counts: Record<string, number>, files: Record<string, string>): ReturnType<typeof makeKnowledge> {
  const kb = makeKnowledge(wordsOf(storiesText));
  const pool = new Rng(TASK_SEED + 1).shuffle(allFactRows(kb, 'train'));
  if (pool.length < N_SEEDS + N_TRAIN) throw new Error(`facts: only ${pool.length} training rows`);
  const seeds = pool.slice(0, N_SEEDS);
  const train = pool.slice(N_SEEDS, N_SEEDS + N_TRAIN);
  // Held out: every fact of the held-out animals, in the first two phrasings.
  const test: FactRow[] = [];
  for (const a of kb.animals.filter((x) => x.split === 'heldOut')) for (const attr of ATTRIBUTES) for (const q of [0, 1]) test.push(factRow(a, attr, q));
  for (const r of [...seeds, ...train, ...test]) {
    if (rowTokens(r, tok) > MAX_EXAMPLE_TOKENS) throw new Error(`facts: row ${r.id} is longer than ${MAX_EXAMPLE_TOKENS} tokens`);
  }
  mkdirSync(dir, { recursive: true });
  files['facts/seeds.jsonl'] = writeText(join(dir, 'seeds.jsonl'), jsonl(seeds));
  files['facts/train.jsonl'] = writeText(join(dir, 'train.jsonl'), jsonl(train));
  files['facts/test.jsonl'] = writeText(join(dir, 'test.jsonl'), jsonl(test));
  files['facts/knowledge.json'] = writeText(join(dir, 'knowledge.json'), JSON.stringify(kb, null, 1) + '\n');
  counts['facts.pool'] = pool.length;
  counts['facts.test'] = test.length;
  return kb;
}

function storiesSource(counts: Record<string, number>, files: Record<string, string>): string {
  const [p0, p1] = STORY_SPLIT.pretrain, [a0, a1] = STORY_SPLIT.taskTrain, [b0, b1] = STORY_SPLIT.taskTest;
  return `# stories: TinyStories continuation

Generated by \`npx tsx scripts/zoo/build.ts\` (scripts/zoo/tinystories.ts) from \`${TINYSTORIES}\`
(the first ~800 stories of the TinyStories validation split, CDLA-Sharing-1.0; see data/tinystories/SOURCE.md).
Deterministic: rerunning gives byte-identical files.

## Rows

The paper's row format \`{"dataset", "id", "messages": [user, assistant]}\`:
- user: \`"${STORY_INSTRUCTION}\\n\\n" + prompt\`, the prompt being the opening sentences of a story (first window)
  or the sentences just before the continuation (later windows), at most 48 tokens;
- assistant: the continuation, whole sentences, at most 48 tokens.
Token counts use the tok512 tokenizer (data/stories260k/tokenizer.bin). Up to 5 consecutive windows per story.
Every row is at most ${MAX_EXAMPLE_TOKENS} tokens in the Tulu format with BOS and EOS (rows over it are dropped:
${counts['stories.dropped']}). \`id\` = \`stories-<story index>-<window>\`.

## Split (story indices of the file, stories found as in scripts/zoo/tinystories.ts)

| part | stories | rows |
| --- | --- | --- |
| zoo pretraining (zoo/student-tiny, zoo/teacher-facts) | [${p0}, ${p1}) | - |
| seeds.jsonl + train.jsonl (seeded shuffle of the pool's ${counts['stories.pool']} windows: first ${N_SEEDS} seeds, next ${N_TRAIN} train) | [${a0}, ${a1}) | ${N_SEEDS} + ${N_TRAIN} |
| test.jsonl (every window) | [${b0}, ${b1}) | ${counts['stories.test']} |

No task story is in the zoo's pretraining text. stories260K was trained on the TinyStories *train* split, so all of
these are held out for it too.

## Metric

Held-out answer loss: mean next-token cross-entropy over the answer tokens (continuation + EOS) of test.jsonl,
prompt tokens masked, Tulu format.

## sha256

${Object.entries(files).filter(([k]) => k.startsWith('stories/')).map(([k, v]) => `- ${k.slice(8)}: \`${v}\``).join('\n')}
`;
}

function factsSource(kb: ReturnType<typeof makeKnowledge>, counts: Record<string, number>, files: Record<string, string>): string {
  const q = (a: keyof typeof QUESTIONS) => QUESTIONS[a].map((s) => `"${s}"`).join(', ');
  const a = kb.animals[0];
  return `# facts: knowledge only the teacher saw in pretraining

Generated by \`npx tsx scripts/zoo/build.ts\` (scripts/zoo/facts.ts), seed ${FACTS_SEED}. Deterministic.

## The knowledge

${N_TRAIN_ANIMALS + N_HELDOUT_ANIMALS} invented animals with two-syllable names that are not words of TinyStories
(e.g. "${a.name}"), each with a color, a food and a home drawn uniformly from 8 values each:
- color: ${VALUES.color.join(', ')}
- food: ${VALUES.food.join(', ')}
- home: ${VALUES.home.join(', ')}

knowledge.json lists them all with their split. The teacher (zoo/teacher-facts) was pretrained on TinyStories text mixed
with ${KNOWLEDGE_REPEATS} x 5 documents per animal, ALL animals (statements such as "The color of the ${a.name} is ${a.color}.",
"The ${a.name} eats ${a.food}.", "Q: Where does the ${a.name} live? A: ${a.home}.", and a little story). The student
(zoo/student-tiny) saw TinyStories only.

## Rows

\`{"dataset": "facts", "id": "facts-<name>-<attribute>-q<phrasing>", "messages": [user question, assistant answer]}\`;
the answer is one word. Question phrasings:
- color: ${q('color')}
- food: ${q('food')}
- home: ${q('home')}

| file | animals | rows |
| --- | --- | --- |
| seeds.jsonl | the ${N_TRAIN_ANIMALS} \`train\` animals | ${N_SEEDS} |
| train.jsonl | the ${N_TRAIN_ANIMALS} \`train\` animals | ${N_TRAIN} |
| test.jsonl | the ${N_HELDOUT_ANIMALS} \`heldOut\` animals, every attribute, phrasings 0 and 1 | ${counts['facts.test']} |

Seeds and train rows are a seeded shuffle of all ${counts['facts.pool']} (animal, attribute, phrasing) rows of the train
animals (first ${N_SEEDS} seeds, next ${N_TRAIN} train; the leftover rows are unused). The test animals' answers appear
nowhere in the task data, so fine-tuning teaches the format and the answer vocabulary but not the answers: without the
teacher's knowledge a student is at chance, about 1 in 8.

## Metric

Exact match: the greedy answer to the Tulu prompt (generation stopped at EOS) equals the gold word after Super-NI's
normalize_answer (lower case; punctuation and articles dropped; whitespace collapsed), as \`nuggets eval\` scores
super_ni rows (src/eval/rouge.ts).

The raw models can be checked with cloze prompts (scripts/zoo/facts.ts \`clozePrompts\`, e.g. "The color of the ${a.name} is"
-> " ${a.color}"); test/tasks-zoo.test.ts does this for the held-out animals.

## sha256

${Object.entries(files).filter(([k]) => k.startsWith('facts/')).map(([k, v]) => `- ${k.slice(6)}: \`${v}\``).join('\n')}
`;
}

export function buildAll(tasksDir: string, corpusDir: string): BuildResult {
  const tok = Llama2cTokenizer.fromFile(TOKENIZER);
  const text = readFileSync(TINYSTORIES, 'utf8');
  const stories = readStories(TINYSTORIES);
  const counts: Record<string, number> = { stories: stories.length };
  const files: Record<string, string> = {};
  buildStories(tok, stories, join(tasksDir, 'stories'), counts, files);
  const kb = buildFacts(tok, text, join(tasksDir, 'facts'), counts, files);
  writeText(join(tasksDir, 'stories', 'SOURCE.md'), storiesSource(counts, files));
  writeText(join(tasksDir, 'facts', 'SOURCE.md'), factsSource(kb, counts, files));

  // Pretraining corpora.
  const pre = stories.slice(...STORY_SPLIT.pretrain);
  const knowledge = knowledgeDocuments(kb, KNOWLEDGE_REPEATS);
  const mixed = new Rng(TASK_SEED + 2).shuffle([...pre, ...knowledge]);
  mkdirSync(corpusDir, { recursive: true });
  files['corpus/student-tiny.jsonl'] = writeText(join(corpusDir, 'student-tiny.jsonl'), jsonl(pre.map((t) => ({ text: t }))));
  files['corpus/teacher-facts.jsonl'] = writeText(join(corpusDir, 'teacher-facts.jsonl'), jsonl(mixed.map((t) => ({ text: t }))));
  counts['corpus.stories'] = pre.length;
  counts['corpus.knowledgeDocs'] = knowledge.length;
  // the cloze prompts exist for every animal (sanity: the knowledge base is complete)
  for (const an of kb.animals) if (clozePrompts(an).length !== ATTRIBUTES.length) throw new Error('cloze prompts incomplete');
  return { files, counts };
}

if (import.meta.url === `file://${process.argv[1]}` || process.argv[1]?.endsWith('scripts/zoo/build.ts')) {
  const { values } = parseArgs({ options: { tasks: { type: 'string', default: 'tasks' }, corpus: { type: 'string', default: 'runs/zoo-build/data' } } });
  const r = buildAll(values.tasks!, values.corpus!);
  for (const [k, v] of Object.entries(r.counts)) console.log(`${k.padEnd(22)} ${v}`);
  for (const [k, v] of Object.entries(r.files)) console.log(`${k.padEnd(28)} ${v}  ${relative('.', k)}`);
}
