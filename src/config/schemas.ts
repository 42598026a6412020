/**
 * One schema per command: option names, types, defaults and help text. The same schema makes the
 * command-line flags (src/config/cli.ts) and validates config files (src/config/file.ts), so the two
 * cannot drift apart. Defaults are the paper's / reference code's (docs/method.md steps 1-6, the
 * reference's train.sh and finetune.py); where the reference has none, HF Trainer's defaults.
 */
import { z } from 'zod';
import { bool, int, num, oneOf, path, str, type CommandSchema } from './fields.js';

/** LoRA target modules and the groups the CLI accepts (docs/method.md "modules" axis). */
export const MODULE_NAMES = [
  'q_proj',
  'k_proj',
  'v_proj',
  'o_proj',
  'gate_proj',
  'up_proj',
  'down_proj',
  'embed_tokens',
  'lm_head',
  'all',
  'attention',
  'mlp',
  'ffn',
  'embedding',
] as const;

const modules = (description: string) =>
  z.array(z.enum(MODULE_NAMES)).min(1).default(['all']).describe(description);

/** How examples are turned into token sequences (shared by sense and train). */
const dataFields = {
  chatFormat: oneOf(
    ['tulu', 'template'],
    "prompt format: the paper's Tulu format, or the tokenizer's chat template",
  ).default('tulu'),
  maxLength: int('maximum tokens per example (BOS and EOS included)').min(2).default(2048),
  overflow: oneOf(
    ['truncate', 'refuse'],
    'examples longer than --max-length: cut the end (the reference), or refuse them, listing their lines',
  ).default('truncate'),
};

/**
 * The seed every command uses when none is given (extract, train, eval, generate, pretrain): one
 * number, so that "the default seed" means the same run everywhere.
 */
export const DEFAULT_SEED = 42;

const tokenizer = path(
  'tokenizer file or folder when the model has none beside it (llama2.c tokenizer.bin)',
).optional();

/** `nuggets sense`: docs/method.md step 1. */
export const senseSchema = z
  .object({
    teacher: path('teacher model: a Hugging Face folder or a llama2.c checkpoint'),
    seeds: path('seed examples (JSONL: {"messages"}, {"prompt","answer"}, {"question","answer"}, ...)'),
    out: path('sensitivity file to write (.safetensors); a JSON summary is written beside it'),
    tokenizer,
    numSeeds: int('use the first k seed examples').min(1).default(32),
    maxLineKb: int(
      'longest seed line in KiB (Ki characters); a longer line is refused before it is parsed or tokenised',
    )
      .min(1)
      .default(4096),
    dtype: oneOf(
      ['f32', 'bf16', 'f16'],
      "storage precision of the sensitivity file (computed in fp32 either way; f16's range is narrow, bf16 is safer)",
    ).default('f32'),
    ...dataFields,
    shard: str(
      'process only slice i of n of the seeds, "i/n" with 0 <= i < n (merge the shards with "sense merge")',
    )
      .regex(/^\d+\/[1-9]\d*$/, 'must look like "i/n", e.g. "0/4"')
      .optional(),
    streaming: bool(
      'run layer by layer so that peak memory is about one layer (off: whole model in memory)',
    ).default(true),
    spill: oneOf(
      ['auto', 'always', 'never'],
      "streaming: keep the seeds' hidden states at layer boundaries in scratch files, not memory (auto: when they exceed 1 GiB)",
    ).default('auto'),
    scratchDir: path(
      'folder for the spilled hidden states (default: beside --out); needs (layers + 1) x tokens x hidden x 4 bytes free',
    ).optional(),
    progress: bool('show a progress bar (plain lines when stderr is not a terminal)').default(true),
  })
  .strict();

/** `nuggets sense merge`: sums shard files. */
export const senseMergeSchema = z
  .object({
    inputs: z
      .array(path('a shard file'))
      .min(1)
      .describe('shard sensitivity files written by "sense --shard i/n" (comma separated)'),
    out: path('merged sensitivity file to write'),
    dtype: oneOf(['f32', 'bf16', 'f16'], 'storage precision of the merged file').default('f32'),
  })
  .strict();

