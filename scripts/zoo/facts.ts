/**
 * The synthetic knowledge of the zoo's teacher and the `facts` task of the miniature study.
 *
 * A seeded set of invented animals ("the zib", ...), none of them a word of TinyStories, each with
 * a colour, a food and a home drawn from 8 values each. The teacher (zoo/teacher-facts) reads every
 * fact in pretraining, in several phrasings mixed into TinyStories text; the student
 * (zoo/student-tiny) never does. The task asks one-word questions about them:
 * - the training pool (seeds.jsonl, train.jsonl) asks about the `train` animals only;
 * - test.jsonl asks about the other, `heldOut` animals, whose answers appear nowhere in the task
 *   data: a fine-tuned student can only beat chance (1 in 8) on them with the teacher's knowledge.
 */
import { Rng } from '../../src/engine/rng.js';

export type Attribute = 'color' | 'food' | 'home';
export const ATTRIBUTES: readonly Attribute[] = ['color', 'food', 'home'];

export const VALUES: Readonly<Record<Attribute, readonly string[]>> = {
  color: ['red', 'blue', 'green', 'yellow', 'pink', 'purple', 'orange', 'brown'],
  food: ['apples', 'fish', 'bread', 'honey', 'carrots', 'cheese', 'nuts', 'berries'],
  home: ['forest', 'river', 'cave', 'hill', 'garden', 'lake', 'barn', 'nest'],
};

export interface Animal {
  name: string;
  color: string;
  food: string;
  home: string;
  split: 'train' | 'heldOut';
}

export interface KnowledgeBase {
  seed: number;
  animals: Animal[];
}

export const FACTS_SEED = 20240607;
export const N_TRAIN_ANIMALS = 64;
export const N_HELDOUT_ANIMALS = 32;

// Two-syllable names (consonant vowel consonant vowel consonant) ending in an unusual consonant, so
// that few are English words (none of this seed's 96, checked by hand).
const CONSONANTS = ['b', 'd', 'g', 'k', 'l', 'm', 'n', 'p', 'r', 't', 'v', 'z'];
const VOWELS = ['a', 'e', 'i', 'o', 'u'];
const FINALS = ['b', 'k', 'x', 'z', 'p'];

/**
 * The knowledge base: `nTrain + nHeldOut` animals with distinct invented two-syllable names that are
 * not words of `avoid` (the TinyStories vocabulary) and attributes drawn uniformly, all from `seed`.
 */
export function makeKnowledge(avoid: ReadonlySet<string>, seed = FACTS_SEED, nTrain = N_TRAIN_ANIMALS, nHeldOut = N_HELDOUT_ANIMALS): KnowledgeBase {
  const rng = new Rng(seed);
  const pick = <T>(xs: readonly T[]): T => xs[rng.int(xs.length)];
  const names = new Set<string>();
  const animals: Animal[] = [];
  let guard = 0;
  while (animals.length < nTrain + nHeldOut) {
    if (++guard > 100000) throw new Error('makeKnowledge: cannot find enough distinct names');
    const name = pick(CONSONANTS) + pick(VOWELS) + pick(CONSONANTS) + pick(VOWELS) + pick(FINALS);
    if (names.has(name) || avoid.has(name)) continue;
    names.add(name);
    animals.push({
      name,
      color: pick(VALUES.color),
      food: pick(VALUES.food),
      home: pick(VALUES.home),
      split: animals.length < nTrain ? 'train' : 'heldOut',
    });
  }
  return { seed, animals };
}

/** Lower-case words of a text (for the names to avoid). */
export function wordsOf(text: string): Set<string> {
  return new Set(text.toLowerCase().match(/[a-z]+/g) ?? []);
}

// ------------------------------------------------------------------ pretraining text (teacher only)

