/**
 * Pairwise judges for the AlpacaEval proxy win rate. A judge sees an instruction and two outputs,
 * labelled (a) and (b), and says which is better. Two implementations:
 * - LocalJudge: any EvalLM (e.g. a local nuggets model) scores the fixed judging prompt followed by
 *   "Output (a)" and by "Output (b)" with loglikelihood; the likelier label wins (deterministic, never
 *   unparseable).
 * - OpenAIJudge: an OpenAI-compatible chat-completions endpoint (a `nuggets serve` process, vLLM, a
 *   hosted API), given by base URL and the NAME of an environment variable holding the API key; asked
 *   at temperature 0 and its reply parsed for "Output (a)" / "Output (b)" (unparseable -> tie,
 *   counted in `parseFailures`).
 * The prompt is written for this project in the style of AlpacaFarm/AlpacaEval's pairwise
 * annotators; it is not their exact prompt, and a local or small judge is not the GPT-4 judge of the
 * paper, so the resulting number is only a proxy.
 */
import { InputError } from '../errors.js';
import { loglikelihoodAll, type EvalLM } from './lm.js';
import { chatPrompt, isChat, type ChatFormat } from './prompt.js';

export type Verdict = 'A' | 'B' | 'tie';

export interface JudgeRequest {
  instruction: string;
  /** Shown as "Output (a)". */
  outputA: string;
  /** Shown as "Output (b)". */
  outputB: string;
}

export interface Judge {
  /** Recorded in the results config. */
  name: string;
  judge(reqs: JudgeRequest[]): Promise<Verdict[]>;
}

export const JUDGE_SYSTEM =
  'You are a careful assistant that compares two answers to the same instruction and picks the better one.';

export function judgeUserPrompt(r: JudgeRequest): string {
  return (
    'Select the output, (a) or (b), that best follows the instruction: it should be helpful, correct, ' +
    'relevant and complete. Do not let the order of the outputs or their length sway you. ' +
    'Your answer must contain ONLY "Output (a)" or "Output (b)".\n\n' +
    `# Instruction:\n${r.instruction}\n\n` +
    `# Output (a):\n${r.outputA}\n\n` +
    `# Output (b):\n${r.outputB}\n\n` +
    '# Which is best, Output (a) or Output (b)?'
  );
}

/** Reads a verdict out of a judge's free-text reply; null when it names neither or both. */
export function parseVerdict(reply: string): 'A' | 'B' | null {
  const hits = [...reply.matchAll(/output\s*\(\s*([ab])\s*\)/gi)].map((m) => m[1].toLowerCase());
  const first = hits[0];
  if (first !== undefined && hits.every((h) => h === first)) return first === 'a' ? 'A' : 'B';
  if (hits.length > 0) return null;
  const bare = /^\s*\(?\s*([ab])\s*\)?\s*\.?\s*$/i.exec(reply);
  if (bare) return bare[1].toLowerCase() === 'a' ? 'A' : 'B';
  return null;
}

export interface LocalJudgeOptions {
  chatFormat?: ChatFormat;
  batchSize?: number;
}

export class LocalJudge implements Judge {
  readonly name: string;
  constructor(
    private readonly lm: EvalLM,
    private readonly opts: LocalJudgeOptions = {},
  ) {
    this.name = `local:${lm.name}`;
  }

  async judge(reqs: JudgeRequest[]): Promise<Verdict[]> {
    const format = this.opts.chatFormat ?? 'plain';
    const text = (r: JudgeRequest) => `${JUDGE_SYSTEM}\n\n${judgeUserPrompt(r)}`;
    const ctxs = reqs.map((r) => (isChat(format) ? chatPrompt(format, text(r), '') : `${text(r)}\n`));
    const ll = await loglikelihoodAll(
      this.lm,
      ctxs.flatMap((context) => [
        { context, continuation: 'Output (a)' },
        { context, continuation: 'Output (b)' },
      ]),
      this.opts.batchSize ?? 8,
    );
    return reqs.map((_, i) => {
      const a = ll[2 * i].logprob;
      const b = ll[2 * i + 1].logprob;
      if (Math.abs(a - b) < 1e-9) return 'tie';
      return a > b ? 'A' : 'B';
    });
  }
}