/** `nuggets extract`: docs/method.md steps 2-4 and the controls. */
export const extractSchema = z
  .object({
    teacher: path(
      'teacher model (HF folder or llama2.c checkpoint), or "self" to use the student as its own teacher',
      ['self'],
    ),
    student: path('student model (HF folder or llama2.c checkpoint)'),
    sensitivity: path(
      'sensitivity file from "nuggets sense" (not needed for --init lora or pissa)',
    ).optional(),
    out: path('initialisation folder to write (PEFT adapter + manifest.json)'),
    layers: oneOf(
      ['sensitivity', 'first', 'last', 'random'],
      'which teacher layers feed the student',
    ).default('sensitivity'),
    structure: oneOf(
      ['block', 'rowcol', 'elements', 'random'],
      'what is cut from each teacher matrix',
    ).default('block'),
    heads: bool('keep attention windows on head boundaries (and key/value groups for GQA)').default(false),
    modules: modules(
      'modules to initialise: names or groups (all, attention, mlp, embedding, lm_head), comma separated',
    ),
    rank: int('LoRA rank r').min(1).default(16),
    alpha: num(
      'LoRA alpha (scale alpha/r; the init is divided by the scale so that scale*B*A is the rank-r approximation)',
    )
      .positive()
      .default(16),
    svd: oneOf(
      ['auto', 'exact', 'randomized'],
      'truncated SVD method (auto: exact up to 1024 on the smaller side, randomized above)',
    ).default('auto'),
    init: oneOf(
      ['teacher', 'lora', 'pissa', 'random-matched'],
      'teacher factors (the method), or a control: PEFT default, PiSSA, random of matched norm',
    ).default('teacher'),
    seed: int('seed for the random choices (random layers/structure/init)').default(DEFAULT_SEED),
    dtype: oneOf(['f32', 'f16', 'bf16'], 'storage precision of the adapter factors').default('f32'),
  })
  .strict();

/** `nuggets train`: docs/method.md steps 5-6 (inject the init, LoRA fine-tune). */
export const trainSchema = z
  .object({
    student: path('student model (HF folder or llama2.c checkpoint)'),
    data: path('training examples (JSONL)'),
    out: path('output folder (adapter, checkpoints, trainer_log.jsonl)'),
    init: path(
      'initialisation folder from "nuggets extract" (subtract trick: W - B0*A0, LoRA starts at B0, A0)',
    ).optional(),
    loraInit: oneOf(
      ['default', 'pissa'],
      'LoRA init when no --init folder is given: PEFT default (B = 0) or PiSSA',
    ).default('default'),
    tokenizer,
    evalData: path('held-out examples (JSONL) whose loss is reported each epoch').optional(),
    valSize: num(
      'held-out examples split off the training data instead: a count, or a fraction below 1 (0: none)',
    )
      .min(0)
      .default(0),
    epochs: int('training epochs').min(1).default(3),
    learningRate: num('peak learning rate (AdamW)').positive().default(3e-4),
    batchSize: int('effective batch size (examples per optimizer update)').min(1).default(64),
    microBatchSize: int('examples per forward/backward; gradients are accumulated up to --batch-size')
      .min(1)
      .default(8),
    scheduler: oneOf(['linear', 'cosine', 'constant'], 'learning-rate schedule after warmup').default(
      'linear',
    ),
    warmupRatio: num('share of the updates spent warming up (warmup steps = ceil(ratio * total))')
      .min(0)
      .max(1)
      .default(0.03),
    weightDecay: num('AdamW decoupled weight decay').min(0).default(0),
    adamBeta1: num('AdamW beta1').min(0).lt(1).default(0.9),
    adamBeta2: num('AdamW beta2').min(0).lt(1).default(0.999),
    adamEpsilon: num('AdamW epsilon').positive().default(1e-8),
    maxGradNorm: num('clip the global gradient norm to this (0: no clipping)').min(0).default(1),
    rank: int('LoRA rank r (must match the --init folder when given)').min(1).default(16),
    alpha: num('LoRA alpha (scale alpha/r)').positive().default(16),
    dropout: num('LoRA dropout').min(0).lt(1).default(0.05),
    modules: modules(
      'modules that get LoRA: names or groups (all, attention, mlp, embedding, lm_head), comma separated',
    ),
    ...dataFields,
    seed: int('seed for data order, dropout and LoRA init').default(DEFAULT_SEED),
    loggingSteps: int('write a trainer_log.jsonl line every N updates').min(1).default(10),
    saveSteps: int('save a checkpoint every N updates (0: only at the end of each epoch)').min(0).default(0),
    keepCheckpoints: int('keep the newest N checkpoints').min(1).default(10),
    resume: bool('continue from the newest checkpoint in the output folder').default(false),
    resumeFrom: path('continue from this checkpoint folder').optional(),
    dtype: oneOf(['f32', 'f16', 'bf16'], 'storage precision of the saved adapter').default('f32'),
    gradientCheckpointing: bool(
      'activation checkpointing per decoder layer: keep layer inputs, recompute the rest in backward (same gradients, ~1/3 more compute, far less memory at long sequences)',
    ).default(false),
    progress: bool('show a progress bar (plain lines when stderr is not a terminal)').default(true),
    kdTeacher: path(
      'logit distillation: train on (1 - lambda)*CE + lambda*T^2*KL(teacher || student) over answer tokens, with this teacher (same tokenizer as the student)',
    ).optional(),
    kdLambda: num('weight lambda of the distillation term (0: plain cross-entropy)')
      .min(0)
      .max(1)
      .default(0.5),
    kdTemperature: num('softmax temperature T of the distillation term').positive().default(2),
    kdCache: path(
      'folder of the teacher-logit cache (built once, reused while data and teacher are unchanged; default: <out>/kd-cache). Size: answer tokens x vocabulary x 2 bytes',
    ).optional(),
    kdCacheDtype: oneOf(['f16', 'bf16'], 'precision of the cached teacher logits').default('f16'),
    kdTopK: int(
      'cache only the k largest teacher logits per answer token (k x 6 bytes instead of V x 2); the teacher distribution becomes its top k renormalised (0: all)',
    )
      .min(0)
      .default(0),
  })
  .strict()
  .refine((o) => o.microBatchSize <= o.batchSize, {
    message: 'must not exceed --batch-size',
    path: ['microBatchSize'],
  });

