/**
 * Pretrain step 4, the output: the HF folder (config.json, model.safetensors, tokenizer.json +
 * tokenizer_config.json, generation_config.json) and RECIPE.md with the exact command, seed and the
 * sha256 of the data. trainer_log.jsonl is written by the loop as it goes.
 */
import { copyFileSync, existsSync, readFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { kernels } from '../../engine/backend.js';
import { writeFileAtomic, writeJsonAtomic } from '../../io/atomic.js';
import { parseShardSize, writeHfModel, type WriteHfOptions } from '../../io/checkpoint.js';
import { buildTokenizerConfig, buildTokenizerJson } from '../../io/convert.js';
import type { Tokenizer } from '../../model/tokenizer.js';
import { Llama2cTokenizer } from '../../io/tokenizer-llama2c.js';
import { expectedShape, expectedTensorNames, type ModelConfig } from '../../model/config.js';
import type { LlamaModel } from '../../model/model.js';
import { MemoryWeights } from '../../model/weights.js';
import { sha256Hex } from '../pretrain-data.js';
import type { PretrainData } from './data.js';
import type { PretrainIo, PretrainOptions, PretrainResult } from './options.js';
import type { Trained } from './loop.js';
import type { Start } from './resolve.js';

/** Writes the HF folder and RECIPE.md; returns the written model's config. */
export function writeOutput(
  o: PretrainOptions,
  io: PretrainIo,
  start: Start,
  data: PretrainData,
  trained: Trained,
  result: PretrainResult,
  cpuSeconds: () => number,
): ModelConfig {
  const dtype: WriteHfOptions['dtype'] = o.dtype === 'bf16' ? 'BF16' : 'F32';
  const outConfig: ModelConfig = { ...start.config, torchDtype: o.dtype === 'bf16' ? 'bfloat16' : 'float32' };
  writeHfModel(o.out, outConfig, new MemoryWeights('pretrained', paramTensors(trained.model)), {
    dtype,
    maxShardBytes: parseShardSize(o.maxShardSize),
  });
  writeTokenizerFiles(o.out, start.tokPath, start.tok, outConfig);
  writeRecipe(o, io.command, {
    config: outConfig,
    dataSha256: data.dataSha256,
    valSha256: data.valSha256,
    tokenizerSha256: tokenizerDigest(start.tokPath),
    trainDocs: data.trainDocs,
    valDocs: data.valDocs,
    trainTokens: data.train.stream.length,
    result,
    elapsed: trained.elapsed(),
    startStep: trained.startStep,
    cpuSeconds: cpuSeconds(),
  });
  return outConfig;
}

function paramTensors(model: LlamaModel): Map<string, { shape: number[]; data: Float32Array }> {
  const m = new Map<string, { shape: number[]; data: Float32Array }>();
  for (const name of expectedTensorNames(model.config)) {
    const p = model.params.get(name);
    m.set(name, { shape: [...p.shape], data: p.data });
  }
  return m;
}

/**
 * tokenizer.json + tokenizer_config.json (+ generation_config.json) in the output folder: a llama2.c
 * tokenizer is converted, an HF one copied from its folder.
 */
function writeTokenizerFiles(out: string, tokPath: string, tok: Tokenizer, c: ModelConfig): void {
  if (tok instanceof Llama2cTokenizer) {
    writeJsonAtomic(join(out, 'tokenizer.json'), buildTokenizerJson(tok));
    writeJsonAtomic(join(out, 'tokenizer_config.json'), buildTokenizerConfig(c.maxPositionEmbeddings));
  } else {
    const folder = tokPath.endsWith('tokenizer.json') ? dirname(tokPath) : tokPath;
    for (const f of ['tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json']) {
      if (existsSync(join(folder, f))) copyFileSync(join(folder, f), join(out, f));
    }
  }
  const gen: Record<string, unknown> = { _from_model_config: true };
  if (c.bosTokenId !== null) gen.bos_token_id = c.bosTokenId;
  if (c.eosTokenId.length) gen.eos_token_id = c.eosTokenId.length === 1 ? c.eosTokenId[0] : c.eosTokenId;
  writeJsonAtomic(join(out, 'generation_config.json'), gen);
}

function tokenizerDigest(p: string): string {
  const file =
    p.endsWith('.bin') || p.endsWith('.json')
      ? p
      : existsSync(join(p, 'tokenizer.json'))
        ? join(p, 'tokenizer.json')
        : join(p, 'tokenizer.bin');
  try {
    return sha256Hex(readFileSync(file));
  } catch {
    return 'unknown';
  }
}

interface RecipeInfo {
  config: ModelConfig;
  dataSha256: string;
  valSha256: string | null;
  tokenizerSha256: string;
  trainDocs: number;
  valDocs: number;
  trainTokens: number;
  result: PretrainResult;
  /** Training seconds over all sessions (resume included). */
  elapsed: number;
  /** CPU seconds of this process (this session only), all threads. */
  cpuSeconds: number;
  /** The update this session resumed from (0: a fresh run). */
  startStep: number;
}

function countParams(c: ModelConfig): number {
  return expectedTensorNames(c).reduce((n, name) => n + expectedShape(c, name).reduce((a, b) => a * b, 1), 0);
}

/** RECIPE.md: everything needed to rebuild the folder (command, seed, data hashes) and what came out. */
function writeRecipe(o: PretrainOptions, command: string | undefined, r: RecipeInfo): void {
  const c = r.config;
  const lines = [
    `# ${basename(o.out)}`,
    '',
    'Trained from ' +
      (o.init ? `\`${o.init}\` (continued)` : 'scratch') +
      ' by `nuggets pretrain` (full-parameter language-model training).',
    '',
    '## Command',
    '',
    '```sh',
    command ?? '(called as a library: see the options below)',
    '```',
    '',
    '## Data',
    '',
    '| what | value |',
    '| --- | --- |',
    `| training file | \`${o.data}\` |`,
    `| sha256 | \`${r.dataSha256}\` |`,
    ...(o.valData
      ? [`| held-out file | \`${o.valData}\` |`, `| held-out sha256 | \`${r.valSha256}\` |`]
      : [`| held-out | ${r.valDocs} of the documents (seeded split, --val-fraction ${o.valFraction}) |`]),
    `| tokenizer sha256 | \`${r.tokenizerSha256}\` |`,
    `| documents (train / held out) | ${r.trainDocs} / ${r.valDocs} |`,
    `| training tokens (one pass) | ${r.trainTokens} |`,
    '',
    '## Model',
    '',
    '| field | value |',
    '| --- | --- |',
    `| parameters | ${countParams(c)} |`,
    `| hidden / MLP / layers | ${c.hiddenSize} / ${c.intermediateSize} / ${c.numLayers} |`,
    `| heads / kv heads / head dim | ${c.numHeads} / ${c.numKvHeads} / ${c.headDim} |`,
    `| vocab / max positions | ${c.vocabSize} / ${c.maxPositionEmbeddings} |`,
    `| tied embeddings | ${c.tieWordEmbeddings} |`,
    `| stored as | ${c.torchDtype} |`,
    '',
    '## Training',
    '',
    '| field | value |',
    '| --- | --- |',
    `| seed | ${o.seed} |`,
    `| updates | ${r.result.steps} x ${o.batchSize} sequences of ${o.seqLen} tokens (${r.result.steps * r.result.tokensPerStep} tokens) |`,
    `| optimizer | AdamW lr ${o.learningRate}, betas (${o.adamBeta1}, ${o.adamBeta2}), eps ${o.adamEpsilon}, weight decay ${o.weightDecay} (matrices only), clip ${o.maxGradNorm} |`,
    `| schedule | ${o.scheduler}, ${o.warmupSteps} warmup updates |`,
    `| final training loss | ${r.result.trainLoss.toFixed(4)} |`,
    `| held-out loss | ${r.result.initialValLoss !== null ? `${r.result.initialValLoss.toFixed(4)} at init -> ` : ''}${r.result.valLoss !== null ? r.result.valLoss.toFixed(4) : 'n/a'} |`,
    `| wall time | ${r.elapsed.toFixed(0)} s (${kernels().name} backend) |`,
    `| CPU time | ${r.cpuSeconds.toFixed(0)} s (user + system, all threads${r.startStep > 0 ? `, this session only: resumed at update ${r.startStep}` : ''}) |`,
    '',
    'All options as resolved:',
    '',
    '```json',
    // Checkpointing changes memory, not numbers: leaving it out keeps a rebuilt recipe byte-identical.
    JSON.stringify({ ...o, gradientCheckpointing: undefined, dataSha256: r.dataSha256 }, null, 2),
    '```',
    '',
  ];
  writeFileAtomic(join(o.out, 'RECIPE.md'), [lines.join('\n')]);
}
