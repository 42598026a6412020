/**
 * Sequence-level distillation data (`nuggets distill-data`, the `kd-sequence` method): the teacher
 * answers every training prompt (greedy, or sampled with a seed), and the rows are written back with
 * the teacher's answer in place of the reference answer, ready for a plain `nuggets train`.
 *
 * The prompt of a row is what training conditions on: the conversation before the last (assistant)
 * message, rendered in the chosen chat format with the assistant header (data/chat.ts renderPrompt),
 * BOS first. Generation is batched (model/generate.ts, left-padded prefill + KV cache); each row
 * samples from its own RNG (seed and row index), so the answers do not depend on the batch size.
 * Output rows are `{"messages": [...context, {"role": "assistant", "content": <teacher answer>}]}`,
 * keeping `id` and `dataset`, written atomically.
 */
import { InputError } from '../errors.js';
import type { OptionsOf } from '../config/cli.js';
import { readExamples, type ChatExample } from '../data/examples.js';
import { renderPrompt, TULU } from '../data/chat.js';
import { templateFormat } from '../data/template.js';
import { tokenizePieces } from '../data/encode.js';
import { writeFileAtomic } from '../io/atomic.js';
import { loadModelSource } from '../io/load.js';
import { contextLength } from '../model/config.js';
import { ContinuationTokenizer } from '../model/continuation.js';
import { generate } from '../model/generate.js';
import { LlamaModel } from '../model/model.js';

export type DistillDataOptions = OptionsOf<'distill-data'>;

export interface DistillDataResult {
  rows: number;
  /** Lines of the input whose teacher answer was blank (left out). */
  dropped: number[];
  /** Answers that hit the token budget instead of ending with EOS. */
  cutAtBudget: number;
  tokens: number;
  seconds: number;
  summary: string;
}

/** The seed of row i's sampler (independent of batching). */
function rowSeed(seed: number, i: number): number {
  return (seed ^ Math.imul(i + 1, 0x9e3779b9)) >>> 0;
}

export function runDistillData(
  o: DistillDataOptions,
  say: (line: string) => void = () => {},
): DistillDataResult {
  const examples = readExamples(o.data);
  if (examples.length === 0) throw new InputError(o.data, 'has no examples');
  const chats: ChatExample[] = examples.map((ex) => {
    if (ex.kind !== 'chat')
      throw new InputError(ex.source, 'a {"text"} row has no prompt for the teacher to answer');
    return ex;
  });
  const src = loadModelSource(o.teacher, { tokenizer: o.tokenizer });
  try {
    const tok = src.tokenizer;
    const fmt = o.chatFormat === 'template' ? templateFormat(tok, o.tokenizer ?? o.teacher) : TULU;
    const model = LlamaModel.load(src);
    const ctx = contextLength(src.config);
    const prompts = chats.map((ex) => {
      const ids = tokenizePieces(renderPrompt(ex.messages.slice(0, -1), fmt), tok, { addBos: true }).ids;
      if (ids.length >= ctx)
        throw new InputError(ex.source, `the prompt is ${ids.length} tokens, the teacher's context ${ctx}`);
      return ids;
    });
    const t0 = performance.now();
    const lines: string[] = [];
    const dropped: number[] = [];
    let cut = 0,
      tokens = 0;
    for (let i = 0; i < chats.length; i += o.batchSize) {
      const batch = prompts.slice(i, i + o.batchSize);
      const longest = Math.max(...batch.map((p) => p.length));
      const results = generate(model, batch, {
        maxNewTokens: Math.min(o.maxNewTokens, ctx - longest),
        temperature: o.temperature,
        topP: o.topP,
        topK: o.topK,
        seeds: batch.map((_, j) => rowSeed(o.seed, i + j)),
      });
      results.forEach((r, j) => {
        const ex = chats[i + j];
        const answer = new ContinuationTokenizer(tok, batch[j]).decode(r.tokens);
        if (r.finishReason === 'length') cut++;
        tokens += r.tokens.length;
        // a blank answer is not a training row (data/examples.ts refuses it): left out, and counted
        if (answer.trim() === '') {
          dropped.push(ex.line);
          return;
        }
        const row: Record<string, unknown> = {};
        if (ex.dataset !== undefined) row.dataset = ex.dataset;
        if (ex.id !== undefined) row.id = ex.id;
        row.messages = [...ex.messages.slice(0, -1), { role: 'assistant', content: answer }];
        lines.push(JSON.stringify(row) + '\n');
      });
      say(`distill-data: ${Math.min(i + o.batchSize, chats.length)}/${chats.length} prompts answered`);
    }
    if (lines.length === 0)
      throw new InputError(o.teacher, `answered every prompt of ${o.data} with nothing`);
    if (dropped.length > 0)
      say(
        `note: the teacher's answer was blank for lines ${dropped.join(', ')} of ${o.data}; those rows are left out`,
      );
    writeFileAtomic(o.out, lines);
    const seconds = (performance.now() - t0) / 1000;
    return {
      rows: lines.length,
      dropped,
      cutAtBudget: cut,
      tokens,
      seconds,
      summary: `wrote ${lines.length} teacher answers (${tokens} tokens, ${cut} cut at --max-new-tokens ${o.maxNewTokens}) to ${o.out}`,
    };
  } finally {
    src.weights.close();
  }
}
