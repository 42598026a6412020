/**
 * `nuggets eval <model> --tasks gsm8k,mmlu,... --out results.json`: runs the evaluation harness
 * (src/eval/runner.ts) on a model (HF folder or llama2.c checkpoint), optionally with a PEFT adapter
 * attached WITHOUT merging (src/eval/model-lm.ts), and writes one lm-evaluation-harness-shaped
 * results JSON (and, with --samples, one JSONL of every task's per-sample records, each naming its
 * task). A progress bar per task phase goes to stderr (plain lines when stderr is not a terminal);
 * a summary table goes to stdout.
 *
 * Options come from the `eval` schema (flags and YAML alike), plus `--output` (= --out).
 * - `--shots 0,8`: each count runs for every task that takes shots (GSM8K 0-8, MMLU 0-5), results
 *   keyed "<task>_<n>shot" when there are several; other tasks run 0-shot.
 * - `--chat-format template` wraps prompts with the tokenizer's chat template.
 * - `--judge`: for alpaca_eval_proxy, a URL of an OpenAI-compatible server (a `nuggets serve`, vLLM,
 *   a hosted API; key from the variable named by --judge-api-key-env; the model name from
 *   --judge-model, else the first one the server lists), or a path to a local model.
 * Task names and data files are checked before the model is loaded, so a typo fails at once.
 */
import { Option, type Command } from 'commander';
import { InputError } from '../errors.js';
import { addSchemaOptions, foldAlias, resolveOptions, type OptionsOf } from '../config/cli.js';
import { writeFileAtomic } from '../io/atomic.js';
import { loadModelLM } from '../eval/model-lm.js';
import { chatTemplateWrap, type ChatFormat } from '../eval/prompt.js';
import { chatCompletionsUrl, LocalJudge, OpenAIJudge, type Judge } from '../eval/judge.js';
import {
  defaultDataDir,
  parseTaskSpec,
  runEval,
  type EvalOptions,
  type ProgressEvent,
} from '../eval/runner.js';
import { lmEvalSampleLine, writeResults, type ResultsJson, type TaskResult } from '../eval/results.js';
import { Progress, type ProgressStream } from '../train/progress.js';
import { evaluate } from '../api/steps.js';

type EvalCliOpts = OptionsOf<'eval'>;

/** Where the command writes: stdout for the summary, stderr for progress. */
export interface EvalIO {
  out: { write(s: string): unknown };
  err: ProgressStream;
}

/** Tasks whose prompts take shots (the others always run 0-shot). */
const SHOT_TASKS = new Set(['gsm8k', 'gsm8k_cot', 'mmlu']);

/** --shots as the runner's option: one count for all shot-taking tasks, or a list per such task. */
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

/** The judge's model name: the first one its server lists at /v1/models. */
async function firstServedModel(url: string, apiKeyEnv: string | undefined): Promise<string> {
  const models = chatCompletionsUrl(url).replace(/\/chat\/completions$/, '/models');
  const headers: Record<string, string> = {};
  if (apiKeyEnv !== undefined) {
    const key = process.env[apiKeyEnv];
    if (!key)
      throw new InputError(`environment variable ${apiKeyEnv}`, 'is not set; it must hold the judge API key');
    headers.authorization = `Bearer ${key}`;
  }
  let res: Response;
  try {
    res = await fetch(models, { headers, signal: AbortSignal.timeout(30_000) });
  } catch (e) {
    throw new InputError('--judge', `cannot reach ${models}: ${(e as Error).message}`);
  }
  const text = await res.text();
  if (!res.ok)
    throw new InputError('--judge', `${models} answered HTTP ${res.status}: ${text.slice(0, 200)}`);
  let id: unknown;
  try {
    id = (JSON.parse(text) as { data?: { id?: unknown }[] }).data?.[0]?.id;
  } catch {
    /* reported below */
  }
  if (typeof id !== 'string')
    throw new InputError('--judge', `${models} lists no model; give the name with --judge-model`);
  return id;
}

async function makeJudge(o: EvalCliOpts): Promise<Judge | undefined> {
  if (o.judge === undefined) return undefined;
  if (/^https?:\/\//i.test(o.judge)) {
    const model = o.judgeModel ?? (await firstServedModel(o.judge, o.judgeApiKeyEnv));
    return new OpenAIJudge({ url: o.judge, model, apiKeyEnv: o.judgeApiKeyEnv });
  }
  const { lm } = loadModelLM(o.judge, { name: `judge:${o.judge}` });
  return new LocalJudge(lm, { batchSize: o.batchSize });
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

function fmt(v: unknown): string {
  if (typeof v !== 'number') return String(v);
  return Number.isInteger(v) ? String(v) : v.toFixed(4);
}

/** lm-eval's summary table: one row per task and metric. */
export function summaryTable(results: ResultsJson): string {
  const rows: string[][] = [['Tasks', 'Version', 'Filter', 'n-shot', 'Metric', 'Value', 'Stderr']];
  for (const [task, r] of Object.entries(results.results)) {
    for (const [k, v] of Object.entries(r)) {
      if (k === 'alias' || k.includes('_stderr,')) continue;
      const [metric, filter] = k.split(',');
      const se = r[`${metric}_stderr,${filter}`];
      rows.push([
        task,
        String(results.versions[task] ?? ''),
        filter,
        String(results['n-shot'][task] ?? ''),
        metric,
        fmt(v),
        se === undefined || se === 'N/A' ? 'N/A' : `± ${fmt(se)}`,
      ]);
    }
  }
  const w = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)));
  const line = (r: string[]) => `|${r.map((c, i) => ` ${c.padEnd(w[i])} `).join('|')}|`;
  return [line(rows[0]), `|${w.map((n) => '-'.repeat(n + 2)).join('|')}|`, ...rows.slice(1).map(line)].join(
    '\n',
  );
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

export async function runEvalCommand(
  o: EvalCliOpts,
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
        humaneval: { samples: o.humanevalSamples, temperature: o.humanevalTemperature },
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
  writeResults(o.out, run.results);
  if (o.samples !== undefined) writeAllSamples(o.samples, run.tasks);
  io.out.write(summaryTable(run.results) + '\n');
  io.err.write(`results: ${o.out}${o.samples !== undefined ? `\nsamples: ${o.samples}` : ''}\n`);
  return run.results;
}

export function registerEval(program: Command): void {
  const cmd = program
    .command('eval')
    .description(
      'evaluate a model (+ adapter) on GSM8K, MMLU, Super-NI, AlpacaEval proxy, HumanEval, perplexity',
    )
    .argument('[model]', 'HF model folder or llama2.c checkpoint (or --model, or model: in --config)');
  addSchemaOptions(cmd, 'eval');
  cmd
    .addOption(new Option('--output <path>', 'same as --out'))
    .action(async (model: string | undefined, flags: Record<string, unknown>) => {
      const { output, ...rest } = flags as { output?: string } & Record<string, unknown>;
      foldAlias(
        rest,
        'model',
        model,
        'eval',
        () => `two models given: ${model} and --model ${String(rest.model)}`,
      );
      foldAlias(rest, 'out', output, 'eval', () => 'give --out or --output, not both');
      await evaluate(resolveOptions('eval', rest), { out: process.stdout, err: process.stderr });
    });
}
