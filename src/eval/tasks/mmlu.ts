/**
 * MMLU (Hendrycks et al.), original CSV release: `<split>/<subject>_<split>.csv`, headerless rows
 * `question,A,B,C,D,answer` with RFC 4180 quoting.
 *
 * Prompt (lm-evaluation-harness `mmlu`, which follows the original paper's format):
 *   "The following are multiple choice questions (with answers) about {subject words}.\n\n"
 *   + k dev examples "{question}\nA. ..\nB. ..\nC. ..\nD. ..\nAnswer: {letter}" joined by "\n\n"
 *   + "\n\n" (when k > 0) + the test question in the same form ending "Answer:".
 * Few-shot examples are the first k rows of the subject's dev file (k <= 5). Scoring: the choice whose
 * continuation " A" / " B" / " C" / " D" has the highest log-likelihood (ties go to the first).
 * In chat mode (open-instruct's MMLU script, the paper's evaluation) the whole text above is the user
 * turn and the assistant turn starts "The answer is:", followed by the scored " A".." D".
 * Reported as lm-eval groups it (mmlu-groups.ts): accuracy per subject (task `mmlu_<subject>`,
 * version 1), per category (`mmlu_stem`, `mmlu_humanities`, `mmlu_social_sciences`, `mmlu_other`)
 * and for `mmlu` (groups, version 2): the size-weighted mean of their subtasks ("acc,none", the micro
 * average over questions), plus for `mmlu` the macro average over subjects ("acc_macro,none").
 */
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { InputError } from '../../errors.js';
import { readCsv } from '../files.js';
import { loglikelihoodAll, type LoglikelihoodRequest } from '../lm.js';
import { chatPrompt, chatFormatName, isChat, type ChatFormat } from '../prompt.js';
import type { TaskResult, SampleRecord } from '../results.js';
import { macroStderr, mean, meanStderr } from '../stats.js';
import { applyLimit, type TaskContext } from '../task.js';
import {
  MMLU_CATEGORIES,
  MMLU_GROUP_VERSION,
  MMLU_SUBJECT_CATEGORY,
  MMLU_TASK_VERSION,
  pooledStderr,
} from './mmlu-groups.js';

export const MMLU_LETTERS = ['A', 'B', 'C', 'D'] as const;
export type MmluLetter = (typeof MMLU_LETTERS)[number];

export interface MmluDoc {
  subject: string;
  question: string;
  choices: [string, string, string, string];
  answer: MmluLetter;
  /** Line of the record in its CSV file. */
  line: number;
}

export type MmluSplit = 'dev' | 'val' | 'test';

export function mmluFile(dir: string, split: MmluSplit, subject: string): string {
  return join(dir, split, `${subject}_${split}.csv`);
}

/** Subjects present in `<dir>/test` (file names `<subject>_test.csv`), sorted. */
export function mmluSubjects(dir: string): string[] {
  const testDir = join(dir, 'test');
  if (!existsSync(testDir)) throw new InputError(testDir, 'MMLU test folder not found (expected <mmlu>/test/<subject>_test.csv)');
  const subjects = readdirSync(testDir)
    .filter((f) => f.endsWith('_test.csv'))
    .map((f) => f.slice(0, -'_test.csv'.length))
    .sort();
  if (subjects.length === 0) throw new InputError(testDir, 'no <subject>_test.csv files');
  return subjects;
}

/** Reads one subject's split. Each row must have 6 columns and an answer letter A-D. */
export function loadMmlu(dir: string, split: MmluSplit, subject: string): MmluDoc[] {
  const path = mmluFile(dir, split, subject);
  return readCsv(path, 6, 'MMLU CSV file').map((r) => {
    const [question, a, b, c, d, ans] = r.fields;
    const answer = ans.trim();
    if (!(MMLU_LETTERS as readonly string[]).includes(answer)) {
      throw new InputError(`${path} line ${r.line}`, `answer column must be A, B, C or D, got ${JSON.stringify(ans)}`);
    }
    return { subject, question, choices: [a, b, c, d], answer: answer as MmluLetter, line: r.line };
  });
}

