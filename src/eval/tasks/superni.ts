/**
 * Super-NaturalInstructions style evaluation of free-form answers: exact match (Super-NI's
 * normalize_answer) and ROUGE-L (rouge_score default tokenizer), each the best over a row's
 * references, averaged over rows. Values are fractions in [0, 1] (the Super-NI script prints them
 * x100).
 *
 * Input: JSON Lines, each row either {"input": str, "references": [str, ...]} (a single string is also
 * accepted; "output"/"outputs" are accepted as the Super-NI instance field names) or the paper's
 * {"messages": [{"role":"user","content":...}, {"role":"assistant","content":...}]} rows, where the
 * assistant turn is the reference.
 */
import { InputError } from '../../errors.js';
import { readJsonl, type JsonlObjectRecord } from '../../data/jsonl.js';
import { generateAll, type GenerateRequest } from '../lm.js';
import { chatFormatName, instructionPrompt, instructionStop, isChat } from '../prompt.js';
import type { SampleRecord, TaskResult } from '../results.js';
import { exactMatch, maxOverReferences, rougeL } from '../rouge.js';
import { mean, meanStderr } from '../stats.js';
import { applyLimit, type TaskContext } from '../task.js';

export interface InstructionPair {
  id: string | null;
  input: string;
  references: string[];
}

function referencesOf(path: string, row: JsonlObjectRecord): string[] {
  const where = `${path} line ${row.line}`;
  for (const key of ['references', 'outputs', 'output']) {
    if (!(key in row.value)) continue;
    const v = row.value[key];
    const refs = typeof v === 'string' ? [v] : v;
    if (!Array.isArray(refs) || refs.length === 0 || refs.some((r) => typeof r !== 'string')) {
      throw new InputError(where, `field "${key}" must be a string or a non-empty array of strings`);
    }
    return refs as string[];
  }
  throw new InputError(where, 'missing field "references" (or "output"/"outputs", or "messages")');
}

function fromMessages(path: string, row: JsonlObjectRecord): { input: string; reference: string } {
  const where = `${path} line ${row.line}`;
  const msgs = row.value.messages;
  if (!Array.isArray(msgs)) throw new InputError(where, 'field "messages" must be an array');
  const ok = msgs.every(
    (m) => m !== null && typeof m === 'object' && typeof (m as Record<string, unknown>).role === 'string' && typeof (m as Record<string, unknown>).content === 'string',
  );
  if (!ok) throw new InputError(where, 'every message needs string fields "role" and "content"');
  const ms = msgs as { role: string; content: string }[];
  if (ms.length !== 2 || ms[0].role !== 'user' || ms[1].role !== 'assistant') {
    throw new InputError(where, `expected one user turn then one assistant turn, got roles [${ms.map((m) => m.role).join(', ')}]`);
  }
  return { input: ms[0].content, reference: ms[1].content };
}

/** Loads {input, references} or {messages} rows. */
export function loadInstructionPairs(path: string): InstructionPair[] {
  return readJsonl(path, { what: 'instruction/reference JSONL file', nonEmpty: true }).map((row) => {
    const id = typeof row.value.id === 'string' ? row.value.id : null;
    if ('messages' in row.value) {
      const m = fromMessages(path, row);
      return { id, input: m.input, references: [m.reference] };
    }
    const input = row.value.input;
    if (typeof input !== 'string') throw new InputError(`${path} line ${row.line}`, 'missing string field "input" (or "messages")');
    return { id, input, references: referencesOf(path, row) };
  });
}

export interface SuperNiOptions {
  path: string;
  /** Porter-stem ROUGE tokens (rouge_score use_stemmer=True, as the Super-NI script does). Default false. */
  rougeStemmer?: boolean;
  maxTokens?: number;
  task?: string;
}

export async function runSuperNi(ctx: TaskContext, opts: SuperNiOptions): Promise<TaskResult> {
  const all = loadInstructionPairs(opts.path);
  const docs = applyLimit(all, ctx.limit);
  const maxTokens = opts.maxTokens ?? 128;
  const stop = instructionStop(ctx.chatFormat);
  const reqs: GenerateRequest[] = docs.map((d, i) => ({
    prompt: instructionPrompt(ctx.chatFormat, d.input),
    stop,
    maxTokens,
    temperature: 0,
    seed: ctx.seed + i,
  }));
  const outs = await generateAll(ctx.lm, reqs, ctx.batchSize, (d, t) => ctx.progress('generate', d, t));
  const ems: number[] = [];
  const rls: number[] = [];
  const samples: SampleRecord[] = docs.map((d, i) => {
    const pred = outs[i].trim();
    const em = maxOverReferences(exactMatch, pred, d.references);
    const rl = maxOverReferences((p, r) => rougeL(p, r, { stem: opts.rougeStemmer }).fmeasure, pred, d.references);
    ems.push(em);
    rls.push(rl);
    return {
      doc_id: i,
      doc: { id: d.id, input: d.input },
      target: d.references,
      arguments: { prompt: reqs[i].prompt, until: stop, max_gen_toks: maxTokens },
      resps: [outs[i]],
      filtered_resps: pred,
      exact_match: em,
      rougeL: rl,
    };
  });
  return {
    task: opts.task ?? 'super_ni',
    version: 1,
    nShot: 0,
    nSamples: { original: all.length, effective: docs.length },
    metrics: [
      { name: 'exact_match', filter: 'none', value: mean(ems), stderr: meanStderr(ems), higherIsBetter: true },
      { name: 'rougeL', filter: 'none', value: mean(rls), stderr: meanStderr(rls), higherIsBetter: true },
    ],
    config: {
      data: opts.path,
      prompt: isChat(ctx.chatFormat) ? 'input as the user turn' : 'input + "\\n"',
      chat_format: chatFormatName(ctx.chatFormat),
      generation: { until: stop, max_gen_toks: maxTokens, temperature: 0 },
      metrics:
        'fractions in [0,1], max over references; exact_match after Super-NI normalize_answer; rougeL = rouge_score LCS F-measure, default tokenizer',
      rouge_stemmer: opts.rougeStemmer === true ? 'Porter (as the Super-NI script)' : 'none (the Super-NI script uses the Porter stemmer: pass rougeStemmer to match it)',
    },
    samples,
  };
}
