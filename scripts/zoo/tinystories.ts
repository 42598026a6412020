/**
 * TinyStories for the zoo and the `stories` task: the bundled validation text split into stories,
 * a fixed split of those stories between pretraining and the task, and (prompt, continuation)
 * windows in the paper's `messages` row format.
 *
 * Story boundaries: data/tinystories/tinystories_val.txt separates stories by a blank line, but
 * stories contain blank lines too (data/tinystories/SOURCE.md). A story therefore starts at every
 * paragraph that opens with "Once upon a time" or "Once (,) there was/were" (788 stories); the other
 * paragraphs belong to the story before them. The file's first fragment ("Spot. Spot saw ...") is the
 * tail of a story whose start is missing and is dropped.
 */
import { readFileSync } from 'node:fs';
import { InputError } from '../../src/errors.js';
import type { Tokenizer } from '../../src/model/tokenizer.js';

/** A paragraph that starts a new story. */
const STORY_START = /^Once(,)? (upon a time|there (was|were))/;

/** The stories of the file, in order (paragraphs joined with "\n\n"). */
export function readStories(path: string): string[] {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new InputError(path, `cannot read file (${(e as NodeJS.ErrnoException).code ?? String(e)})`);
  }
  const paras = text.replace(/\r\n/g, '\n').split(/\n[ \t]*\n/).map((p) => p.trim()).filter((p) => p !== '');
  const stories: string[] = [];
  for (const p of paras) {
    if (STORY_START.test(p)) stories.push(p);
    else if (stories.length > 0) stories[stories.length - 1] += '\n\n' + p;
  }
  if (stories.length === 0) throw new InputError(path, 'no story found (no paragraph starts with "Once upon a time")');
  return stories;
}

/**
 * The split of the 788 stories (indices into readStories()): the zoo's pretraining text, then the
 * task's training pool (seeds + train.jsonl), then its test pool. The task's stories are never seen
 * in pretraining.
 */
export const STORY_SPLIT = {
  pretrain: [0, 500] as const,
  taskTrain: [500, 733] as const,
  taskTest: [733, 788] as const,
};

/** Sentences with the whitespace that follows each, so that their concatenation is the text. */
export function sentences(text: string): string[] {
  const out: string[] = [];
  // a sentence ends at . ! ? (optionally followed by closing quotes) followed by whitespace
  const re = /[.!?]+["'\u201d\u2019]*(\s+)/g;
  let start = 0;
  let m: RegExpExecArray | null;
  while ((m = re.exec(text)) !== null) {
    const end = m.index + m[0].length;
    out.push(text.slice(start, end));
    start = end;
  }
  if (start < text.length) out.push(text.slice(start));
  return out;
}

export interface StoryWindow {
  /** The text before the continuation: the story's opening for the first window, else the last sentences before it. */
  prompt: string;
  continuation: string;
}

export interface WindowOptions {
  /** Most tokens (tokenizer count of the trimmed text, no BOS) of a prompt and of a continuation. */
  maxPromptTokens: number;
  maxAnswerTokens: number;
  /** Windows per story at most (consecutive, from the start). */
  maxWindows: number;
}

/**
 * Consecutive windows over one story: window k's continuation is the sentences after window k-1's,
 * filled up to maxAnswerTokens; its prompt is the story's start (k = 0) or the sentences just before the
 * continuation, up to maxPromptTokens. A sentence longer than a budget is stepped over (it never starts a continuation).
 */
export function storyWindows(story: string, tok: Tokenizer, o: WindowOptions): StoryWindow[] {
  const units = sentences(story);
  const len = units.map((u) => tok.encode(u.trim(), { addBos: false }).length);
  const out: StoryWindow[] = [];
  // the first prompt: the opening sentences
  let i = 0;
  let n = 0;
  while (i < units.length && n + len[i] <= o.maxPromptTokens) n += len[i++];
  if (i === 0) return out;
  while (out.length < o.maxWindows && i < units.length) {
    // continuation: units[i..j)
    let j = i;
    let a = 0;
    while (j < units.length && a + len[j] <= o.maxAnswerTokens) a += len[j++];
    // prompt: the sentences right before units[i], within the budget
    let s = i;
    let p = 0;
    while (s > 0 && p + len[s - 1] <= o.maxPromptTokens) p += len[--s];
    if (j === i || s === i) {
      // a sentence too long for a continuation (or for the prompt before the next one): move past it
      i++;
      continue;
    }
    const prompt = units.slice(s, i).join('').trim();
    const continuation = units.slice(i, j).join('').trim();
    if (prompt && continuation) out.push({ prompt, continuation });
    i = j;
  }
  return out;
}

export const STORY_INSTRUCTION = 'Continue the story:';

/** One `stories` task row (the paper's row format). */
export function storyRow(id: string, w: StoryWindow): { dataset: string; id: string; messages: Array<{ role: string; content: string }> } {
  return {
    dataset: 'stories',
    id,
    messages: [
      { role: 'user', content: `${STORY_INSTRUCTION}\n\n${w.prompt}` },
      { role: 'assistant', content: w.continuation },
    ],
  };
}