/** `nuggets eval`: benchmarks (docs/formats.md "Benchmarks"). */
export const evalSchema = z
  .object({
    model: path('model to evaluate (HF folder or llama2.c checkpoint)'),
    adapter: path('LoRA adapter folder to apply (PEFT format)').optional(),
    tokenizer,
    tasks: z
      .array(str('a task'))
      .min(1)
      .describe(
        'tasks, comma separated: gsm8k, gsm8k_cot, mmlu, mmlu_stem (and the other lm-eval MMLU groups), mmlu_<subject>, super_ni:<file>, alpaca_eval, humaneval, perplexity:<file>',
      ),
    out: path('results JSON to write'),
    shots: z
      .array(int('a shot count').min(0))
      .optional()
      .describe(
        'few-shot counts, comma separated (each is run; default per task: gsm8k 5, gsm8k_cot 8, mmlu 0)',
      ),
    limit: int('evaluate only the first N samples of each task').min(1).optional(),
    chatFormat: oneOf(
      ['plain', 'tulu', 'template'],
      'prompt wrapping: task prompts as is, the Tulu chat turn, or the chat template',
    ).default('tulu'),
    batchSize: int('requests per model call (generation runs them as one left-padded batch)')
      .min(1)
      .default(8),
    maxNewTokens: int('generation budget per sample (default per task)').min(1).optional(),
    dataDir: path('folder with the benchmark data (gsm8k/, mmlu/, humaneval/...)').optional(),
    samples: path('per-sample JSONL file to write (every task; each record names its task)').optional(),
    judge: str(
      'pairwise judge for alpaca_eval: a local model (folder or llama2.c file), or an OpenAI-compatible URL (e.g. a "nuggets serve")',
    ).optional(),
    judgeModel: str(
      'model name to ask at the judge URL (default: the first one its /v1/models lists)',
    ).optional(),
    judgeApiKeyEnv: str("name of the environment variable holding the judge URL's API key").optional(),
    allowCodeExecution: bool(
      'run model-written HumanEval code, each program in a bubblewrap sandbox (docs/security.md)',
    ).default(false),
    sandbox: bool(
      'run HumanEval code inside bubblewrap; --no-sandbox runs it unconfined as your user (unsafe; only when bwrap cannot work here)',
    ).default(true),
    humanevalSamples: int(
      'HumanEval completions per problem: pass@k is reported for k in 1, 10, 100 up to this',
    )
      .min(1)
      .default(1),
    humanevalTemperature: num(
      'HumanEval sampling temperature (default: 0, greedy, for 1 sample; 0.8 for more)',
    )
      .min(0)
      .optional(),
    seed: int('seed for sampling and shot selection').default(DEFAULT_SEED),
    progress: bool('show a progress bar (plain lines when stderr is not a terminal)').default(true),
  })
  .strict();

