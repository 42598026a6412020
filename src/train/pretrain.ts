/**
 * `nuggets pretrain`: full-parameter language-model training of a LLaMA-family model, from scratch
 * (random init) or continued from a model, on plain text. It is what builds the bundled zoo (zoo/*,
 * scripts/build-zoo.sh).
 *
 * Recipe, llama2.c-style: documents get a BOS each and are packed into fixed-length sequences
 * (src/train/pretrain-data.ts); every position is a next-token target; AdamW, clipping and the HF
 * schedule are the trainer's. Four steps, one file each under src/train/pretrain/:
 *   resolve (tokenizer, architecture, --init weights) -> data (documents, packed sequences) ->
 *   loop (updates, held-out loss, checkpoints; resuming continues bitwise) -> write (HF folder and
 *   RECIPE.md with the exact command, seed and the sha256 of the data).
 * Options: src/train/pretrain/options.ts (the `pretrain` schema's type and defaults).
 */
import { prepareData } from './pretrain/data.js';
import { trainModel } from './pretrain/loop.js';
import {
  checkOptions,
  type PretrainIo,
  type PretrainOptions,
  type PretrainResult,
} from './pretrain/options.js';
import { resolveStart } from './pretrain/resolve.js';
import { writeOutput } from './pretrain/write.js';

export function pretrain(o: PretrainOptions, io: PretrainIo = {}): PretrainResult {
  const say = io.log ?? ((s: string) => process.stderr.write(s + '\n'));
  checkOptions(o);
  const t0 = performance.now();
  const cpu0 = process.cpuUsage();

  const start = resolveStart(o);
  const data = prepareData(o, start.tok, say);
  const trained = trainModel(o, io, start, data, say);
  const seconds = (performance.now() - t0) / 1000;
  const result: PretrainResult = {
    out: o.out,
    config: start.config,
    steps: trained.steps,
    totalSteps: data.totalSteps,
    trainLoss: trained.trainLoss,
    valLoss: trained.valLoss,
    initialValLoss: trained.initialValLoss,
    tokensPerStep: o.batchSize * o.seqLen,
    seconds,
    interrupted: trained.interrupted,
  };
  if (trained.interrupted) return result;

  writeOutput(o, io, start, data, trained, result, () => {
    const u = process.cpuUsage(cpu0);
    return (u.user + u.system) / 1e6;
  });
  say(
    `pretrain: ${trained.steps} updates (${trained.steps * o.batchSize * o.seqLen} tokens) in ${seconds.toFixed(1)} s; train loss ${trained.trainLoss.toFixed(4)}` +
      (trained.valLoss !== null ? `, held-out loss ${trained.valLoss.toFixed(4)}` : '') +
      ` -> ${o.out}`,
  );
  return result;
}
