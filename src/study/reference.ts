/**
 * The reference rows of a results table: the task's teacher and the untouched student, scored with no
 * training on the same test set and metric as the cells. Exact match and ROUGE-L come from `nuggets
 * eval` on the model alone; the held-out answer loss is measured here, with the trainer's own code
 * (same tokenisation, answer-only targets and batches of --micro-batch-size as `nuggets train
 * --eval-data` uses), so the untouched student's number equals the "held-out loss before training" of
 * a plain-LoRA cell (B = 0 adds nothing) and is comparable with every cell's.
 *
 * There is no command for this step; the runner calls `answerLoss` in the reference job's process.
 */
import { contextLength } from '../model/config.js';
import { InputError } from '../errors.js';
import { writeJsonAtomic } from '../io/atomic.js';
import { loadModelSource } from '../io/load.js';
import { TULU } from '../data/chat.js';
import { templateFormat } from '../data/template.js';
import { readExamples } from '../data/examples.js';
import { encodeExamples } from '../data/encode.js';
import { LlamaModel } from '../model/model.js';
import { heldOutLoss } from '../train/trainer.js';

export interface AnswerLossOptions {
  /** Model to score (HF folder or llama2.c checkpoint), used as is. */
  model: string;
  /** Examples (JSONL, chat messages) whose answer tokens are scored. */
  data: string;
  /** JSON file to write: {answer_loss, examples, answerTokens}. */
  out: string;
  tokenizer?: string;
  chatFormat: 'tulu' | 'template';
  maxLength: number;
  overflow: 'truncate' | 'refuse';
  /** Examples per forward pass (the trainer's --micro-batch-size). */
  batchSize: number;
}

export interface AnswerLossResult {
  answer_loss: number;
  examples: number;
  answerTokens: number;
}

/** Mean answer-token loss of `data` under the model (evaluation mode), written to `out`. */
export function answerLoss(o: AnswerLossOptions): AnswerLossResult {
  if (!(Number.isInteger(o.batchSize) && o.batchSize >= 1))
    throw new InputError('batchSize', `must be a positive integer, got ${o.batchSize}`);
  const src = loadModelSource(o.model, { tokenizer: o.tokenizer });
  try {
    const fmt = o.chatFormat === 'template' ? templateFormat(src.tokenizer, o.tokenizer ?? o.model) : TULU;
    const maxLength = Math.min(o.maxLength, contextLength(src.config));
    const enc = encodeExamples(
      readExamples(o.data),
      src.tokenizer,
      { format: fmt, maxLength, overflow: o.overflow },
      o.data,
    );
    if (enc.examples.length === 0) throw new InputError(o.data, 'no examples with answer tokens to score');
    const model = LlamaModel.load(src);
    const loss = heldOutLoss(model, enc.examples, o.batchSize, src.config.padTokenId ?? 0);
    const result: AnswerLossResult = {
      answer_loss: loss,
      examples: enc.examples.length,
      answerTokens: enc.examples.reduce((a, e) => a + e.nTargets, 0),
    };
    writeJsonAtomic(o.out, result);
    return result;
  } finally {
    src.weights.close();
  }
}

/** The step as a line for commands.sh (there is no such command: it documents the call). */
export function answerLossArgv(o: AnswerLossOptions): string[] {
  const argv = ['answer-loss', '--model', o.model, '--data', o.data, '--out', o.out];
  if (o.tokenizer) argv.push('--tokenizer', o.tokenizer);
  argv.push('--chat-format', o.chatFormat, '--max-length', String(o.maxLength));
  argv.push('--overflow', o.overflow, '--batch-size', String(o.batchSize));
  return argv;
}
