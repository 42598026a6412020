/**
 * `gsm8k_cot`: GSM8K chain-of-thought evaluation (grade-school math word problems; gold after
 * "#### "), the paper's GSM task. lm-eval's plain `gsm8k` (5 train-split shots, "Question:/Answer:")
 * is gsm8k-lmeval.ts.
 *
 * Prompts
 * - plain, k > 0 shots: lm-evaluation-harness `gsm8k_cot` (v3): the first k of the 8 exemplars of
 *   Wei et al. (2022) as "Q: {question}\nA: {chain of thought} The answer is N.", joined by "\n\n",
 *   then "Q: {question}\nA:". Stop at "Q:", "</s>", "<|im_end|>".
 * - plain, 0 shots: lm-eval `gsm8k_cot_zeroshot`: "Q: {question}\nA: Let's think step by step."
 * - chat (tulu or a template): open-instruct's format, which is also the paper's fine-tuning format
 *   for its GSM task: user turn "Answer the following question(s).\n\n" + exemplars as
 *   "Question: ...\nAnswer: ..." + "Question: {question}", and the assistant turn starts "Answer:".
 *
 * Scoring, both reported as lm-eval does (filters "strict-match" and "flexible-extract"):
 * - strict: the first number after "The answer is" (any case, so the paper's "So the answer is N."
 *   counts) or after "#### ". This widens lm-eval's case-sensitive `The answer is (\-?[0-9\.\,]+).`,
 *   which misses the paper's lowercase "So the answer is N." form and "$"-prefixed answers.
 * - flexible: the last match of lm-eval's `(-?[$0-9.,]{2,})|(-?[0-9]+)`.
 * Both sides are normalised as lm-eval's exact_match with regexes_to_ignore does (drop ",", "$",
 * everything up to "#### ", a trailing "." and a trailing ".0..."; case-insensitive), and two plain
 * decimal numbers that are numerically equal also match ("18.50" = "18.5").
 */
import { InputError } from '../../errors.js';
import { readJsonl } from '../../data/jsonl.js';
import { stringField } from '../files.js';
import { generateAll, type GenerateRequest } from '../lm.js';
import { chatPrompt, chatFormatName, isChat, type ChatFormat } from '../prompt.js';
import type { TaskResult, SampleRecord } from '../results.js';
import { mean, meanStderr } from '../stats.js';
import { applyLimit, type TaskContext } from '../task.js';

export interface Gsm8kDoc {
  question: string;
  answer: string;
  /** The normalised gold number (text after "#### "). */
  gold: string;
}

/** The 8 chain-of-thought exemplars of Wei et al. (2022), as lm-eval's gsm8k_cot writes them. */
export const GSM8K_COT_EXEMPLARS: readonly { question: string; target: string }[] = [
  {
    question:
      'There are 15 trees in the grove. Grove workers will plant trees in the grove today. After they are done, there will be 21 trees. How many trees did the grove workers plant today?',
    target:
      'There are 15 trees originally. Then there were 21 trees after some more were planted. So there must have been 21 - 15 = 6. The answer is 6.',
  },
  {
    question: 'If there are 3 cars in the parking lot and 2 more cars arrive, how many cars are in the parking lot?',
    target: 'There are originally 3 cars. 2 more cars arrive. 3 + 2 = 5. The answer is 5.',
  },
  {
    question: 'Leah had 32 chocolates and her sister had 42. If they ate 35, how many pieces do they have left in total?',
    target:
      'Originally, Leah had 32 chocolates. Her sister had 42. So in total they had 32 + 42 = 74. After eating 35, they had 74 - 35 = 39. The answer is 39.',
  },
  {
    question:
      'Jason had 20 lollipops. He gave Denny some lollipops. Now Jason has 12 lollipops. How many lollipops did Jason give to Denny?',
    target:
      'Jason started with 20 lollipops. Then he had 12 after giving some to Denny. So he gave Denny 20 - 12 = 8. The answer is 8.',
  },
  {
    question: 'Shawn has five toys. For Christmas, he got two toys each from his mom and dad. How many toys does he have now?',
    target:
      'Shawn started with 5 toys. If he got 2 toys each from his mom and dad, then that is 4 more toys. 5 + 4 = 9. The answer is 9.',
  },
  {
    question:
      'There were nine computers in the server room. Five more computers were installed each day, from monday to thursday. How many computers are now in the server room?',
    target:
      'There were originally 9 computers. For each of 4 days, 5 more computers were added. So 5 * 4 = 20 computers were added. 9 + 20 is 29. The answer is 29.',
  },
  {
    question:
      'Michael had 58 golf balls. On tuesday, he lost 23 golf balls. On wednesday, he lost 2 more. How many golf balls did he have at the end of wednesday?',
    target:
      'Michael started with 58 golf balls. After losing 23 on tuesday, he had 58 - 23 = 35. After losing 2 more, he had 35 - 2 = 33 golf balls. The answer is 33.',
  },
  {
    question: 'Olivia has $23. She bought five bagels for $3 each. How much money does she have left?',
    target:
      'Olivia had 23 dollars. 5 bagels for 3 dollars each will be 5 x 3 = 15 dollars. So she has 23 - 15 dollars left. 23 - 15 is 8. The answer is 8.',
  },
];

