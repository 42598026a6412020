/**
 * Does a raw (not fine-tuned) model know the facts? Greedy continuation of the cloze prompts of
 * scripts/zoo/facts.ts ("The color of the vivup is" -> " blue"), scored by the first word. Used to
 * verify the zoo (the teacher knows the held-out animals, the student does not) in
 * scripts/build-zoo.sh and test/tasks-zoo.test.ts.
 */
import type { Tokenizer } from '../../src/model/tokenizer.js';
import { generate } from '../../src/model/generate.js';
import type { LlamaModel } from '../../src/model/model.js';
import { clozePrompts, type Animal, type Attribute } from './facts.js';

export interface ClozeResult {
  correct: number;
  total: number;
  accuracy: number;
  /** Per attribute: correct / total. */
  byAttribute: Record<Attribute, { correct: number; total: number }>;
  /** Every prompt with the model's first word and the gold one. */
  answers: Array<{ prompt: string; answer: string; got: string }>;
}

/** The first word of a continuation, lower-cased (punctuation dropped). */
export function firstWord(text: string): string {
  return (text.trim().match(/^[A-Za-z]+/)?.[0] ?? '').toLowerCase();
}

export function clozeAccuracy(model: LlamaModel, tok: Tokenizer, animals: readonly Animal[], opts: { batch?: number; maxNewTokens?: number } = {}): ClozeResult {
  const items = animals.flatMap((a) => clozePrompts(a));
  const byAttribute = { color: { correct: 0, total: 0 }, food: { correct: 0, total: 0 }, home: { correct: 0, total: 0 } };
  const answers: ClozeResult['answers'] = [];
  const batch = opts.batch ?? 32;
  let correct = 0;
  for (let i = 0; i < items.length; i += batch) {
    const chunk = items.slice(i, i + batch);
    const prompts = chunk.map((it) => tok.encode(it.prompt, { addBos: true }));
    const outs = generate(model, prompts, { maxNewTokens: opts.maxNewTokens ?? 8, temperature: 0, tokenizer: tok });
    chunk.forEach((it, k) => {
      const got = firstWord(outs[k].text ?? '');
      const ok = got === it.answer;
      if (ok) correct++;
      byAttribute[it.attr].total++;
      if (ok) byAttribute[it.attr].correct++;
      answers.push({ prompt: it.prompt, answer: it.answer, got });
    });
  }
  return { correct, total: items.length, accuracy: items.length ? correct / items.length : 0, byAttribute, answers };
}
