/**
 * `nuggets pretrain`: full-parameter language-model training of a LLaMA-family model, from scratch
 * (random init) or continued from a model, on plain text (issue 7, scope 1). It is what builds the
 * bundled zoo (zoo/*, scripts/build-zoo.sh).
 *
 * Recipe, llama2.c-style: documents get a BOS each and are packed into fixed-length sequences
 * (src/train/pretrain-data.ts); every position is a next-token target; the loss of an update is the
 * mean over all its tokens (equal micro-batches, gradients summed then divided by their number);
 * global gradient-norm clipping; AdamW (torch semantics, kernels().adamw) with decay on matrices only
 * (embeddings included, norms excluded); HF linear or cosine schedule with warmup (src/train/schedule.ts).
 * Each epoch visits the sequences in an order drawn from (seed, epoch), so a resumed run recomputes
 * the exact order; a checkpoint holds the parameters and both AdamW moments in F32, and resuming
 * continues bitwise (test/pretrain-resume.test.ts).
 *
 * Output: an HF folder (config.json, model.safetensors, tokenizer.json + tokenizer_config.json,
 * generation_config.json), trainer_log.jsonl, and RECIPE.md with the exact command, seed and the
 * sha256 of the data.
 */
import { copyFileSync, existsSync, readFileSync, statSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { InputError } from '../errors.js';
import { DEFAULT_SEED } from '../config/schemas.js';
import { kernels } from '../engine/backend.js';
import { Rng } from '../engine/rng.js';
import { writeFileAtomic, writeJsonAtomic } from '../io/atomic.js';
import { readJsonFile, writeHfModel, type WriteHfOptions } from '../io/checkpoint.js';
import { buildTokenizerConfig, buildTokenizerJson } from '../io/convert.js';
import { parseHfConfig } from '../io/hfconfig.js';
import { loadModelSource } from '../io/load.js';
import { permuteForHf } from '../io/llama2c.js';
import type { Tokenizer } from '../io/tokenizer.js';
import { loadTokenizer } from '../io/tokenizer-hf.js';
import { Llama2cTokenizer } from '../io/tokenizer-llama2c.js';
import { expectedShape, expectedTensorNames, type ModelConfig } from '../model/config.js';
import { LlamaModel } from '../model/model.js';
import { MemoryWeights } from '../model/weights.js';
import {
  assertResumable,
  checkpointTensor,
  latestCheckpoint,
  loadCheckpoint,
  RESUME_MAY_CHANGE,
  saveCheckpoint,
  type CheckpointTensor,
} from './checkpoint.js';
import { TrainerLog } from './log.js';
import { Progress, type ProgressMode } from './progress.js';
import { LrSchedule, type ScheduleKind } from './schedule.js';
import {
  PackedSequences,
  readCorpus,
  sha256Hex,
  splitDocuments,
  tokenStream,
  type DocSplit,
} from './pretrain-data.js';

export interface PretrainOptions {
  /** Training text: .jsonl(.gz) rows {"text"} or a plain text file. */
  data: string;
  /** Output HF folder. */
  out: string;
  /** Tokenizer (tokenizer.bin, tokenizer.json or a folder); default: the --init model's. */
  tokenizer?: string;
  /** Continue training this model (HF folder or llama2.c checkpoint) instead of a random init. */
  init?: string;
  /** Architecture from an HF config.json (vocab_size must match the tokenizer). */
  modelConfig?: string;
  hiddenSize?: number;
  numLayers?: number;
  numHeads?: number;
  numKvHeads?: number;
  intermediateSize?: number;
  headDim?: number;
  maxPositionEmbeddings?: number;
  ropeTheta?: number;
  rmsNormEps?: number;
  tieWordEmbeddings?: boolean;
  /** How a plain text file is cut into documents. */
  docSplit: DocSplit;
  /** Append EOS to every document (llama2.c does not). */
  eos: boolean;
  /** Tokens per training sequence. */
  seqLen: number;
  /** Held-out documents: a file, or a fraction of the training documents. */
  valData?: string;
  valFraction: number;
  epochs: number;
  /** Stop after this many updates (0: run the epochs). */
  maxSteps: number;
  /** Sequences per optimizer update. */
  batchSize: number;
  /** Sequences per forward/backward (must divide batchSize). */
  microBatchSize: number;
  learningRate: number;
  scheduler: ScheduleKind;
  warmupSteps: number;
  weightDecay: number;
  adamBeta1: number;
  adamBeta2: number;
  adamEpsilon: number;
  maxGradNorm: number;
  /** Init std of the weights (residual output projections get std / sqrt(2 * layers), GPT-2 style). */
  initStd: number;
  seed: number;
  /** Held-out loss every N updates (0: only at the end). */
  evalSteps: number;
  loggingSteps: number;
  /** Checkpoint every N updates (0: none). */
  saveSteps: number;
  keepCheckpoints: number;
  /** Checkpoint folder (default <out>/checkpoints). */
  checkpointDir?: string;
  resume: boolean;
  resumeFrom?: string;
  dtype: 'f32' | 'bf16';
  progress: boolean | ProgressMode;
}

/** The defaults of every option that has one (the CLI schema uses the same values). */
export const PRETRAIN_DEFAULTS = {
  docSplit: 'blank-line',
  eos: false,
  seqLen: 128,
  valFraction: 0.05,
  epochs: 1,
  maxSteps: 0,
  batchSize: 32,
  microBatchSize: 8,
  learningRate: 1e-3,
  scheduler: 'cosine',
  warmupSteps: 20,
  weightDecay: 0.1,
  adamBeta1: 0.9,
  adamBeta2: 0.95,
  adamEpsilon: 1e-8,
  maxGradNorm: 1,
  initStd: 0.02,
  seed: DEFAULT_SEED,
  evalSteps: 0,
  loggingSteps: 10,
  saveSteps: 0,
  keepCheckpoints: 2,
  resume: false,
  dtype: 'f32',
  progress: true,
} as const satisfies Partial<PretrainOptions>;

export interface PretrainIo {
  /** The command line to record in RECIPE.md. */
  command?: string;
  /** Status lines (default: stderr). */
  log?: (line: string) => void;
  /** Stop after this many updates in this session as if interrupted (tests of resume). */
  stopAfter?: number;
}

export interface PretrainResult {
  out: string;
  config: ModelConfig;
  steps: number;
  totalSteps: number;
  /** Mean training loss of the last logging window. */
  trainLoss: number;
  /** Held-out loss at the end (null without held-out data). */
  valLoss: number | null;
  /** Held-out loss before the first update of this run (null without held-out data or on resume). */
  initialValLoss: number | null;
  tokensPerStep: number;
  seconds: number;
  /** True when stopped early by `stopAfter` (no model folder written). */
  interrupted: boolean;
}

const CHECKPOINT_MAY_CHANGE = [...RESUME_MAY_CHANGE, 'checkpointDir', 'evalSteps', 'out'];

function fail(problem: string): InputError {
  return new InputError('nuggets pretrain', problem);
}

// ------------------------------------------------------------------ architecture

/** The model config from flags (vocab = the tokenizer's) or from a config.json. */
export function resolveArchitecture(o: PretrainOptions, tok: Tokenizer): ModelConfig {
  const flags = [
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
  const given = flags.filter((k) => o[k] !== undefined);
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

// ------------------------------------------------------------------ tokenizer files

/** Where the tokenizer comes from (a path), given the options. */
function tokenizerPath(o: PretrainOptions): string {
  if (o.tokenizer) return o.tokenizer;
  if (o.init) {
    if (existsSync(o.init) && statSync(o.init).isDirectory()) return o.init;
    return join(dirname(o.init), 'tokenizer.bin');
  }
  throw fail('--tokenizer is required when training from scratch (e.g. data/stories260k/tokenizer.bin)');
}

function isLlama2cTokenizerPath(p: string): boolean {
  if (p.endsWith('.bin')) return true;
  return (
    existsSync(p) &&
    statSync(p).isDirectory() &&
    !existsSync(join(p, 'tokenizer.json')) &&
    existsSync(join(p, 'tokenizer.bin'))
  );
}

/** Writes tokenizer.json + tokenizer_config.json (+ generation_config.json) into the output folder. */
function writeTokenizerFiles(out: string, tokPath: string, tok: Tokenizer, c: ModelConfig): string[] {
  if (tok instanceof Llama2cTokenizer || isLlama2cTokenizerPath(tokPath)) {
    const t =
      tok instanceof Llama2cTokenizer
        ? tok
        : Llama2cTokenizer.fromFile(tokPath.endsWith('.bin') ? tokPath : join(tokPath, 'tokenizer.bin'));
    writeJsonAtomic(join(out, 'tokenizer.json'), buildTokenizerJson(t));
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
  return ['tokenizer.json', 'tokenizer_config.json', 'generation_config.json'];
}

// ------------------------------------------------------------------ training pieces

/** Mean next-token loss over all sequences of `seqs` (forward only), in micro-batches. */
export function heldOutLoss(model: LlamaModel, seqs: PackedSequences, microBatch: number): number {
  const T = seqs.seqLen;
  let sum = 0;
  let n = 0;
  for (let i = 0; i < seqs.count; i += microBatch) {
    const B = Math.min(microBatch, seqs.count - i);
    const ids = new Int32Array(B * T),
      targets = new Int32Array(B * T);
    for (let b = 0; b < B; b++) seqs.fill(i + b, ids, targets, b * T);
    sum += model.loss({ ids, B, T }, targets) * B;
    n += B;
  }
  return sum / n;
}

/** Global L2 norm of the gradients (float64), clipped like torch.nn.utils.clip_grad_norm_. */
function clipGradients(grads: Float32Array[], maxNorm: number): number {
  let ss = 0;
  for (const g of grads) for (let i = 0; i < g.length; i++) ss += g[i] * g[i];
  const norm = Math.sqrt(ss);
  if (maxNorm > 0) {
    const coef = maxNorm / (norm + 1e-6);
    if (coef < 1) for (const g of grads) for (let i = 0; i < g.length; i++) g[i] *= coef;
  }
  return norm;
}

function checkOptions(o: PretrainOptions): void {
  const posInt = (k: keyof PretrainOptions, min = 1) => {
    const v = o[k] as number;
    if (!(Number.isInteger(v) && v >= min))
      throw fail(
        `--${String(k).replace(/[A-Z]/g, (c) => '-' + c.toLowerCase())} must be an integer >= ${min}, got ${v}`,
      );
  };
  posInt('seqLen', 2);
  posInt('epochs');
  posInt('maxSteps', 0);
  posInt('batchSize');
  posInt('microBatchSize');
  posInt('warmupSteps', 0);
  posInt('evalSteps', 0);
  posInt('loggingSteps');
  posInt('saveSteps', 0);
  posInt('keepCheckpoints');
  if (o.batchSize % o.microBatchSize !== 0)
    throw fail(
      `--micro-batch-size ${o.microBatchSize} must divide --batch-size ${o.batchSize} (every micro-batch has the same number of tokens)`,
    );
  if (!(o.learningRate > 0 && Number.isFinite(o.learningRate)))
    throw fail(`--learning-rate must be a positive number, got ${o.learningRate}`);
  if (!(o.initStd > 0)) throw fail(`--init-std must be positive, got ${o.initStd}`);
}

/** The options as recorded in checkpoints (compared on resume) and RECIPE.md. */
function recordedOptions(
  o: PretrainOptions,
  dataSha: string,
  valSha: string | null,
): Record<string, unknown> {
  const rec: Record<string, unknown> = { ...o, dataSha256: dataSha };
  if (valSha) rec.valDataSha256 = valSha;
  return rec;
}

function paramTensors(model: LlamaModel): Map<string, { shape: number[]; data: Float32Array }> {
  const m = new Map<string, { shape: number[]; data: Float32Array }>();
  for (const name of expectedTensorNames(model.config)) {
    const p = model.params.get(name);
    m.set(name, { shape: [...p.shape], data: p.data });
  }
  return m;
}

// ------------------------------------------------------------------ the command

export function pretrain(o: PretrainOptions, io: PretrainIo = {}): PretrainResult {
  const say = io.log ?? ((s: string) => process.stderr.write(s + '\n'));
  checkOptions(o);
  const t0 = performance.now();
  const cpu0 = process.cpuUsage();

  // Tokenizer and architecture.
  const tokPath = tokenizerPath(o);
  let tok: Tokenizer;
  let config: ModelConfig;
  let initWeights: MemoryWeights | null = null;
  if (o.init) {
    const flags = [
      'modelConfig',
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
    const given = flags.filter((k) => o[k] !== undefined);
    if (given.length)
      throw fail(`--init takes the architecture from the model; do not also give ${given.join(', ')}`);
    const src = loadModelSource(o.init, o.tokenizer ? { tokenizer: o.tokenizer } : {});
    tok = src.tokenizer;
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
    config = { ...src.config, ropeStyle: 'half', torchDtype: 'float32' };
    if (config.attentionBias || config.mlpBias)
      throw new InputError(o.init, 'models with biases are not supported by pretrain');
    initWeights = new MemoryWeights(o.init, tensors);
  } else {
    tok = loadTokenizer(tokPath);
    config = resolveArchitecture(o, tok);
  }
  if (o.seqLen > config.maxPositionEmbeddings)
    throw fail(
      `--seq-len ${o.seqLen} exceeds the model's max_position_embeddings ${config.maxPositionEmbeddings}`,
    );

  // Data.
  const corpus = readCorpus(o.data, o.docSplit);
  let trainDocs = corpus.documents;
  let valDocs: typeof trainDocs;
  let valSha: string | null = null;
  if (o.valData) {
    const v = readCorpus(o.valData, o.docSplit);
    valDocs = v.documents;
    valSha = v.sha256;
  } else {
    ({ train: trainDocs, val: valDocs } = splitDocuments(trainDocs, o.valFraction, o.seed));
  }
  const train = new PackedSequences(tokenStream(trainDocs, tok, { eos: o.eos }), o.seqLen);
  const val = valDocs.length
    ? new PackedSequences(tokenStream(valDocs, tok, { eos: o.eos }), o.seqLen)
    : null;
  if (val && val.count === 0)
    say(`pretrain: the held-out text has fewer than ${o.seqLen + 1} tokens; no held-out loss`);
  const perEpoch = Math.floor(train.count / o.batchSize);
  if (perEpoch === 0) {
    throw new InputError(
      o.data,
      `${train.stream.length} training tokens make ${train.count} sequence(s) of ${o.seqLen}, fewer than one batch of ${o.batchSize}; lower --batch-size or --seq-len`,
    );
  }
  const totalSteps = o.maxSteps > 0 ? o.maxSteps : perEpoch * o.epochs;
  const T = o.seqLen,
    mb = o.microBatchSize,
    nMicro = o.batchSize / mb;
  say(
    `pretrain: ${trainDocs.length} documents, ${train.stream.length} tokens -> ${train.count} sequences of ${T}` +
      (val && val.count ? `; held out ${valDocs.length} documents (${val.count} sequences)` : '') +
      `; ${totalSteps} updates of ${o.batchSize} sequences (${perEpoch} per epoch)`,
  );

  // Model and optimizer state (fresh or from a checkpoint).
  const options = recordedOptions(o, corpus.sha256, valSha);
  const ckRoot = o.checkpointDir ?? join(o.out, 'checkpoints');
  let startStep = 0;
  let elapsedBefore = 0;
  let weights: MemoryWeights = initWeights ?? initialWeights(config, o.seed, o.initStd);
  const resumeDir = o.resumeFrom ?? (o.resume ? latestCheckpoint(ckRoot) : null);
  if (o.resume && !o.resumeFrom && !resumeDir)
    say(`pretrain: no checkpoint under ${ckRoot}; starting from step 0`);
  let ck: ReturnType<typeof loadCheckpoint> | null = null;
  if (resumeDir) {
    ck = loadCheckpoint(resumeDir);
    assertResumable(ck, options, CHECKPOINT_MAY_CHANGE);
    const tensors = new Map<string, { shape: number[]; data: Float32Array }>();
    for (const name of expectedTensorNames(config)) {
      const shape = expectedShape(config, name);
      tensors.set(name, { shape, data: checkpointTensor(ck, `param/${name}`, shape) });
    }
    weights = new MemoryWeights(resumeDir, tensors);
    startStep = ck.state.step;
    elapsedBefore = ck.state.elapsedS;
    say(`pretrain: resuming from ${resumeDir} at update ${startStep}`);
  }
  const model = LlamaModel.load({ config, weights });
  model.enableGrads();
  const params = model.params.unique();
  const names = params.map((p) => p.name);
  const moments = params.map((p) => ({
    m: new Float32Array(p.data.length),
    v: new Float32Array(p.data.length),
  }));
  if (ck) {
    params.forEach((p, i) => {
      moments[i].m.set(checkpointTensor(ck!, `adam_m/${names[i]}`, [...p.shape]));
      moments[i].v.set(checkpointTensor(ck!, `adam_v/${names[i]}`, [...p.shape]));
    });
  }
  // Weight decay on matrices (embedding and lm_head included), none on norm weights (llama2.c).
  const decays = params.map((p) => (p.shape.length >= 2 ? o.weightDecay : 0));
  const schedule = new LrSchedule({
    kind: o.scheduler,
    baseLr: o.learningRate,
    totalSteps,
    warmupSteps: Math.min(o.warmupSteps, totalSteps),
  });

  const log = new TrainerLog(join(o.out, 'trainer_log.jsonl'), { totalSteps, startStep, elapsedBefore });
  const mode: ProgressMode = o.progress === true ? 'auto' : o.progress === false ? 'off' : o.progress;
  const progress = new Progress({ label: 'pretrain', total: totalSteps, initial: startStep, mode });
  const save = (step: number) =>
    saveCheckpoint(
      ckRoot,
      {
        step,
        epoch: step / perEpoch,
        scheduler: schedule.state,
        options,
        elapsedS: log.elapsed(),
        tensors: Object.fromEntries(
          params.flatMap((p, i): Array<[string, CheckpointTensor]> => [
            [`param/${names[i]}`, { shape: [...p.shape], data: p.data }],
            [`adam_m/${names[i]}`, { shape: [...p.shape], data: moments[i].m }],
            [`adam_v/${names[i]}`, { shape: [...p.shape], data: moments[i].v }],
          ]),
        ),
      },
      { keep: o.keepCheckpoints },
    );

  const initialValLoss = val && val.count && startStep === 0 ? heldOutLoss(model, val, mb) : null;
  if (initialValLoss !== null)
    progress.log(`pretrain: held-out loss before training ${initialValLoss.toFixed(4)}`);

  const ids = new Int32Array(mb * T),
    targets = new Int32Array(mb * T);
  let order: number[] = [];
  let orderEpoch = -1;
  let windowLoss = 0,
    windowCount = 0,
    lastTrainLoss = NaN;
  let valLoss: number | null = null;
  let step = startStep;
  let interrupted = false;
  try {
    while (step < totalSteps) {
      const epoch = Math.floor(step / perEpoch);
      if (epoch !== orderEpoch) {
        order = new Rng((o.seed ^ Math.imul(epoch + 1, 0x9e3779b9)) >>> 0).shuffle(
          Array.from({ length: train.count }, (_, i) => i),
        );
        orderEpoch = epoch;
      }
      const first = (step % perEpoch) * o.batchSize;
      model.zeroGrads();
      let stepLoss = 0;
      for (let k = 0; k < nMicro; k++) {
        for (let b = 0; b < mb; b++) train.fill(order[first + k * mb + b], ids, targets, b * T);
        stepLoss += model.loss({ ids, B: mb, T }, targets);
        model.backward();
      }
      stepLoss /= nMicro;
      if (!Number.isFinite(stepLoss))
        throw new Error(`pretrain: the loss became ${stepLoss} at update ${step + 1}; lower --learning-rate`);
      const grads = params.map((p) => p.grad!);
      if (nMicro > 1) for (const g of grads) for (let i = 0; i < g.length; i++) g[i] /= nMicro;
      const gradNorm = clipGradients(grads, o.maxGradNorm);
      const lr = schedule.lrAt(step);
      const K = kernels();
      for (let i = 0; i < params.length; i++) {
        const p = params[i];
        K.adamw(
          p.data,
          grads[i],
          moments[i].m,
          moments[i].v,
          p.data.length,
          lr,
          o.adamBeta1,
          o.adamBeta2,
          o.adamEpsilon,
          decays[i],
          step + 1,
        );
      }
      step++;
      windowLoss += stepLoss;
      windowCount++;
      const evalNow =
        val !== null &&
        val.count > 0 &&
        ((o.evalSteps > 0 && step % o.evalSteps === 0) || step === totalSteps);
      if (evalNow) valLoss = heldOutLoss(model, val!, mb);
      if (step % o.loggingSteps === 0 || step === totalSteps || evalNow) {
        lastTrainLoss = windowLoss / windowCount;
        log.log({
          step,
          loss: Math.round(lastTrainLoss * 1e4) / 1e4,
          learningRate: schedule.lrAt(step),
          epoch: step / perEpoch,
          gradNorm: Math.round(gradNorm * 1e4) / 1e4,
          ...(evalNow ? { evalLoss: Math.round(valLoss! * 1e4) / 1e4 } : {}),
        });
        windowLoss = 0;
        windowCount = 0;
      }
      progress.update(step, { loss: stepLoss, lr, ...(valLoss !== null ? { val: valLoss } : {}) });
      if (o.saveSteps > 0 && step % o.saveSteps === 0 && step < totalSteps) save(step);
      if (io.stopAfter !== undefined && step - startStep >= io.stopAfter && step < totalSteps) {
        interrupted = true;
        break;
      }
    }
  } finally {
    progress.stop();
  }
  if (windowCount > 0) lastTrainLoss = windowLoss / windowCount;
  const seconds = (performance.now() - t0) / 1000;
  const result: PretrainResult = {
    out: o.out,
    config,
    steps: step,
    totalSteps,
    trainLoss: lastTrainLoss,
    valLoss,
    initialValLoss,
    tokensPerStep: o.batchSize * T,
    seconds,
    interrupted,
  };
  if (interrupted) return result;
  if (o.saveSteps > 0) save(step);

  // The HF folder and its recipe.
  const dtype: WriteHfOptions['dtype'] = o.dtype === 'bf16' ? 'BF16' : 'F32';
  const outConfig: ModelConfig = { ...config, torchDtype: o.dtype === 'bf16' ? 'bfloat16' : 'float32' };
  writeHfModel(o.out, outConfig, new MemoryWeights('pretrained', paramTensors(model)), { dtype });
  writeTokenizerFiles(o.out, tokPath, tok, outConfig);
  writeRecipe(o, io.command, {
    config: outConfig,
    dataSha256: corpus.sha256,
    valSha256: valSha,
    tokenizerSha256: tokenizerDigest(tokPath),
    trainDocs: trainDocs.length,
    valDocs: valDocs.length,
    trainTokens: train.stream.length,
    result,
    elapsed: log.elapsed(),
    startStep,
    cpuSeconds: (() => {
      const u = process.cpuUsage(cpu0);
      return (u.user + u.system) / 1e6;
    })(),
  });
  say(
    `pretrain: ${step} updates (${step * o.batchSize * T} tokens) in ${seconds.toFixed(1)} s; train loss ${lastTrainLoss.toFixed(4)}` +
      (valLoss !== null ? `, held-out loss ${valLoss.toFixed(4)}` : '') +
      ` -> ${o.out}`,
  );
  return result;
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
    JSON.stringify({ ...o, dataSha256: r.dataSha256 }, null, 2),
    '```',
    '',
  ];
  writeFileAtomic(join(o.out, 'RECIPE.md'), [lines.join('\n')]);
}