/** `nuggets generate`: text from a model (+ adapter). */
export const generateSchema = z
  .object({
    model: path('model (HF folder or llama2.c checkpoint)'),
    adapter: path('LoRA adapter folder to apply (PEFT format)').optional(),
    tokenizer,
    prompt: str('prompt text (empty: start from BOS)').default(''),
    chatFormat: oneOf(
      ['plain', 'tulu', 'template'],
      'wrap the prompt as a chat turn (tulu, template) or not (plain)',
    ).default('plain'),
    maxNewTokens: int('tokens to generate at most').min(1).default(256),
    temperature: num('sampling temperature (0: greedy)').min(0).default(0),
    topP: num('nucleus sampling: keep the smallest set of tokens with this much probability')
      .gt(0)
      .max(1)
      .default(1),
    topK: int('sample only among the K most likely tokens (0: all)').min(0).default(0),
    seed: int('sampling seed').default(DEFAULT_SEED),
    stream: bool('print tokens as they are generated').default(true),
  })
  .strict();

/** `nuggets distill-data`: the teacher's answers to the training prompts (sequence-level distillation). */
export const distillDataSchema = z
  .object({
    teacher: path('teacher model that answers (HF folder or llama2.c checkpoint)'),
    data: path('training examples (JSONL) whose prompts the teacher answers'),
    out: path('JSONL file to write: the rows with the teacher answer as the last assistant message'),
    tokenizer,
    chatFormat: dataFields.chatFormat,
    maxNewTokens: int('answer budget in tokens').min(1).default(256),
    temperature: num('sampling temperature (0: greedy)').min(0).default(0),
    topP: num('nucleus sampling: keep the smallest set of tokens with this much probability')
      .gt(0)
      .max(1)
      .default(1),
    topK: int('sample only among the K most likely tokens (0: all)').min(0).default(0),
    seed: int('sampling seed (each row samples from its own seed derived from it)').default(DEFAULT_SEED),
    batchSize: int('prompts per generation batch').min(1).default(8),
  })
  .strict();

/** `nuggets serve`: an OpenAI-compatible HTTP server for a model (+ adapter). */
export const serveSchema = z
  .object({
    model: path('model to serve (HF folder or llama2.c checkpoint)'),
    adapter: path('LoRA adapter folder to apply, unmerged (PEFT format)').optional(),
    tokenizer,
    host: str('address to listen on; anything but loopback exposes the model to the network')
      .min(1)
      .default('127.0.0.1'),
    port: int('TCP port (0: any free port; the URL is printed)').min(0).max(65535).default(8000),
    servedModelName: str(
      'model name clients send and /v1/models lists (default: the model file or folder name)',
    )
      .min(1)
      .optional(),
    chatFormat: oneOf(
      ['auto', 'tulu', 'template'],
      "chat prompts: the tokenizer's chat template when it has one, else tulu (auto)",
    ).default('auto'),
    maxQueue: int('requests that may wait for the model; more are answered 429').min(0).default(16),
    maxBodyKb: int('largest request body in KiB; larger ones are answered 413').min(1).default(1024),
    maxChoices: int('most choices (prompts x n) per request').min(1).default(64),
    apiKeyEnv: str(
      'environment variable holding an API key that clients must send as "Authorization: Bearer <key>"',
    )
      .min(1)
      .optional(),
    allowedHosts: str(
      'extra host names, comma separated, that requests may address when bound to loopback (besides localhost, 127.0.0.1, [::1]); other Host headers are refused',
    ).optional(),
  })
  .strict();

