/**
 * ROUGE-L and exact match as the Super-NaturalInstructions evaluation computes them.
 *
 * Tokenizer: Google's rouge_score default (tokenize.tokenize): lowercase, every run of characters
 * outside [a-z0-9] becomes a space, split on whitespace, keep tokens matching ^[a-z0-9]+$. So
 * non-ASCII letters are dropped entirely (rouge_score behaves the same; Super-NI switches to a
 * separate cross-lingual tokenizer for non-English tasks, which is not implemented here).
 * Stemming is off by default (rouge_score's default); `stem: true` applies NLTK's Porter stemmer to
 * tokens longer than 3 characters, as rouge_score's use_stemmer=True does. The Super-NI script uses
 * the stemmer, so pass it when comparing with Super-NI numbers.
 *
 * ROUGE-L = LCS-based F-measure: P = LCS/|prediction|, R = LCS/|reference|, F = 2PR/(P+R), 0 when
 * either side has no tokens. With several references the best score counts
 * (Super-NI's metric_max_over_ground_truths).
 */
import { porterStem } from './porter.js';

export function rougeTokenize(text: string, stem = false): string[] {
  let tokens = text
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, ' ')
    .split(/\s+/);
  if (stem) tokens = tokens.map((t) => (t.length > 3 ? porterStem(t) : t));
  return tokens.filter((t) => /^[a-z0-9]+$/.test(t));
}

/** Length of the longest common subsequence of two token lists (O(n m) time, O(m) memory). */
export function lcsLength(a: readonly string[], b: readonly string[]): number {
  if (a.length === 0 || b.length === 0) return 0;
  let prev = new Uint32Array(b.length + 1);
  let cur = new Uint32Array(b.length + 1);
  for (let i = 1; i <= a.length; i++) {
    const ai = a[i - 1];
    for (let j = 1; j <= b.length; j++) {
      cur[j] = ai === b[j - 1] ? prev[j - 1] + 1 : Math.max(prev[j], cur[j - 1]);
    }
    [prev, cur] = [cur, prev];
  }
  return prev[b.length];
}

export interface RougeScore {
  precision: number;
  recall: number;
  fmeasure: number;
}

/** rouge_score's RougeScorer(['rougeL'], use_stemmer=stem).score(target=reference, prediction=prediction)["rougeL"]. */
export function rougeL(prediction: string, reference: string, opts: { stem?: boolean } = {}): RougeScore {
  const p = rougeTokenize(prediction, opts.stem);
  const r = rougeTokenize(reference, opts.stem);
  if (p.length === 0 || r.length === 0) return { precision: 0, recall: 0, fmeasure: 0 };
  const lcs = lcsLength(r, p);
  const precision = lcs / p.length;
  const recall = lcs / r.length;
  const fmeasure = precision + recall > 0 ? (2 * precision * recall) / (precision + recall) : 0;
  return { precision, recall, fmeasure };
}

const PUNCTUATION = new Set('!"#$%&\'()*+,-./:;<=>?@[\\]^_`{|}~'); // Python string.punctuation
// Python's \b in a str pattern is Unicode-aware; JS \b is ASCII-only, so spell the boundary out.
const ARTICLES = /(?<![\p{L}\p{N}_])(?:a|an|the)(?![\p{L}\p{N}_])/gu;

/**
 * Super-NI normalize_answer (the SQuAD normalisation): lowercase, remove ASCII punctuation, replace the
 * articles a/an/the by a space, collapse whitespace.
 */
export function normalizeAnswer(s: string): string {
  let t = s.toLowerCase();
  t = [...t].filter((ch) => !PUNCTUATION.has(ch)).join('');
  t = t.replace(ARTICLES, ' ');
  return t
    .split(/\s+/)
    .filter((w) => w !== '')
    .join(' ');
}

export function exactMatch(prediction: string, reference: string): number {
  return normalizeAnswer(prediction) === normalizeAnswer(reference) ? 1 : 0;
}

/** Best score of `prediction` over several references. */
export function maxOverReferences(
  metric: (pred: string, ref: string) => number,
  prediction: string,
  references: readonly string[],
): number {
  let best = 0;
  for (const r of references) best = Math.max(best, metric(prediction, r));
  return best;
}
