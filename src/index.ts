/**
 * `import { ... } from 'nuggets'`: the library API (docs/api.md). One function per step of
 * docs/method.md, each taking the options of the matching command as an object (the `*Input` types:
 * options with a default may be left out) and returning what the step produced. Bad input throws an
 * InputError naming the option or file at fault.
 */
export {
  sense,
  senseMerge,
  extract,
  train,
  distillData,
  merge,
  evaluate,
  serve,
  loadModel,
  generate,
  pretrain,
  runExperiment,
  report,
  type SenseShardOptions,
  type ExtractExtraOptions,
  type MergeResult,
  type LoadedModel,
  type GenerateExtraOptions,
  type RunExperimentOptions,
  type ReportOptions,
} from './api/steps.js';

export {
  DEFAULT_SEED,
  MODULE_NAMES,
  COMMAND_SCHEMAS,
  type CommandName,
  type SenseInput,
  type SenseMergeInput,
  type ExtractInput,
  type TrainInput,
  type DistillDataInput,
  type EvalInput,
  type GenerateInput,
  type MergeInput,
  type ServeInput,
  type PretrainInput,
  type SenseOptions,
  type SenseMergeOptions,
  type ExtractOptions,
  type TrainOptions,
  type DistillDataOptions,
  type EvalOptionsConfig as EvalOptions,
  type GenerateOptions,
  type MergeOptions,
  type ServeOptions,
  type PretrainOptionsConfig as PretrainOptions,
} from './config/schemas.js';
export { parseOptions, type InputOf, type OptionsOf } from './config/parse.js';
export { InputError } from './errors.js';

// What the steps return, and the pieces a caller works with after loading a model.
export type { SensSummary } from './transfer/sense/summary.js';
export type { ExtractResult } from './transfer/extract.js';
export type { RunTrainContext, RunTrainResult } from './train/run.js';
export type { MergeContext } from './train/merge.js';
export type { PretrainIo, PretrainResult } from './train/pretrain/options.js';
export type { ResultsJson } from './eval/results.js';
export type { ServeHandle } from './serve/start.js';
export type { GenerateTextResult as GenerateResult } from './eval/generate-text.js';
export type { RunSummary } from './study/runner.js';
export type { LlamaModel } from './model/model.js';
export type { Tokenizer } from './model/tokenizer.js';
export type { ModelConfig } from './model/config.js';
export {
  generate as generateTokens,
  type GenerateOptions as GenerateTokensOptions,
} from './model/generate.js';
