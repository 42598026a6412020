/**
 * `gsm8k` as lm-evaluation-harness defines it (lm_eval/tasks/gsm8k/gsm8k.yaml, version 3.0):
 *
 * - prompt: k shots (default 5) from the TRAIN split, each "Question: {q}\nAnswer: {full answer}"
 *   (the answer with its <<calculator>> annotations and "#### N" line; target_delimiter " "),
 *   joined by fewshot_delimiter "\n\n", then "Question: {q}\nAnswer:". The shots are drawn by
 *   lm-eval's default sampler: Random(fewshot_seed = 1234).sample(train, k), one draw per evaluated
 *   question in document order (pyrandom.ts reproduces Python's generator), so question i gets the
 *   same shots as under `lm_eval --tasks gsm8k` (with the same --limit).
 * - generation: greedy, until "Question:", "</s>", "<|im_end|>".
 * - filters: "strict-match" = first match of `#### (\-?[0-9\.\,]+)`; "flexible-extract" = last
 *   match of `(-?[$0-9.,]{2,})|(-?[0-9]+)` (first non-empty group); no match = "[invalid]".
 * - metric: exact_match against the full answer after regexes_to_ignore ",", "\$", "(?s).*#### ",
 *   "\.$" (applied to both sides, in that order) and ignore_case.
 * The chain-of-thought variant the paper reports is `gsm8k_cot` (gsm8k.ts).
 */
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { InputError } from '../../errors.js';
import { generateAll, type GenerateRequest } from '../lm.js';
import { chatPrompt, chatFormatName, isChat } from '../prompt.js';
import { PyRandom } from '../pyrandom.js';
import type { SampleRecord, TaskResult } from '../results.js';
import { mean, meanStderr } from '../stats.js';
import { applyLimit, type TaskContext } from '../task.js';
import { loadGsm8k, type Gsm8kDoc } from './gsm8k.js';

export const GSM8K_VERSION = 3;
export const GSM8K_UNTIL = ['Question:', '</s>', '<|im_end|>'];
/** lm-eval's default --fewshot_seed. */
export const FEWSHOT_SEED = 1234;

const STRICT = /#### (-?[0-9.,]+)/g;
const FLEXIBLE = /(-?[$0-9.,]{2,})|(-?[0-9]+)/g;

/** lm-eval's RegexFilter: match `group` of findall (first non-empty group), stripped; "[invalid]" if none. */
function regexFilter(text: string, re: RegExp, group: 0 | -1): string {
  const all = [...text.matchAll(re)];
  if (all.length === 0) return '[invalid]';
  const m = all[group === 0 ? 0 : all.length - 1];
  const g = m.length > 1 ? m.slice(1).find((x) => x) : m[0];
  return g === undefined ? '[invalid]' : g.trim();
}

export const strictMatch = (text: string) => regexFilter(text, STRICT, 0);
export const flexibleExtract = (text: string) => regexFilter(text, FLEXIBLE, -1);

