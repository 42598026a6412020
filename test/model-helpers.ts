/** Shared helpers of the test/model-*.test.ts files (not a test file itself). */
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
export const STORIES260K = join(ROOT, 'data', 'stories260k');
export const TINYSTORIES_VAL = join(ROOT, 'data', 'tinystories', 'tinystories_val.txt');

/** The greedy 200-token continuation from BOS (docs/formats.md, llama2.c doc/stories260K.md). */
export const GOLDEN_TEXT =
  'Once upon a time, there was a little girl named Lily. She loved to play outside in the park. One day, she saw a big, red ball. She wanted to play with it, but it was too high.\n' +
  'Lily\'s mom said, "Lily, let\'s go to the park." Lily was sad and didn\'t know what to do. She said, "I want to play with your ball, but I can\'t find it."\n' +
  "Lily was sad and didn't know what to do. She said, \"I'm sorry, Lily. I didn't know what to do.\"\n" +
  "Lily didn't want to help her mom, so she";

/**
 * Held-out TinyStories (data/tinystories/SOURCE.md): "\n\n" also separates paragraphs inside a
 * story, so paragraphs are grouped into stories, a new story starting at each paragraph that opens
 * with "Once upon a time". The file's first fragment ("Spot. Spot saw ...") is the tail of a story
 * whose beginning is missing, so it is skipped. Returns the first `n` stories.
 */
export function heldOutStories(n: number): string[] {
  const text = readFileSync(TINYSTORIES_VAL, 'utf8');
  const paras = text
    .split('\n\n')
    .map((s) => s.trim())
    .filter((s) => s.length > 0);
  const stories: string[] = [];
  let first = true;
  for (const p of paras) {
    if (p.startsWith('Once upon a time')) {
      stories.push(p);
      first = false;
    } else if (!first) {
      stories[stories.length - 1] += '\n\n' + p;
    }
  }
  return stories.slice(0, n);
}

/** Max |a-b| / (atol + rtol*|b|) style comparison; returns the worst index and values for messages. */
export function worstRelErr(
  a: ArrayLike<number>,
  b: ArrayLike<number>,
  floor: number,
): { err: number; i: number } {
  let err = 0,
    at = -1;
  for (let i = 0; i < b.length; i++) {
    const e = Math.abs(a[i] - b[i]) / Math.max(floor, Math.abs(b[i]));
    if (e > err || Number.isNaN(e)) {
      err = Number.isNaN(e) ? Infinity : e;
      at = i;
    }
  }
  return { err, i: at };
}