/** "high_school_us_history" -> "high school us history". */
export function subjectWords(subject: string): string {
  return subject.split('_').join(' ');
}

/** One question in the standard layout, ending "Answer:" (lm-eval strips the question). */
export function formatQuestion(doc: MmluDoc): string {
  const lines = [doc.question.trim(), ...doc.choices.map((c, i) => `${MMLU_LETTERS[i]}. ${c}`), 'Answer:'];
  return lines.join('\n');
}

/** The scored context for `doc` with the given few-shot examples. */
export function mmluContext(doc: MmluDoc, shots: readonly MmluDoc[], chatFormat: ChatFormat = 'plain'): string {
  const header = `The following are multiple choice questions (with answers) about ${subjectWords(doc.subject)}.\n\n`;
  const demos = shots.map((s) => `${formatQuestion(s)} ${s.answer}\n\n`).join('');
  const text = header + demos + formatQuestion(doc);
  return isChat(chatFormat) ? chatPrompt(chatFormat, text, 'The answer is:') : text;
}

export interface MmluOptions {
  dir: string;
  shots: number;
  /** Restrict to these subjects (default: every subject in <dir>/test). */
  subjects?: string[];
  task?: string;
}

/** Runs MMLU; returns the `mmlu` group first, then the category groups present, then one result per subject. */
export async function runMmlu(ctx: TaskContext, opts: MmluOptions): Promise<TaskResult[]> {
  const available = mmluSubjects(opts.dir);
  const subjects = opts.subjects ?? available;
  for (const s of subjects) {
    if (!available.includes(s)) {
      throw new InputError(join(opts.dir, 'test'), `no MMLU subject "${s}"; known: ${available.join(', ')}`);
    }
  }
  if (!Number.isInteger(opts.shots) || opts.shots < 0) throw new Error(`MMLU shots must be a non-negative integer, got ${opts.shots}`);
  const group = opts.task ?? 'mmlu';

  // Build every request up front so the LM sees full batches across subjects.
  interface Item {
    subject: string;
    doc: MmluDoc;
    context: string;
  }
  const items: Item[] = [];
  const originals = new Map<string, number>();
  for (const subject of subjects) {
    const test = loadMmlu(opts.dir, 'test', subject);
    originals.set(subject, test.length);
    let shots: MmluDoc[] = [];
    if (opts.shots > 0) {
      const dev = loadMmlu(opts.dir, 'dev', subject);
      if (dev.length < opts.shots) {
        throw new InputError(mmluFile(opts.dir, 'dev', subject), `${opts.shots} shots requested but the dev file has ${dev.length} rows`);
      }
      shots = dev.slice(0, opts.shots);
    }
    for (const doc of applyLimit(test, ctx.limit)) items.push({ subject, doc, context: mmluContext(doc, shots, ctx.chatFormat) });
  }
  const reqs: LoglikelihoodRequest[] = [];
  for (const it of items) for (const l of MMLU_LETTERS) reqs.push({ context: it.context, continuation: ` ${l}` });
  const lls = await loglikelihoodAll(ctx.lm, reqs, ctx.batchSize, (d, t) => ctx.progress('loglikelihood', d, t));

  const perSubject = new Map<string, { accs: number[]; samples: SampleRecord[] }>();
  for (const s of subjects) perSubject.set(s, { accs: [], samples: [] });
  items.forEach((it, i) => {
    const scores = lls.slice(4 * i, 4 * i + 4);
    let best = 0;
    for (let k = 1; k < 4; k++) if (scores[k].logprob > scores[best].logprob) best = k;
    const acc = MMLU_LETTERS[best] === it.doc.answer ? 1 : 0;
    const bucket = perSubject.get(it.subject)!;
    bucket.accs.push(acc);
    // lm-eval's multiple_choice record: one request per choice, each answered [logprob, is_greedy]
    bucket.samples.push({
      doc_id: bucket.samples.length,
      doc: {
        question: it.doc.question,
        subject: it.subject,
        choices: it.doc.choices,
        answer: MMLU_LETTERS.indexOf(it.doc.answer),
      },
      target: MMLU_LETTERS.indexOf(it.doc.answer),
      arguments: MMLU_LETTERS.map((l) => [it.context, ` ${l}`]),
      resps: scores.map((s) => [[s.logprob, s.greedy]]),
      filtered_resps: scores.map((s) => [s.logprob, s.greedy]),
      filter: 'none',
      metrics: ['acc'],
      acc,
    });
  });

  const common = {
    prompt: isChat(ctx.chatFormat)
      ? 'open-instruct chat: the lm-eval MMLU text as the user turn, assistant prefix "The answer is:", scored " A".." D"'
      : 'lm-eval mmlu: "The following are multiple choice questions (with answers) about {subject}.\\n\\n" + dev shots + "{q}\\nA. ..\\nD. ..\\nAnswer:", scored " A".." D"',
    chat_format: chatFormatName(ctx.chatFormat),
    fewshot_split: 'dev (first k rows)',
  };
  const subResults: TaskResult[] = subjects.map((s) => {
    const b = perSubject.get(s)!;
    return {
      task: `${group}_${s}`,
      version: MMLU_TASK_VERSION,
      nShot: opts.shots,
      nSamples: { original: originals.get(s)!, effective: b.accs.length },
      metrics: [{ name: 'acc', filter: 'none', value: mean(b.accs), stderr: meanStderr(b.accs), higherIsBetter: true }],
      config: { ...common, data: mmluFile(opts.dir, 'test', s), subject: s, tag: tagOf(s) },
      samples: b.samples,
    };
  });
  /** A group's acc: size-weighted mean of its subtasks' (lm-eval weight_by_size), pooled stderr. */
  const groupOf = (name: string, members: TaskResult[], subtasks: string[], extra: Record<string, unknown>): TaskResult => {
    const sizes = members.map((r) => r.nSamples.effective);
    const accs = members.map((r) => r.metrics[0].value as number);
    const total = sizes.reduce((a, b) => a + b, 0);
    return {
      task: name,
      version: MMLU_GROUP_VERSION,
      nShot: opts.shots,
      nSamples: { original: members.reduce((a, r) => a + r.nSamples.original, 0), effective: total },
      metrics: [
        {
          name: 'acc',
          filter: 'none',
          value: total > 0 ? accs.reduce((a, x, i) => a + x * sizes[i], 0) / total : null,
          stderr: pooledStderr(
            members.map((r) => r.metrics[0].stderr ?? NaN),
            sizes,
          ),
          higherIsBetter: true,
        },
      ],
      config: { ...common, ...extra, aggregate_metric_list: [{ metric: 'acc', weight_by_size: true }] },
      samples: [],
      subtasks,
    };
  };
  const categories: TaskResult[] = [];
  for (const c of MMLU_CATEGORIES) {
    const members = subResults.filter((r, i) => MMLU_SUBJECT_CATEGORY[subjects[i]] === c);
    if (members.length === 0) continue;
    categories.push(groupOf(`${group}_${c}`, members, members.map((r) => r.task), { group: `${group}_${c}`, group_alias: c }));
  }
  // subjects outside lm-eval's 57 (a custom MMLU folder) belong to the top group directly
  const loose = subResults.filter((_, i) => MMLU_SUBJECT_CATEGORY[subjects[i]] === undefined);
  const top = groupOf(
    group,
    [...categories, ...loose],
    [...categories.map((r) => r.task), ...loose.map((r) => r.task)],
    { group, data: opts.dir, subjects },
  );
  // nuggets' extra: the macro average over subjects (lm-eval reports the micro one as acc)
  const subjectAccs = subResults.map((r) => r.metrics[0].value as number);
  top.metrics.push({
    name: 'acc_macro',
    filter: 'none',
    value: mean(subjectAccs),
    stderr: macroStderr(subResults.map((r) => r.metrics[0].stderr)),
    higherIsBetter: true,
  });
  return [top, ...categories, ...subResults];
}

/** The subject's lm-eval tag (mmlu_<category>_tasks), or null for a subject lm-eval does not have. */
function tagOf(subject: string): string | null {
  const c = MMLU_SUBJECT_CATEGORY[subject];
  return c === undefined ? null : `mmlu_${c}_tasks`;
}
