/**
 * The `eval` step end to end: runs the evaluation harness (runner.ts) on a model (HF folder or
 * llama2.c checkpoint), optionally with a PEFT adapter attached WITHOUT merging (model-lm.ts), and
 * writes one lm-evaluation-harness-shaped results JSON (and, with `samples`, one JSONL of every task's
 * per-sample records, each naming its task). A progress bar per task phase goes to `io.err`; the
 * summary table to `io.out`.
 *
 * - `shots: [0, 8]`: each count runs for every task that takes shots (GSM8K 0-8, MMLU 0-5), results
 *   keyed "<task>_<n>shot" when there are several; other tasks run 0-shot.
 * - `chatFormat: template` wraps prompts with the tokenizer's chat template.
 * - `judge`: see judge-choice.ts.
 * Task names and data files are checked before the model is loaded, so a typo fails at once.
 *
 * The library's `evaluate` (src/api/steps.ts) validates the options and calls `evaluateToFiles`.
 */
import type { OptionsOf } from '../config/parse.js';
import { InputError } from '../errors.js';
import { writeFileAtomic } from '../io/atomic.js';
import { Progress, type ProgressStream } from '../train/progress.js';
import { makeJudge } from './judge-choice.js';
import { loadModelLM } from './model-lm.js';
import { chatTemplateWrap, type ChatFormat } from './prompt.js';
import { lmEvalSampleLine, writeResults, type ResultsJson, type TaskResult } from './results.js';
import { defaultDataDir, parseTaskSpec, runEval, type EvalOptions, type ProgressEvent } from './runner.js';
import { summaryTable } from './summary-table.js';

type EvalOpts = OptionsOf<'eval'>;

/** Where the run writes: the summary table (stdout in the CLI), progress (stderr). */
export interface EvalIO {
  out: { write(s: string): unknown };
  err: ProgressStream;
}

/** Tasks whose prompts take shots (the others always run 0-shot). */
const SHOT_TASKS = new Set(['gsm8k', 'gsm8k_cot', 'mmlu']);

/** `shots` as the runner's option: one count for all shot-taking tasks, or a list per such task. */
export function shotsOption(
  tasks: readonly string[],
  shots: readonly number[] | undefined,
  dataDir: string,
): EvalOptions['shots'] {
  if (shots === undefined || shots.length === 0) return undefined;
  if (shots.length === 1) return shots[0];
  const per: Record<string, number[]> = {};
  for (const t of tasks) {
    const spec = parseTaskSpec(t, dataDir, {});
    if (SHOT_TASKS.has(spec.base)) per[spec.name] = [...shots];
  }
  return per;
}

/** Progress bars, one per (task, phase), replaced as the run moves on. */
class EvalProgress {
  private bar: Progress | null = null;
  private key = '';
  constructor(
    private readonly err: ProgressStream,
    private readonly on: boolean,
  ) {}

  update(e: ProgressEvent): void {
    if (!this.on) return;
    const key = `${e.task} ${e.phase}`;
    if (key !== this.key) {
      this.bar?.stop();
      this.key = key;
      this.bar = new Progress({ label: key, total: e.total, stream: this.err });
    }
    this.bar!.update(e.done);
  }

  stop(): void {
    this.bar?.stop();
    this.bar = null;
  }
}

/** Every task's samples as one JSONL, each record (in lm-eval's saved form) led by its task name. */
export function writeAllSamples(path: string, tasks: readonly TaskResult[]): void {
  writeFileAtomic(
    path,
    tasks.flatMap((t) =>
      t.samples.map((s) => JSON.stringify({ task: t.task, ...lmEvalSampleLine(s) }) + '\n'),
    ),
  );
}

/** Checks the tasks, loads the model (+ adapter), runs the tasks and writes the results (and samples). */
export async function evaluateToFiles(
  o: EvalOpts,
  io: EvalIO = { out: process.stdout, err: process.stderr },
): Promise<ResultsJson> {
  const dataDir = o.dataDir ?? defaultDataDir();
  // unknown tasks and subjects fail here, before a possibly long model load
  for (const t of o.tasks) parseTaskSpec(t, dataDir, {});
  if (o.out === o.samples) throw new InputError('--samples', `is the same file as --out (${o.out})`);
  const shots = shotsOption(o.tasks, o.shots, dataDir);

  const { lm, info } = loadModelLM(o.model, { adapter: o.adapter, tokenizer: o.tokenizer });
  let chatFormat: ChatFormat = o.chatFormat === 'template' ? 'plain' : o.chatFormat;
  if (o.chatFormat === 'template') {
    if (lm.tokenizer.chatTemplate === null) {
      throw new InputError(
        o.tokenizer ?? o.model,
        'the tokenizer has no chat template (tokenizer_config.json "chat_template"); use --chat-format tulu or plain',
      );
    }
    chatFormat = chatTemplateWrap(lm.tokenizer);
  }
  const judge = await makeJudge(o);

  const progress = new EvalProgress(io.err, o.progress);
  let run;
  try {
    run = await runEval(
      lm,
      {
        tasks: o.tasks,
        shots,
        limit: o.limit,
        seed: o.seed,
        batchSize: o.batchSize,
        chatFormat,
        dataDir,
        maxNewTokens: o.maxNewTokens,
        judge,
        allowCodeExecution: o.allowCodeExecution,
        humaneval: {
          samples: o.humanevalSamples,
          temperature: o.humanevalTemperature,
          exec: { sandbox: o.sandbox },
        },
        modelInfo: {
          path: info.model,
          format: info.format,
          parameters: info.parameters,
          adapter: info.adapter,
          adapter_modules: info.adapterModules,
          adapter_applied: info.adapter === null ? null : 'unmerged LoRA (W x + alpha/r B A x)',
          tokenizer: o.tokenizer ?? null,
        },
      },
      (e) => progress.update(e),
    );
  } finally {
    progress.stop();
  }
  // samples first, results last (each atomically): a results.json on disk means the run is complete
  if (o.samples !== undefined) writeAllSamples(o.samples, run.tasks);
  writeResults(o.out, run.results);
  io.out.write(summaryTable(run.results) + '\n');
  io.err.write(`results: ${o.out}${o.samples !== undefined ? `\nsamples: ${o.samples}` : ''}\n`);
  return run.results;
}
