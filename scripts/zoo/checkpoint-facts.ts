/**
 * How many facts does a pretraining checkpoint know already? Loads the newest checkpoint under a
 * `nuggets pretrain --checkpoint-dir` (or one checkpoint folder) with the architecture recorded in
 * it, and prints the cloze accuracy of scripts/zoo/facts-eval.ts on the held-out and the train
 * animals. Used to watch a long zoo build (scripts/build-zoo.sh) and to choose its token budget.
 *
 * Run: npx tsx scripts/zoo/checkpoint-facts.ts runs/zoo-build/teacher-m-ckpt
 */
import { readFileSync } from 'node:fs';
import { loadCheckpoint, latestCheckpoint, checkpointTensor } from '../../src/train/checkpoint.js';
import { expectedShape, expectedTensorNames } from '../../src/model/config.js';
import { MemoryWeights } from '../../src/model/weights.js';
import { LlamaModel } from '../../src/model/model.js';
import { loadTokenizer } from '../../src/io/tokenizer-hf.js';
import { resolveArchitecture } from '../../src/train/pretrain/resolve.js';
import type { PretrainOptions } from '../../src/train/pretrain/options.js';
import { clozeAccuracy } from './facts-eval.js';
import type { KnowledgeBase } from './facts.js';

const arg = process.argv[2];
if (!arg) throw new Error('usage: checkpoint-facts.ts <checkpoint dir or checkpoint-N folder>');
const dir = /checkpoint-\d+\/?$/.test(arg) ? arg : latestCheckpoint(arg);
if (!dir) throw new Error(`${arg}: no checkpoint yet`);
const ck = loadCheckpoint(dir);
const o = ck.state.options as unknown as PretrainOptions;
const tok = loadTokenizer(o.tokenizer!);
const config = resolveArchitecture(o, tok);
const tensors = new Map<string, { shape: number[]; data: Float32Array }>();
for (const name of expectedTensorNames(config)) {
  const shape = expectedShape(config, name);
  tensors.set(name, { shape, data: checkpointTensor(ck, `param/${name}`, shape) });
}
const model = LlamaModel.load({ config, weights: new MemoryWeights(dir, tensors) });
const kb = JSON.parse(readFileSync('tasks/facts/knowledge.json', 'utf8')) as KnowledgeBase;
const held = clozeAccuracy(model, tok, kb.animals.filter((a) => a.split === 'heldOut'));
const train = clozeAccuracy(model, tok, kb.animals.filter((a) => a.split === 'train'));
console.log(
  `${dir}: update ${ck.state.step}, ${Math.round(ck.state.elapsedS)} s; facts held-out ${held.correct}/${held.total}, train ${train.correct}/${train.total}`,
);
