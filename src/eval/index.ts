/** The evaluation harness's public surface (see runner.ts for the task list). */
export type {
  EvalLM,
  GenerateRequest,
  LoglikelihoodRequest,
  LoglikelihoodResult,
  RollingRequest,
  RollingResult,
} from './lm.js';
export { ModelLM, type ModelLMOptions } from './model-lm.js';
export {
  runEval,
  defaultDataDir,
  KNOWN_TASKS,
  type EvalOptions,
  type EvalRun,
  type ProgressEvent,
} from './runner.js';
export {
  buildResults,
  writeEvalOutputs,
  writeResults,
  writeSamplesJsonl,
  type ResultsJson,
  type TaskResult,
  type Metric,
  type SampleRecord,
} from './results.js';
export { LocalJudge, OpenAIJudge, type Judge, type JudgeRequest, type Verdict } from './judge.js';
export { tuluWrap, chatTemplateWrap, type ChatFormat, type ChatWrap } from './prompt.js';
export {
  runPythonProgram,
  networkIsolationAvailable,
  DEFAULT_EXEC_LIMITS,
  type ExecLimits,
  type ExecOptions,
  type ExecResult,
} from './execute.js';
export { passAtK } from './tasks/humaneval.js';
export { rougeL, exactMatch } from './rouge.js';
export { porterStem } from './porter.js';
