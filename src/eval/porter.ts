/**
 * The Porter stemmer as NLTK's PorterStemmer() applies it by default (mode NLTK_EXTENSIONS), which is
 * what rouge_score's use_stemmer=True (and so the Super-NI evaluation script) calls: Porter's 1980
 * algorithm with the refinements Martin Porter later endorsed (step 1c y->i only after a consonant,
 * "bli"->"ble", "logi"->"log") and NLTK's own (a table of irregular forms, "ies"/"ied" on four-letter
 * words, "alli", "fulli", a two-letter *o condition). Written from the algorithm's description and
 * checked word for word against NLTK 3.8's output (fixtures/eval/porter_nltk.tsv).
 */

const IRREGULAR: Record<string, string> = {
  sky: 'sky',
  skies: 'sky',
  dying: 'die',
  lying: 'lie',
  tying: 'tie',
  news: 'news',
  innings: 'inning',
  inning: 'inning',
  outings: 'outing',
  outing: 'outing',
  cannings: 'canning',
  canning: 'canning',
  howe: 'howe',
  proceed: 'proceed',
  exceed: 'exceed',
  succeed: 'succeed',
};

function isConsonant(w: string, i: number): boolean {
  const c = w[i];
  if (c === 'a' || c === 'e' || c === 'i' || c === 'o' || c === 'u') return false;
  if (c === 'y') return i === 0 ? true : !isConsonant(w, i - 1);
  return true;
}

/** Porter's m: the number of vowel-run -> consonant-run transitions in [C](VC)^m[V]. */
function measure(stem: string): number {
  let m = 0;
  for (let i = 1; i < stem.length; i++) if (!isConsonant(stem, i - 1) && isConsonant(stem, i)) m++;
  return m;
}

function containsVowel(stem: string): boolean {
  for (let i = 0; i < stem.length; i++) if (!isConsonant(stem, i)) return true;
  return false;
}

/** *d: ends with a double consonant. */
function endsDouble(w: string): boolean {
  const n = w.length;
  return n >= 2 && w[n - 1] === w[n - 2] && isConsonant(w, n - 1);
}

/** *o: ends consonant-vowel-consonant with the last not w, x or y (NLTK: or is a two-letter vowel-consonant word). */
function endsCvc(w: string): boolean {
  const n = w.length;
  if (
    n >= 3 &&
    isConsonant(w, n - 3) &&
    !isConsonant(w, n - 2) &&
    isConsonant(w, n - 1) &&
    !'wxy'.includes(w[n - 1])
  )
    return true;
  return n === 2 && !isConsonant(w, 0) && isConsonant(w, 1);
}

type Rule = [suffix: string, replacement: string, cond: ((stem: string) => boolean) | null];

/**
 * The first rule whose suffix the word ends with decides: its replacement when the condition holds
 * for the stem, otherwise the word unchanged (later rules are not tried). The suffix "*d" stands for
 * "ends with a double consonant" and removes both letters before the replacement.
 */
function applyRules(word: string, rules: readonly Rule[]): string {
  for (const [suffix, repl, cond] of rules) {
    if (suffix === '*d' && endsDouble(word)) {
      const stem = word.slice(0, -2);
      return cond === null || cond(stem) ? stem + repl : word;
    }
    if (word.endsWith(suffix)) {
      const stem = word.slice(0, word.length - suffix.length);
      return cond === null || cond(stem) ? stem + repl : word;
    }
  }
  return word;
}

const mPos = (s: string) => measure(s) > 0;
const mGt1 = (s: string) => measure(s) > 1;

function step1a(w: string): string {
  if (w.endsWith('ies') && w.length === 4) return w.slice(0, -3) + 'ie';
  return applyRules(w, [
    ['sses', 'ss', null],
    ['ies', 'i', null],
    ['ss', 'ss', null],
    ['s', '', null],
  ]);
}