export interface OpenAIJudgeOptions {
  /** Base URL of the API, e.g. http://127.0.0.1:8000/v1 (a full .../chat/completions URL is accepted too). */
  url: string;
  /** Model name sent in the request. */
  model: string;
  /** Name of the environment variable that holds the API key (omit for servers without auth). */
  apiKeyEnv?: string;
  timeoutMs?: number;
  maxRetries?: number;
  /** Requests in flight at once. */
  concurrency?: number;
  maxTokens?: number;
}

export function chatCompletionsUrl(url: string): string {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new InputError('judge URL', `${JSON.stringify(url)} is not a valid URL`);
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:')
    throw new InputError('judge URL', `${url}: only http and https are supported`);
  const path = u.pathname.replace(/\/+$/, '');
  u.pathname = path.endsWith('/chat/completions') ? path : `${path}/chat/completions`;
  return u.toString();
}

export class OpenAIJudge implements Judge {
  readonly name: string;
  /** Replies that named neither output (counted as ties). */
  parseFailures = 0;
  private readonly endpoint: string;
  private readonly apiKey: string | null;

  constructor(private readonly opts: OpenAIJudgeOptions) {
    this.endpoint = chatCompletionsUrl(opts.url);
    this.name = `openai-compatible:${opts.model}@${new URL(this.endpoint).host}`;
    if (opts.apiKeyEnv !== undefined) {
      const key = process.env[opts.apiKeyEnv];
      if (key === undefined || key === '') {
        throw new InputError(
          `environment variable ${opts.apiKeyEnv}`,
          'is not set; it must hold the judge API key',
        );
      }
      this.apiKey = key;
    } else {
      this.apiKey = null;
    }
  }

  async judge(reqs: JudgeRequest[]): Promise<Verdict[]> {
    const out: Verdict[] = new Array(reqs.length);
    let next = 0;
    const worker = async () => {
      while (next < reqs.length) {
        const i = next++;
        const reply = await this.ask(reqs[i]);
        const v = parseVerdict(reply);
        if (v === null) this.parseFailures++;
        out[i] = v ?? 'tie';
      }
    };
    const n = Math.max(1, Math.min(this.opts.concurrency ?? 4, reqs.length));
    await Promise.all(Array.from({ length: n }, worker));
    return out;
  }

  /** One chat-completions call with retries on network errors, 429 and 5xx. */
  private async ask(r: JudgeRequest): Promise<string> {
    const body = JSON.stringify({
      model: this.opts.model,
      messages: [
        { role: 'system', content: JUDGE_SYSTEM },
        { role: 'user', content: judgeUserPrompt(r) },
      ],
      temperature: 0,
      max_tokens: this.opts.maxTokens ?? 16,
    });
    const headers: Record<string, string> = { 'content-type': 'application/json' };
    if (this.apiKey !== null) headers.authorization = `Bearer ${this.apiKey}`;
    const retries = this.opts.maxRetries ?? 3;
    let lastError = '';
    for (let attempt = 0; attempt <= retries; attempt++) {
      if (attempt > 0) await new Promise((res) => setTimeout(res, 250 * 2 ** (attempt - 1)));
      let res: Response;
      try {
        res = await fetch(this.endpoint, {
          method: 'POST',
          headers,
          body,
          signal: AbortSignal.timeout(this.opts.timeoutMs ?? 120_000),
        });
      } catch (e) {
        lastError = (e as Error).message;
        continue;
      }
      const text = await res.text();
      if (res.status === 429 || res.status >= 500) {
        lastError = `HTTP ${res.status}: ${text.slice(0, 200)}`;
        continue;
      }
      if (!res.ok) throw new Error(`judge ${this.endpoint}: HTTP ${res.status}: ${text.slice(0, 500)}`);
      let json: unknown;
      try {
        json = JSON.parse(text);
      } catch {
        throw new Error(`judge ${this.endpoint}: response is not JSON: ${text.slice(0, 200)}`);
      }
      const content = (json as { choices?: { message?: { content?: unknown } }[] }).choices?.[0]?.message
        ?.content;
      if (typeof content !== 'string')
        throw new Error(
          `judge ${this.endpoint}: response has no choices[0].message.content: ${text.slice(0, 200)}`,
        );
      return content;
    }
    throw new Error(`judge ${this.endpoint}: failed after ${retries + 1} attempts: ${lastError}`);
  }
}