/** exact_match's normalisation with gsm8k.yaml's regexes_to_ignore and ignore_case (Python `$`: before a final newline too). */
export function emNormalize(s: string): string {
  return s
    .replace(/,/g, '')
    .replace(/\$/g, '')
    .replace(/^[\s\S]*#### /, '')
    .replace(/\.(?=\n?$)/, '')
    .toLowerCase();
}

export function gsm8kExactMatch(filtered: string, target: string): number {
  return emNormalize(filtered) === emNormalize(target) ? 1 : 0;
}

const docText = (q: string) => `Question: ${q}\nAnswer:`;

/** The lm-eval prompt of `doc` with the given shots. */
export function gsm8kLmEvalPrompt(doc: { question: string }, shots: readonly { question: string; answer: string }[]): string {
  return shots.map((s) => `${docText(s.question)} ${s.answer}\n\n`).join('') + docText(doc.question);
}

export interface Gsm8kLmEvalOptions {
  /** The test split (JSONL); the train split is `train.jsonl` beside it unless `trainPath` says otherwise. */
  path: string;
  trainPath?: string;
  shots: number;
  maxTokens?: number;
  task?: string;
}

export async function runGsm8kLmEval(ctx: TaskContext, opts: Gsm8kLmEvalOptions): Promise<TaskResult> {
  const all = loadGsm8k(opts.path);
  const docs = applyLimit(all, ctx.limit);
  let train: Gsm8kDoc[] = [];
  const trainPath = opts.trainPath ?? join(dirname(opts.path), 'train.jsonl');
  if (opts.shots > 0) {
    if (!existsSync(trainPath))
      throw new InputError(trainPath, `gsm8k takes its ${opts.shots} shots from the train split; file not found`);
    train = loadGsm8k(trainPath);
    if (train.length < opts.shots)
      throw new InputError(trainPath, `${opts.shots} shots requested but the train split has ${train.length} rows`);
  }
  const rnd = new PyRandom(FEWSHOT_SEED);
  const maxTokens = opts.maxTokens ?? 256;
  const reqs: GenerateRequest[] = docs.map((d, i) => {
    const text = gsm8kLmEvalPrompt(d, opts.shots > 0 ? rnd.sample(train, opts.shots) : []);
    // lm-eval --apply_chat_template without multiturn: the whole text is one user turn
    const prompt = isChat(ctx.chatFormat) ? chatPrompt(ctx.chatFormat, text, '') : text;
    return { prompt, stop: GSM8K_UNTIL, maxTokens, temperature: 0, seed: ctx.seed + i };
  });
  const outs = await generateAll(ctx.lm, reqs, ctx.batchSize, (d, t) => ctx.progress('generate', d, t));
  const genKwargs = { until: GSM8K_UNTIL, do_sample: false, temperature: 0, max_gen_toks: maxTokens };
  const scores: Record<string, number[]> = { 'strict-match': [], 'flexible-extract': [] };
  const samples: SampleRecord[] = [];
  for (const [filter, extract] of [
    ['strict-match', strictMatch],
    ['flexible-extract', flexibleExtract],
  ] as const) {
    docs.forEach((d, i) => {
      const filtered = extract(outs[i]);
      const em = gsm8kExactMatch(filtered, d.answer);
      scores[filter].push(em);
      samples.push({
        doc_id: i,
        doc: { question: d.question, answer: d.answer },
        target: d.answer,
        arguments: [[reqs[i].prompt, genKwargs]],
        resps: [[outs[i]]],
        filtered_resps: [filtered],
        filter,
        metrics: ['exact_match'],
        exact_match: em,
      });
    });
  }
  return {
    task: opts.task ?? 'gsm8k',
    version: GSM8K_VERSION,
    nShot: opts.shots,
    nSamples: { original: all.length, effective: docs.length },
    metrics: (['strict-match', 'flexible-extract'] as const).map((f) => ({
      name: 'exact_match',
      filter: f,
      value: mean(scores[f]),
      stderr: meanStderr(scores[f]),
      higherIsBetter: true,
    })),
    config: {
      task: opts.task ?? 'gsm8k',
      tag: ['math_word_problems'],
      dataset_path: 'openai/gsm8k',
      dataset_name: 'main',
      data: opts.path,
      training_split: 'train',
      fewshot_split: 'train',
      fewshot_data: opts.shots > 0 ? trainPath : null,
      test_split: 'test',
      doc_to_text: 'Question: {{question}}\nAnswer:',
      doc_to_target: '{{answer}}',
      target_delimiter: ' ',
      fewshot_delimiter: '\n\n',
      fewshot_config: { sampler: 'default', seed: FEWSHOT_SEED },
      num_fewshot: opts.shots,
      metric_list: [
        {
          metric: 'exact_match',
          aggregation: 'mean',
          higher_is_better: true,
          ignore_case: true,
          ignore_punctuation: false,
          regexes_to_ignore: [',', '\\$', '(?s).*#### ', '\\.$'],
        },
      ],
      output_type: 'generate_until',
      generation_kwargs: genKwargs,
      repeats: 1,
      filter_list: [
        { name: 'strict-match', filter: [{ function: 'regex', regex_pattern: '#### (\\-?[0-9\\.\\,]+)' }, { function: 'take_first' }] },
        {
          name: 'flexible-extract',
          filter: [
            { function: 'regex', group_select: -1, regex_pattern: '(-?[$0-9.,]{2,})|(-?[0-9]+)' },
            { function: 'take_first' },
          ],
        },
      ],
      chat_format: chatFormatName(ctx.chatFormat),
      metadata: { version: GSM8K_VERSION },
    },
    samples,
  };
}
