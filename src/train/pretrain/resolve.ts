/**
 * Pretrain step 1, the starting point: the tokenizer, the architecture (flags, a config.json, or the
 * --init model's) and, with --init, the weights to continue from in HF layout.
 */
import { existsSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { InputError } from '../../errors.js';
import { Rng } from '../../engine/rng.js';
import { readJsonFile } from '../../io/checkpoint.js';
import { parseHfConfig } from '../../io/hfconfig.js';
import { permuteForHf } from '../../io/llama2c.js';
import { loadModelSource } from '../../io/load.js';
import type { Tokenizer } from '../../model/tokenizer.js';
import { loadTokenizer } from '../../io/tokenizer-hf.js';
import { expectedShape, expectedTensorNames, type ModelConfig } from '../../model/config.js';
import { MemoryWeights } from '../../model/weights.js';
import { fail, type PretrainOptions } from './options.js';

/** What training starts from. */
export interface Start {
  tok: Tokenizer;
  /** Where the tokenizer came from (copied or converted into the output folder). */
  tokPath: string;
  config: ModelConfig;
  /** The --init model's weights (HF layout); null for a random init. */
  initWeights: MemoryWeights | null;
}

/** The architecture flags (none may be combined with --init). */
const ARCH_FLAGS = [
  'hiddenSize',
  'numLayers',
  'numHeads',
  'numKvHeads',
  'intermediateSize',
  'headDim',
  'maxPositionEmbeddings',
  'ropeTheta',
  'rmsNormEps',
  'tieWordEmbeddings',
] as const;

export function resolveStart(o: PretrainOptions): Start {
  const tokPath = tokenizerPath(o);
  let start: Start;
  if (o.init) {
    const given = (['modelConfig', ...ARCH_FLAGS] as const).filter((k) => o[k] !== undefined);
    if (given.length)
      throw fail(`--init takes the architecture from the model; do not also give ${given.join(', ')}`);
    start = { tokPath, ...loadInit(o.init, o.tokenizer) };
  } else {
    const tok = loadTokenizer(tokPath);
    start = { tok, tokPath, config: resolveArchitecture(o, tok), initWeights: null };
  }
  if (o.seqLen > start.config.maxPositionEmbeddings)
    throw fail(
      `--seq-len ${o.seqLen} exceeds the model's max_position_embeddings ${start.config.maxPositionEmbeddings}`,
    );
  return start;
}

/** The --init model, its weights in HF layout and float32. */
function loadInit(init: string, tokenizer: string | undefined): Omit<Start, 'tokPath'> {
  const src = loadModelSource(init, tokenizer ? { tokenizer } : {});
  const tensors = new Map<string, { shape: number[]; data: Float32Array }>();
  for (const name of expectedTensorNames(src.config)) {
    const shape = src.weights.info(name).shape;
    let data = src.weights.get(name);
    // llama2.c rows are in 'pairs' RoPE order; training and the output are HF layout.
    if (src.config.ropeStyle === 'pairs' && name.endsWith('q_proj.weight'))
      data = permuteForHf(data, src.config.numHeads, shape[0], shape[1]);
    if (src.config.ropeStyle === 'pairs' && name.endsWith('k_proj.weight'))
      data = permuteForHf(data, src.config.numKvHeads, shape[0], shape[1]);
    tensors.set(name, { shape, data });
  }
  src.weights.close();
  const config: ModelConfig = { ...src.config, ropeStyle: 'half', torchDtype: 'float32' };
  if (config.attentionBias || config.mlpBias)
    throw new InputError(init, 'models with biases are not supported by pretrain');
  return { tok: src.tokenizer, config, initWeights: new MemoryWeights(init, tensors) };
}

/** The model config from flags (vocab = the tokenizer's) or from a config.json. */
export function resolveArchitecture(o: PretrainOptions, tok: Tokenizer): ModelConfig {
  const given = ARCH_FLAGS.filter((k) => o[k] !== undefined);
  if (o.modelConfig) {
    if (given.length)
      throw fail(
        `give the architecture either as --model-config or as flags, not both (also given: ${given.join(', ')})`,
      );
    const c = parseHfConfig(readJsonFile(o.modelConfig), o.modelConfig);
    if (c.vocabSize !== tok.vocabSize)
      throw new InputError(
        o.modelConfig,
        `vocab_size ${c.vocabSize} differs from the tokenizer's ${tok.vocabSize} tokens`,
      );
    if (c.attentionBias || c.mlpBias)
      throw new InputError(o.modelConfig, 'biases are not supported by pretrain (LLaMA without biases)');
    return { ...c, ropeStyle: 'half', torchDtype: 'float32' };
  }
  const need = ['hiddenSize', 'numLayers', 'numHeads', 'intermediateSize'] as const;
  const missing = need.filter((k) => o[k] === undefined);
  if (missing.length)
    throw fail(
      `the architecture needs ${missing.map((k) => '--' + k.replace(/[A-Z]/g, (c) => '-' + c.toLowerCase())).join(', ')} (or --model-config, or --init to continue a model)`,
    );
  const d = o.hiddenSize!,
    H = o.numHeads!,
    Hkv = o.numKvHeads ?? H;
  for (const [k, v] of [
    ['--hidden-size', d],
    ['--num-layers', o.numLayers!],
    ['--num-heads', H],
    ['--num-kv-heads', Hkv],
    ['--intermediate-size', o.intermediateSize!],
  ] as const) {
    if (!(Number.isInteger(v) && v >= 1)) throw fail(`${k} must be a positive integer, got ${v}`);
  }
  if (H % Hkv !== 0) throw fail(`--num-heads ${H} is not a multiple of --num-kv-heads ${Hkv}`);
  if (o.headDim === undefined && d % H !== 0)
    throw fail(`--hidden-size ${d} is not divisible by --num-heads ${H} (or give --head-dim)`);
  const headDim = o.headDim ?? d / H;
  if (!(Number.isInteger(headDim) && headDim >= 2 && headDim % 2 === 0))
    throw fail(`head dim ${headDim} must be an even integer (RoPE rotates pairs)`);
  // The architecture's own defaults (not options with schema defaults: "absent" must stay visible to
  // the --init / --model-config checks above).
  return {
    arch: 'llama',
    vocabSize: tok.vocabSize,
    hiddenSize: d,
    intermediateSize: o.intermediateSize!,
    numLayers: o.numLayers!,
    numHeads: H,
    numKvHeads: Hkv,
    headDim,
    rmsNormEps: o.rmsNormEps ?? 1e-5,
    ropeTheta: o.ropeTheta ?? 10000,
    ropeScaling: null,
    ropeStyle: 'half',
    maxPositionEmbeddings: o.maxPositionEmbeddings ?? Math.max(o.seqLen, 256),
    tieWordEmbeddings: o.tieWordEmbeddings ?? false,
    attentionBias: false,
    oBias: false,
    mlpBias: false,
    bosTokenId: tok.bosId,
    eosTokenId: tok.eosId === null ? [] : [tok.eosId],
    padTokenId: null,
    torchDtype: 'float32',
  };
}

/**
 * Random weights for pretraining from scratch (llama2.c / GPT-2 init): every matrix ~ N(0, std^2),
 * the residual output projections (o_proj, down_proj) ~ N(0, (std / sqrt(2 L))^2), norms = 1.
 */
export function initialWeights(c: ModelConfig, seed: number, std: number): MemoryWeights {
  const rng = new Rng(seed);
  const tensors = new Map<string, { shape: number[]; data: Float32Array }>();
  for (const name of expectedTensorNames(c)) {
    const shape = expectedShape(c, name);
    const data = new Float32Array(shape.reduce((a, b) => a * b, 1));
    if (name.endsWith('norm.weight')) data.fill(1);
    else if (name.endsWith('.bias')) data.fill(0);
    else if (/\.(o_proj|down_proj)\.weight$/.test(name))
      rng.fillNormal(data, 0, std / Math.sqrt(2 * c.numLayers));
    else rng.fillNormal(data, 0, std);
    tensors.set(name, { shape, data });
  }
  return new MemoryWeights(`init(seed=${seed})`, tensors);
}

/** Where the tokenizer comes from (a path), given the options. */
function tokenizerPath(o: PretrainOptions): string {
  if (o.tokenizer) return o.tokenizer;
  if (o.init) {
    if (existsSync(o.init) && statSync(o.init).isDirectory()) return o.init;
    return join(dirname(o.init), 'tokenizer.bin');
  }
  throw fail('--tokenizer is required when training from scratch (e.g. data/stories260k/tokenizer.bin)');
}