function step1b(w: string): string {
  if (w.endsWith('ied')) return w.slice(0, -3) + (w.length === 4 ? 'ie' : 'i');
  if (w.endsWith('eed')) {
    const stem = w.slice(0, -3);
    return measure(stem) > 0 ? stem + 'ee' : w;
  }
  let stem: string | null = null;
  for (const suffix of ['ed', 'ing']) {
    if (w.endsWith(suffix) && containsVowel(w.slice(0, -suffix.length))) {
      stem = w.slice(0, -suffix.length);
      break;
    }
  }
  if (stem === null) return w;
  const last = stem[stem.length - 1];
  return applyRules(stem, [
    ['at', 'ate', null],
    ['bl', 'ble', null],
    ['iz', 'ize', null],
    ['*d', last, () => !'lsz'.includes(last)],
    ['', 'e', (s) => measure(s) === 1 && endsCvc(s)],
  ]);
}

function step1c(w: string): string {
  return applyRules(w, [['y', 'i', (s) => s.length > 1 && isConsonant(s, s.length - 1)]]);
}

function step2(w: string): string {
  if (w.endsWith('alli') && measure(w.slice(0, -4)) > 0) return step2(w.slice(0, -4) + 'al');
  return applyRules(w, [
    ['ational', 'ate', mPos],
    ['tional', 'tion', mPos],
    ['enci', 'ence', mPos],
    ['anci', 'ance', mPos],
    ['izer', 'ize', mPos],
    ['bli', 'ble', mPos],
    ['alli', 'al', mPos],
    ['entli', 'ent', mPos],
    ['eli', 'e', mPos],
    ['ousli', 'ous', mPos],
    ['ization', 'ize', mPos],
    ['ation', 'ate', mPos],
    ['ator', 'ate', mPos],
    ['alism', 'al', mPos],
    ['iveness', 'ive', mPos],
    ['fulness', 'ful', mPos],
    ['ousness', 'ous', mPos],
    ['aliti', 'al', mPos],
    ['iviti', 'ive', mPos],
    ['biliti', 'ble', mPos],
    ['fulli', 'ful', mPos],
    // NLTK tests the measure of the word minus "ogi" (the stem keeps its "l")
    ['logi', 'log', () => measure(w.slice(0, -3)) > 0],
  ]);
}

function step3(w: string): string {
  return applyRules(w, [
    ['icate', 'ic', mPos],
    ['ative', '', mPos],
    ['alize', 'al', mPos],
    ['iciti', 'ic', mPos],
    ['ical', 'ic', mPos],
    ['ful', '', mPos],
    ['ness', '', mPos],
  ]);
}

function step4(w: string): string {
  return applyRules(w, [
    ['al', '', mGt1],
    ['ance', '', mGt1],
    ['ence', '', mGt1],
    ['er', '', mGt1],
    ['ic', '', mGt1],
    ['able', '', mGt1],
    ['ible', '', mGt1],
    ['ant', '', mGt1],
    ['ement', '', mGt1],
    ['ment', '', mGt1],
    ['ent', '', mGt1],
    ['ion', '', (s) => measure(s) > 1 && (s.endsWith('s') || s.endsWith('t'))],
    ['ou', '', mGt1],
    ['ism', '', mGt1],
    ['ate', '', mGt1],
    ['iti', '', mGt1],
    ['ous', '', mGt1],
    ['ive', '', mGt1],
    ['ize', '', mGt1],
  ]);
}

function step5a(w: string): string {
  if (!w.endsWith('e')) return w;
  const stem = w.slice(0, -1);
  const m = measure(stem);
  if (m > 1 || (m === 1 && !endsCvc(stem))) return stem;
  return w;
}

function step5b(w: string): string {
  return applyRules(w, [['ll', 'l', () => measure(w.slice(0, -1)) > 1]]);
}

/** NLTK PorterStemmer().stem(word) (lowercases first). */
export function porterStem(word: string): string {
  const w = word.toLowerCase();
  if (Object.hasOwn(IRREGULAR, word)) return IRREGULAR[w];
  if (word.length <= 2) return w;
  return step5b(step5a(step4(step3(step2(step1c(step1b(step1a(w))))))));
}