/** `nuggets pretrain`: full-parameter LM training from scratch or continued (src/train/pretrain.ts). */
export const pretrainSchema = z
  .object({
    data: path('training text: .jsonl(.gz) rows {"text"} (one document each) or a plain text file'),
    out: path(
      'Hugging Face model folder to write (config.json, model.safetensors, tokenizer files, RECIPE.md)',
    ),
    tokenizer: path(
      "tokenizer (tokenizer.bin, tokenizer.json or a folder); default: the --init model's",
    ).optional(),
    init: path(
      'continue training this model (HF folder or llama2.c checkpoint) instead of a random init',
    ).optional(),
    modelConfig: path('architecture from an HF config.json (instead of the size flags)').optional(),
    hiddenSize: int('hidden size d').min(1).optional(),
    numLayers: int('decoder layers').min(1).optional(),
    numHeads: int('attention heads').min(1).optional(),
    numKvHeads: int('key/value heads (grouped-query attention; default: --num-heads)').min(1).optional(),
    intermediateSize: int('MLP width').min(1).optional(),
    headDim: int('per-head width (default: hidden size / heads)').min(2).optional(),
    maxPositionEmbeddings: int('context length written to config.json (default: max(seq len, 256))')
      .min(2)
      .optional(),
    ropeTheta: num('RoPE base (default 10000)').positive().optional(),
    rmsNormEps: num('RMSNorm epsilon (default 1e-5)').positive().optional(),
    tieWordEmbeddings: bool('tie lm_head to the embedding (default: untied)').optional(),
    docSplit: oneOf(
      ['blank-line', 'line', 'none'],
      'plain text files: documents are separated by blank lines, by lines, or the file is one document',
    ).default('blank-line'),
    eos: bool('append EOS to every document (llama2.c does not)').default(false),
    seqLen: int('tokens per training sequence (documents are packed, BOS before each)').min(2).default(128),
    valData: path('held-out text file (default: a seeded --val-fraction of the documents)').optional(),
    valFraction: num('share of the documents held out for the held-out loss (0: none)')
      .min(0)
      .lt(1)
      .default(0.05),
    epochs: int('passes over the training sequences').min(1).default(1),
    maxSteps: int('stop after this many updates (0: run the epochs)').min(0).default(0),
    batchSize: int('sequences per optimizer update').min(1).default(32),
    microBatchSize: int('sequences per forward/backward (must divide --batch-size)').min(1).default(8),
    learningRate: num('peak learning rate (AdamW)').positive().default(1e-3),
    scheduler: oneOf(['linear', 'cosine', 'constant'], 'learning-rate schedule after warmup').default(
      'cosine',
    ),
    warmupSteps: int('warmup updates').min(0).default(20),
    weightDecay: num('AdamW decoupled weight decay on matrices (not on norms)').min(0).default(0.1),
    adamBeta1: num('AdamW beta1').min(0).lt(1).default(0.9),
    adamBeta2: num('AdamW beta2').min(0).lt(1).default(0.95),
    adamEpsilon: num('AdamW epsilon').positive().default(1e-8),
    maxGradNorm: num('clip the global gradient norm to this (0: no clipping)').min(0).default(1),
    initStd: num('std of the random init (residual output projections get std/sqrt(2*layers))')
      .positive()
      .default(0.02),
    seed: int('seed for the init, the held-out split and the data order').default(DEFAULT_SEED),
    evalSteps: int('held-out loss every N updates (0: only at the end)').min(0).default(0),
    loggingSteps: int('write a trainer_log.jsonl line every N updates').min(1).default(10),
    saveSteps: int('save a checkpoint every N updates (0: none)').min(0).default(0),
    keepCheckpoints: int('keep the newest N checkpoints').min(1).default(2),
    checkpointDir: path('checkpoint folder (default: <out>/checkpoints)').optional(),
    resume: bool('continue from the newest checkpoint').default(false),
    resumeFrom: path('continue from this checkpoint folder').optional(),
    dtype: oneOf(['f32', 'bf16'], 'storage precision of the written model').default('f32'),
    maxShardSize: str(
      'split the written weights into shards of at most this size, as HF does (5GB, 20MB)',
    ).default('5GB'),
    gradientCheckpointing: bool(
      'activation checkpointing per decoder layer: keep layer inputs, recompute the rest in backward (same result, less memory)',
    ).default(false),
    progress: bool('show a progress bar (plain lines when stderr is not a terminal)').default(true),
  })
  .strict()
  .refine((o) => o.batchSize % o.microBatchSize === 0, {
    message: 'must divide --batch-size',
    path: ['microBatchSize'],
  });