export const GSM8K_MAX_SHOTS = GSM8K_COT_EXEMPLARS.length;

/** lm-eval's gsm8k-cot.yaml metadata version. */
export const GSM8K_COT_VERSION = 3;

/** lm-eval exact_match normalisation for GSM8K (regexes_to_ignore + ignore_case). */
export function normalizeNumber(s: string): string {
  let t = s.trim();
  t = t.replace(/^[\s\S]*#### /, '');
  t = t.replace(/,/g, '').replace(/\$/g, '');
  t = t.trim();
  t = t.replace(/\.$/, '');
  t = t.replace(/\.0+$/, '');
  return t.toLowerCase();
}

const PLAIN_NUMBER = /^-?\d+(\.\d+)?$/;

/** Does the extracted prediction equal the gold answer (after normalisation)? */
export function answersMatch(pred: string | null, gold: string): boolean {
  if (pred === null) return false;
  const p = normalizeNumber(pred);
  const g = normalizeNumber(gold);
  if (p === g) return true;
  return PLAIN_NUMBER.test(p) && PLAIN_NUMBER.test(g) && Number(p) === Number(g);
}

/** Gold answer of a GSM8K solution: the text after the last "#### ". */
export function goldFromAnswer(answer: string): string | null {
  const i = answer.lastIndexOf('#### ');
  if (i < 0) return null;
  const g = normalizeNumber(answer.slice(i + 5));
  return g === '' ? null : g;
}

const STRICT = /(?:the answer is|####)[\s:]*\$?\s*(-?[0-9][0-9,]*(?:\.[0-9]+)?)/i;

/** Strict extraction: the number after "The answer is" / "So the answer is" / "#### " (first occurrence). */
export function extractStrict(text: string): string | null {
  const m = STRICT.exec(text);
  return m ? m[1] : null;
}

const FLEXIBLE = /(-?[$0-9.,]{2,})|(-?[0-9]+)/g;

/** Flexible extraction: the last number-like span (lm-eval's flexible-extract regex, last match). */
export function extractFlexible(text: string): string | null {
  let last: string | null = null;
  for (const m of text.matchAll(FLEXIBLE)) last = m[1] ?? m[2] ?? null;
  return last;
}

/** Loads GSM8K JSONL ({"question","answer"} rows, gold after "#### "). */
export function loadGsm8k(path: string): Gsm8kDoc[] {
  return readJsonl(path, { what: 'GSM8K file', nonEmpty: true }).map((row) => {
    const question = stringField(path, row, 'question');
    const answer = stringField(path, row, 'answer');
    const gold = goldFromAnswer(answer);
    if (gold === null) throw new InputError(`${path} line ${row.line}`, 'field "answer" has no "#### <number>" gold answer');
    return { question, answer, gold };
  });
}

export interface Gsm8kPrompt {
  prompt: string;
  stop: string[];
}

const PLAIN_STOP = ['Q:', '</s>', '<|im_end|>'];
const CHAT_STOP = ['</s>', '<|im_end|>', '<|user|>', '\n\nQuestion:'];

export function gsm8kPrompt(question: string, shots: number, chatFormat: ChatFormat = 'plain'): Gsm8kPrompt {
  if (!Number.isInteger(shots) || shots < 0 || shots > GSM8K_MAX_SHOTS) {
    throw new Error(`GSM8K supports 0 to ${GSM8K_MAX_SHOTS} shots, got ${shots}`);
  }
  const ex = GSM8K_COT_EXEMPLARS.slice(0, shots);
  if (!isChat(chatFormat)) {
    if (shots === 0) return { prompt: `Q: ${question}\nA: Let's think step by step.`, stop: PLAIN_STOP };
    const demos = ex.map((e) => `Q: ${e.question}\nA: ${e.target}`).join('\n\n');
    return { prompt: `${demos}\n\nQ: ${question}\nA:`, stop: PLAIN_STOP };
  }
  const head =
    shots === 0
      ? 'Answer the following question.\n\n'
      : 'Answer the following questions.\n\n' + ex.map((e) => `Question: ${e.question}\nAnswer: ${e.target}`).join('\n\n') + '\n\n';
  return { prompt: chatPrompt(chatFormat, `${head}Question: ${question.trim()}`, 'Answer:'), stop: CHAT_STOP };
}

export interface Gsm8kOptions {
  path: string;
  shots: number;
  maxTokens?: number;
  task?: string;
}

export async function runGsm8k(ctx: TaskContext, opts: Gsm8kOptions): Promise<TaskResult> {
  const all = loadGsm8k(opts.path);
  const docs = applyLimit(all, ctx.limit);
  const maxTokens = opts.maxTokens ?? 256;
  const reqs: GenerateRequest[] = docs.map((d, i) => {
    const p = gsm8kPrompt(d.question, opts.shots, ctx.chatFormat);
    return { prompt: p.prompt, stop: p.stop, maxTokens, temperature: 0, seed: ctx.seed + i };
  });
  const outs = await generateAll(ctx.lm, reqs, ctx.batchSize, (d, t) => ctx.progress('generate', d, t));
  const strict: number[] = [];
  const flexible: number[] = [];
  const genKwargs = { until: reqs[0]?.stop ?? [], do_sample: false, temperature: 0, max_gen_toks: maxTokens };
  const byFilter: Record<string, SampleRecord[]> = { 'strict-match': [], 'flexible-extract': [] };
  docs.forEach((d, i) => {
    const s = extractStrict(outs[i]);
    const f = extractFlexible(outs[i]);
    const sOk = answersMatch(s, d.gold) ? 1 : 0;
    const fOk = answersMatch(f, d.gold) ? 1 : 0;
    strict.push(sOk);
    flexible.push(fOk);
    // lm-eval's record: one per document and filter
    const common = {
      doc_id: i,
      doc: { question: d.question, answer: d.answer },
      target: d.gold,
      arguments: [[reqs[i].prompt, genKwargs]],
      resps: [[outs[i]]],
      metrics: ['exact_match'],
    };
    byFilter['strict-match'].push({ ...common, filtered_resps: [s ?? '[invalid]'], filter: 'strict-match', exact_match: sOk });
    byFilter['flexible-extract'].push({
      ...common,
      filtered_resps: [f ?? '[invalid]'],
      filter: 'flexible-extract',
      exact_match: fOk,
    });
  });
  const samples = [...byFilter['strict-match'], ...byFilter['flexible-extract']];
  return {
    task: opts.task ?? 'gsm8k_cot',
    version: GSM8K_COT_VERSION,
    nShot: opts.shots,
    nSamples: { original: all.length, effective: docs.length },
    metrics: [
      { name: 'exact_match', filter: 'strict-match', value: mean(strict), stderr: meanStderr(strict), higherIsBetter: true },
      { name: 'exact_match', filter: 'flexible-extract', value: mean(flexible), stderr: meanStderr(flexible), higherIsBetter: true },
    ],
    config: {
      data: opts.path,
      prompt: isChat(ctx.chatFormat)
        ? 'open-instruct chat: "Answer the following question(s).\\n\\n" [+ Question/Answer exemplars] + "Question: {q}", assistant prefix "Answer:"'
        : opts.shots === 0
          ? 'lm-eval gsm8k_cot_zeroshot: "Q: {q}\\nA: Let\'s think step by step."'
          : 'lm-eval gsm8k_cot: Wei et al. exemplars "Q: ...\\nA: ... The answer is N." joined by "\\n\\n", then "Q: {q}\\nA:"',
      chat_format: chatFormatName(ctx.chatFormat),
      generation: { until: reqs[0]?.stop ?? [], max_gen_toks: maxTokens, temperature: 0 },
      filters: {
        'strict-match': 'first number after "the answer is" (case-insensitive) or "#### "',
        'flexible-extract': 'last match of (-?[$0-9.,]{2,})|(-?[0-9]+)',
      },
    },
    samples,
  };
}
