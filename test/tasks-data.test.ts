/**
 * The miniature study's task files (tasks/stories, tasks/facts): they parse with the shared data
 * loader, have the stated sizes, fit the zoo's training length, keep the stated splits (no task story
 * in the zoo's pretraining text, test animals never asked about in the training pool), and are
 * exactly what the committed generator writes.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readExamples, answerOf, type ChatExample } from '../src/data/examples.js';
import { encodeExamples } from '../src/data/encode.js';
import { TULU } from '../src/data/chat.js';
import { Llama2cTokenizer } from '../src/io/tokenizer-llama2c.js';
import { buildAll, MAX_EXAMPLE_TOKENS, N_SEEDS, N_TRAIN } from '../scripts/zoo/build.js';
import { readStories, sentences, STORY_SPLIT, storyWindows } from '../scripts/zoo/tinystories.js';
import { ATTRIBUTES, QUESTIONS, VALUES, type KnowledgeBase } from '../scripts/zoo/facts.js';

const tok = Llama2cTokenizer.fromFile('data/stories260k/tokenizer.bin');
const tmp = mkdtempSync(join(tmpdir(), 'nuggets-tasks-'));
const built = buildAll(join(tmp, 'tasks'), join(tmp, 'corpus'));
const kb = JSON.parse(readFileSync('tasks/facts/knowledge.json', 'utf8')) as KnowledgeBase;

function load(task: string, part: string): ChatExample[] {
  const ex = readExamples(`tasks/${task}/${part}.jsonl`);
  for (const e of ex) assert.equal(e.kind, 'chat', `${e.source} is not a chat row`);
  return ex as ChatExample[];
}

test('the committed task files are byte for byte what scripts/zoo/build.ts generates', () => {
  for (const f of [
    'stories/seeds.jsonl',
    'stories/train.jsonl',
    'stories/test.jsonl',
    'stories/SOURCE.md',
    'facts/seeds.jsonl',
    'facts/train.jsonl',
    'facts/test.jsonl',
    'facts/knowledge.json',
    'facts/SOURCE.md',
  ]) {
    assert.ok(
      readFileSync(join('tasks', f)).equals(readFileSync(join(tmp, 'tasks', f))),
      `tasks/${f} differs from the generator's output: rerun npx tsx scripts/zoo/build.ts`,
    );
  }
});

test('sizes: 32 seeds, 1,000 training rows, the held-out rows SOURCE.md states; every row fits the zoo context', () => {
  for (const task of ['stories', 'facts']) {
    const seeds = load(task, 'seeds'),
      train = load(task, 'train'),
      testRows = load(task, 'test');
    assert.equal(seeds.length, N_SEEDS);
    assert.equal(train.length, N_TRAIN);
    const source = readFileSync(`tasks/${task}/SOURCE.md`, 'utf8');
    assert.match(
      source,
      new RegExp(`\\| test\\.jsonl[^\\n]*\\| ${testRows.length} \\|`),
      `${task}: SOURCE.md does not state ${testRows.length} test rows`,
    );
    assert.ok(testRows.length >= 150, `${task}: only ${testRows.length} test rows`);
    for (const part of ['seeds', 'train', 'test']) {
      // the shared encoder refuses any row longer than the limit, listing its line
      const rows = load(task, part);
      const { report } = encodeExamples(rows, tok, {
        format: TULU,
        maxLength: MAX_EXAMPLE_TOKENS,
        overflow: 'refuse',
      });
      assert.equal(report.kept, rows.length);
    }
    const ids = [...seeds, ...train, ...testRows].map((e) => e.id);
    assert.equal(new Set(ids).size, ids.length, `${task}: duplicate ids`);
    for (const e of [...seeds, ...train, ...testRows]) assert.equal(e.dataset, task);
  }
});

test('stories: prompts are story text, answers continue it, and the three story ranges are disjoint', () => {
  const stories = readStories('data/tinystories/tinystories_val.txt');
  assert.equal(stories.length, 788);
  assert.ok(stories.every((s) => /^Once/.test(s)));
  const storyOf = (id: string) => Number(/^stories-(\d+)-\d+$/.exec(id)![1]);
  const inRange = (s: number, [a, b]: readonly [number, number]) => s >= a && s < b;
  for (const e of [...load('stories', 'seeds'), ...load('stories', 'train')])
    assert.ok(inRange(storyOf(e.id!), STORY_SPLIT.taskTrain), e.id);
  for (const e of load('stories', 'test')) assert.ok(inRange(storyOf(e.id!), STORY_SPLIT.taskTest), e.id);
  assert.equal(STORY_SPLIT.pretrain[1], STORY_SPLIT.taskTrain[0]);
  assert.equal(STORY_SPLIT.taskTrain[1], STORY_SPLIT.taskTest[0]);
  // every row's prompt and answer are consecutive text of its story
  for (const e of load('stories', 'train').slice(0, 200)) {
    const story = stories[storyOf(e.id!)].replace(/\s+/g, ' ');
    const prompt = e.messages[0].content.replace(/^Continue the story:\n\n/, '').replace(/\s+/g, ' ');
    const answer = answerOf(e).replace(/\s+/g, ' ');
    assert.ok(
      story.includes(`${prompt} ${answer}`),
      `${e.id}: prompt + answer is not a passage of story ${storyOf(e.id!)}`,
    );
  }
  // the zoo's pretraining corpus holds exactly the pretraining stories
  const corpus = readFileSync(join(tmp, 'corpus', 'student-tiny.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => (JSON.parse(l) as { text: string }).text);
  assert.deepEqual(corpus, stories.slice(...STORY_SPLIT.pretrain));
});

test('windows: sentence splitting keeps the text; windows respect the token budgets', () => {
  const text = 'Tom ran. "Stop!" said Mom.\n\nHe stopped? Yes';
  assert.deepEqual(sentences(text), ['Tom ran. ', '"Stop!" ', 'said Mom.\n\n', 'He stopped? ', 'Yes']);
  assert.equal(sentences(text).join(''), text);
  const story = readStories('data/tinystories/tinystories_val.txt')[500];
  const ws = storyWindows(story, tok, { maxPromptTokens: 48, maxAnswerTokens: 40, maxWindows: 3 });
  assert.equal(ws.length, 3);
  // the first prompt is the story's opening; the 45-token second sentence of paragraph 2 never starts a
  // continuation, and the windows follow each other through the text
  assert.equal(
    ws[0].prompt,
    "Once upon a time, there was a dinosaur. He was confused. He didn't know what to do or where to go.",
  );
  assert.equal(ws[0].continuation, 'He decided to go for a walk in the woods.');
  assert.equal(ws[1].continuation, 'He kept walking until he saw something else.');
  assert.equal(ws[2].prompt, 'The dinosaur laughed.\n\nHe kept walking until he saw something else.');
  for (const w of ws) {
    assert.ok(tok.encode(w.continuation).length <= 40 + 1);
    assert.ok(tok.encode(w.prompt).length <= 48 + 1);
  }
});

test('facts: training rows ask only about train animals, test rows only about held-out ones, answers from knowledge.json', () => {
  const byName = new Map(kb.animals.map((a) => [a.name, a]));
  assert.equal(kb.animals.length, 96);
  assert.equal(byName.size, 96);
  const parse = (e: ChatExample) => {
    const m = /^facts-([a-z]+)-(color|food|home)-q(\d)$/.exec(e.id!);
    assert.ok(m, e.id);
    const a = byName.get(m[1])!;
    const attr = m[2] as (typeof ATTRIBUTES)[number];
    assert.equal(e.messages[0].content, QUESTIONS[attr][Number(m[3])].replace('{n}', a.name));
    assert.equal(answerOf(e), a[attr]);
    assert.ok(VALUES[attr].includes(answerOf(e)));
    return a;
  };
  const heldOutNames = new Set(kb.animals.filter((a) => a.split === 'heldOut').map((a) => a.name));
  for (const part of ['seeds', 'train']) {
    for (const e of load('facts', part)) {
      assert.equal(parse(e).split, 'train', `${e.id} in ${part} asks about a held-out animal`);
      for (const n of heldOutNames)
        assert.ok(!e.messages.some((m) => m.content.includes(n)), `${e.id} mentions ${n}`);
    }
  }
  const testRows = load('facts', 'test');
  for (const e of testRows) assert.equal(parse(e).split, 'heldOut');
  assert.equal(testRows.length, heldOutNames.size * ATTRIBUTES.length * 2);
  // seeds and training rows are different rows
  const seedIds = new Set(load('facts', 'seeds').map((e) => e.id));
  assert.ok(load('facts', 'train').every((e) => !seedIds.has(e.id)));
});

test('pretraining corpora: the teacher reads every fact, the student none', () => {
  const read = (f: string) => readFileSync(join(tmp, 'corpus', f), 'utf8');
  const student = read('student-tiny.jsonl');
  const teacher = read('teacher-facts.jsonl');
  for (const a of kb.animals) {
    assert.ok(!student.includes(a.name), `the student's corpus mentions ${a.name}`);
    assert.ok(teacher.includes(`The color of the ${a.name} is ${a.color}.`), `${a.name} color`);
    assert.ok(teacher.includes(`The ${a.name} eats ${a.food}.`), `${a.name} food`);
    assert.ok(teacher.includes(`The ${a.name} lives in the ${a.home}.`), `${a.name} home`);
  }
  // the animal names are not TinyStories words (the student cannot know them from its text)
  const words = new Set(
    readFileSync('data/tinystories/tinystories_val.txt', 'utf8')
      .toLowerCase()
      .match(/[a-z]+/g),
  );
  for (const a of kb.animals) assert.ok(!words.has(a.name), a.name);
  assert.equal(built.counts['corpus.stories'], STORY_SPLIT.pretrain[1] - STORY_SPLIT.pretrain[0]);
});
