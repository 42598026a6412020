/**
 * The judge of alpaca_eval_proxy from the `eval` options: `judge` is a URL of an OpenAI-compatible
 * server (a `nuggets serve`, vLLM, a hosted API; key from the variable named by `judgeApiKeyEnv`; the
 * model name from `judgeModel`, else the first one the server lists), or a path to a local model.
 */
import type { OptionsOf } from '../config/parse.js';
import { InputError } from '../errors.js';
import { chatCompletionsUrl, LocalJudge, OpenAIJudge, type Judge } from './judge.js';
import { loadModelLM } from './model-lm.js';

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

/** The judge `o.judge` names, or undefined without one. */
export async function makeJudge(o: OptionsOf<'eval'>): Promise<Judge | undefined> {
  if (o.judge === undefined) return undefined;
  if (/^https?:\/\//i.test(o.judge)) {
    const model = o.judgeModel ?? (await firstServedModel(o.judge, o.judgeApiKeyEnv));
    return new OpenAIJudge({ url: o.judge, model, apiKeyEnv: o.judgeApiKeyEnv });
  }
  const { lm } = loadModelLM(o.judge, { name: `judge:${o.judge}` });
  return new LocalJudge(lm, { batchSize: o.batchSize });
}