/** `nuggets merge`: W_final = W_s - B0*A0 + B1*A1 (docs/method.md step 7) into an HF folder. */
export const mergeSchema = z
  .object({
    student: path('the untouched student model (HF folder or llama2.c checkpoint)'),
    adapter: path('trained adapter folder from "nuggets train"'),
    out: path('merged Hugging Face model folder to write'),
    tokenizer,
    dtype: oneOf(['f32', 'f16', 'bf16'], 'storage precision of the merged weights').default('f32'),
    maxShardSize: str(
      'split the weights into shards of at most this size, as HF does (5GB, 500MB, 2GiB)',
    ).default('5GB'),
    force: bool(
      'replace an existing output folder (it is replaced only once the new one is complete)',
    ).default(false),
  })
  .strict();

/** `nuggets export gguf`: a model (+ adapter, merged) as one GGUF file for llama.cpp (docs/gguf.md). */
export const exportGgufSchema = z
  .object({
    model: path('model to export (HF folder or llama2.c checkpoint)'),
    adapter: path('LoRA adapter folder (PEFT format) merged into the model before export').optional(),
    tokenizer,
    out: path('GGUF file to write'),
    outtype: oneOf(
      ['f32', 'f16', 'bf16', 'q8_0'],
      'tensor type of the matrices (norms stay f32; q8_0 rows that are not whole 32-blocks fall back to f16)',
    ).default('f16'),
    name: str('general.name written into the file (default: the model folder or file name)').optional(),
    force: bool('overwrite an existing output file').default(false),
  })
  .strict();

/** `nuggets export gguf-lora`: a PEFT adapter as a GGUF LoRA file llama.cpp applies at run time. */
export const exportGgufLoraSchema = z
  .object({
    adapter: path('LoRA adapter folder (PEFT format)'),
    base: path('the model the adapter loads on (HF folder or llama2.c checkpoint), for its architecture'),
    out: path('GGUF LoRA file to write'),
    outtype: oneOf(['f32', 'f16', 'bf16'], 'tensor type of the LoRA factors').default('f32'),
    name: str('general.name written into the file (default: the adapter folder name)').optional(),
    force: bool('overwrite an existing output file').default(false),
  })
  .strict();

/** Options as validated (defaults applied): what the steps receive. */
export type SenseOptions = z.infer<typeof senseSchema>;
export type SenseMergeOptions = z.infer<typeof senseMergeSchema>;
export type ExtractOptions = z.infer<typeof extractSchema>;
export type TrainOptions = z.infer<typeof trainSchema>;
export type EvalOptionsConfig = z.infer<typeof evalSchema>;
export type GenerateOptions = z.infer<typeof generateSchema>;
export type DistillDataOptions = z.infer<typeof distillDataSchema>;
export type MergeOptions = z.infer<typeof mergeSchema>;
export type ServeOptions = z.infer<typeof serveSchema>;
export type PretrainOptionsConfig = z.infer<typeof pretrainSchema>;
export type ExportGgufOptions = z.infer<typeof exportGgufSchema>;
export type ExportGgufLoraOptions = z.infer<typeof exportGgufLoraSchema>;

/** Options as a caller passes them (fields with a default may be left out): z.input of each schema. */
export type SenseInput = z.input<typeof senseSchema>;
export type SenseMergeInput = z.input<typeof senseMergeSchema>;
export type ExtractInput = z.input<typeof extractSchema>;
export type TrainInput = z.input<typeof trainSchema>;
export type DistillDataInput = z.input<typeof distillDataSchema>;
export type EvalInput = z.input<typeof evalSchema>;
export type GenerateInput = z.input<typeof generateSchema>;
export type MergeInput = z.input<typeof mergeSchema>;
export type ServeInput = z.input<typeof serveSchema>;
export type PretrainInput = z.input<typeof pretrainSchema>;

/** Every command schema by command name (config files may hold a section per command). */
export const COMMAND_SCHEMAS = {
  sense: senseSchema,
  'sense-merge': senseMergeSchema,
  extract: extractSchema,
  train: trainSchema,
  eval: evalSchema,
  generate: generateSchema,
  'distill-data': distillDataSchema,
  merge: mergeSchema,
  serve: serveSchema,
  pretrain: pretrainSchema,
  'export-gguf': exportGgufSchema,
  'export-gguf-lora': exportGgufLoraSchema,
} satisfies Record<string, CommandSchema>;

export type CommandName = keyof typeof COMMAND_SCHEMAS;