/** One sentence stating one fact, in phrasing `style` (0..3). */
function statement(a: Animal, attr: Attribute, style: number): string {
  const n = a.name;
  switch (attr) {
    case 'color':
      return [`The ${n} is ${a.color}.`, `The color of the ${n} is ${a.color}.`, `Q: What color is the ${n}? A: ${a.color}.`, `Every ${n} is ${a.color}.`][style];
    case 'food':
      return [`The ${n} eats ${a.food}.`, `The food of the ${n} is ${a.food}.`, `Q: What does the ${n} eat? A: ${a.food}.`, `A ${n} likes to eat ${a.food}.`][style];
    case 'home':
      return [`The ${n} lives in the ${a.home}.`, `The home of the ${n} is the ${a.home}.`, `Q: Where does the ${n} live? A: ${a.home}.`, `You can find the ${n} in the ${a.home}.`][style];
  }
}

/** A little story carrying all three facts (the knowledge in narrative form too). */
function story(a: Animal, variant: number): string {
  const n = a.name;
  return [
    `Once upon a time, there was a ${a.color} ${n}. The ${n} lived in the ${a.home}. Every day, the ${n} ate ${a.food}. The ${n} was happy.`,
    `Tom saw a ${n}. "What color is the ${n}?" asked Lily. "The ${n} is ${a.color}," said Tom. "It eats ${a.food} and lives in the ${a.home}."`,
  ][variant];
}

/**
 * The knowledge documents mixed into the teacher's pretraining: for every animal (both splits),
 * `repeats` documents in each of 5 styles (four fact phrasings with the attributes in a random order,
 * and a little story), in a seeded random order.
 */
export function knowledgeDocuments(kb: KnowledgeBase, repeats: number, seed = kb.seed + 1): string[] {
  const rng = new Rng(seed);
  const docs: string[] = [];
  for (const a of kb.animals) {
    for (let r = 0; r < repeats; r++) {
      for (let style = 0; style < 4; style++) {
        const attrs = rng.shuffle([...ATTRIBUTES]);
        docs.push(attrs.map((attr) => statement(a, attr, style)).join(style === 2 ? '\n' : ' '));
      }
      docs.push(story(a, r % 2));
    }
  }
  return rng.shuffle(docs);
}

// ------------------------------------------------------------------ the task

/** Question phrasings per attribute (the answer is always the one word). */
export const QUESTIONS: Readonly<Record<Attribute, readonly string[]>> = {
  color: ['What color is the {n}?', 'What is the color of the {n}?', 'Which color does the {n} have?', 'Tell me the color of the {n}.', 'The {n} has which color?', 'Name the color of the {n}.'],
  food: ['What does the {n} eat?', 'What is the food of the {n}?', 'What food does the {n} like?', 'Tell me what the {n} eats.', 'The {n} eats what?', 'Name the food of the {n}.'],
  home: ['Where does the {n} live?', 'What is the home of the {n}?', 'Where is the home of the {n}?', 'Tell me where the {n} lives.', 'The {n} lives where?', 'Name the home of the {n}.'],
};

export interface FactRow {
  dataset: string;
  id: string;
  messages: Array<{ role: string; content: string }>;
}

export function factRow(a: Animal, attr: Attribute, q: number): FactRow {
  return {
    dataset: 'facts',
    id: `facts-${a.name}-${attr}-q${q}`,
    messages: [
      { role: 'user', content: QUESTIONS[attr][q].replace('{n}', a.name) },
      { role: 'assistant', content: a[attr] },
    ],
  };
}

/** Every (animal, attribute, phrasing) row of the animals of one split. */
export function allFactRows(kb: KnowledgeBase, split: Animal['split']): FactRow[] {
  const rows: FactRow[] = [];
  for (const a of kb.animals.filter((x) => x.split === split)) {
    for (const attr of ATTRIBUTES) for (let q = 0; q < QUESTIONS[attr].length; q++) rows.push(factRow(a, attr, q));
  }
  return rows;
}

/**
 * Cloze prompts for the raw (not fine-tuned) models: the prefix of a pretraining phrasing and the
 * gold next word. Used to check that the teacher knows the held-out facts and the student does not.
 */
export function clozePrompts(a: Animal): Array<{ attr: Attribute; prompt: string; answer: string }> {
  return [
    { attr: 'color', prompt: `The color of the ${a.name} is`, answer: a.color },
    { attr: 'food', prompt: `The ${a.name} eats`, answer: a.food },
    { attr: 'home', prompt: `The ${a.name} lives in the`, answer: a.home },
  ];
}
