/**
 * AlpacaEval / AlpacaFarm proxy ("alpaca_eval_proxy"). The paper's metric is a win rate against
 * text-davinci-003 judged by a GPT-4-class model; that is not available offline, so this task reports
 * proxies and never that name:
 * - ref_nll: mean negative log-likelihood (nats) of the davinci-003 reference output given the
 *   instruction prompt; ref_nll_per_byte: the same summed over all rows divided by the references'
 *   UTF-8 bytes (tokenizer-independent, so comparable across model families).
 * - rougeL: ROUGE-L F-measure of the model's greedy output against the reference.
 * - win_rate (only when a Judge is given): the fraction of rows whose model output the judge prefers
 *   to the reference, ties counting one half. Which side is shown as (a) is drawn per row from the
 *   seed, so position bias averages out; the order is logged per sample.
 * Data: JSON Lines {"instruction", "output", ["generator", "dataset"]} (research-only data, not
 * bundled: docs/formats.md "Benchmarks").
 */
import { Rng } from '../../engine/rng.js';
import { readJsonl } from '../../data/jsonl.js';
import { stringField } from '../files.js';
import type { Judge, Verdict } from '../judge.js';
import { generateAll, loglikelihoodAll, type GenerateRequest } from '../lm.js';
import { chatFormatName, instructionPrompt, instructionStop, isChat } from '../prompt.js';
import type { SampleRecord, TaskResult } from '../results.js';
import { rougeL } from '../rouge.js';
import { mean, meanStderr } from '../stats.js';
import { applyLimit, type TaskContext } from '../task.js';

export interface AlpacaDoc {
  instruction: string;
  reference: string;
  generator: string | null;
  dataset: string | null;
}

export function loadAlpacaEval(path: string): AlpacaDoc[] {
  return readJsonl(path, { what: 'AlpacaEval JSONL file', nonEmpty: true }).map((row) => ({
    instruction: stringField(path, row, 'instruction'),
    reference: stringField(path, row, 'output'),
    generator: typeof row.value.generator === 'string' ? row.value.generator : null,
    dataset: typeof row.value.dataset === 'string' ? row.value.dataset : null,
  }));
}

export interface AlpacaOptions {
  path: string;
  /** Porter-stem ROUGE tokens (rouge_score use_stemmer=True). Default false. */
  rougeStemmer?: boolean;
  judge?: Judge;
  maxTokens?: number;
  task?: string;
}

export const ALPACA_PROXY_NOTE =
  'alpaca_eval_proxy: offline proxies (reference NLL, ROUGE-L, and a win rate by the named judge). ' +
  'This is NOT the paper\'s AlpacaFarm win rate, which is judged by a GPT-4-class model against text-davinci-003.';

export async function runAlpacaEval(ctx: TaskContext, opts: AlpacaOptions): Promise<TaskResult> {
  const all = loadAlpacaEval(opts.path);
  const docs = applyLimit(all, ctx.limit);
  const maxTokens = opts.maxTokens ?? 512;
  const stop = instructionStop(ctx.chatFormat);
  const prompts = docs.map((d) => instructionPrompt(ctx.chatFormat, d.instruction));

  const nll = await loglikelihoodAll(
    ctx.lm,
    docs.map((d, i) => ({ context: prompts[i], continuation: d.reference })),
    ctx.batchSize,
    (d, t) => ctx.progress('loglikelihood', d, t),
  );
  const reqs: GenerateRequest[] = prompts.map((prompt, i) => ({ prompt, stop, maxTokens, temperature: 0, seed: ctx.seed + i }));
  const outs = (await generateAll(ctx.lm, reqs, ctx.batchSize, (d, t) => ctx.progress('generate', d, t))).map((o) => o.trim());

  let verdicts: Verdict[] | null = null;
  const modelFirst: boolean[] = [];
  if (opts.judge) {
    const rng = new Rng(ctx.seed);
    for (let i = 0; i < docs.length; i++) modelFirst.push(rng.uniform() < 0.5);
    verdicts = await opts.judge.judge(
      docs.map((d, i) => ({
        instruction: d.instruction,
        outputA: modelFirst[i] ? outs[i] : d.reference,
        outputB: modelFirst[i] ? d.reference : outs[i],
      })),
    );
    if (!Array.isArray(verdicts) || verdicts.length !== docs.length) {
      throw new Error(`judge "${opts.judge.name}" returned ${verdicts?.length} verdicts for ${docs.length} requests`);
    }
    ctx.progress('judge', docs.length, docs.length);
  }

  const nlls: number[] = [];
  const rouges: number[] = [];
  const wins: number[] = [];
  let bytes = 0;
  const samples: SampleRecord[] = docs.map((d, i) => {
    const n = -nll[i].logprob;
    const r = rougeL(outs[i], d.reference, { stem: opts.rougeStemmer }).fmeasure;
    nlls.push(n);
    rouges.push(r);
    bytes += Buffer.byteLength(d.reference, 'utf8');
    const rec: SampleRecord = {
      doc_id: i,
      doc: { instruction: d.instruction, dataset: d.dataset, generator: d.generator },
      target: d.reference,
      arguments: { prompt: prompts[i], until: stop, max_gen_toks: maxTokens },
      resps: [outs[i]],
      ref_nll: n,
      rougeL: r,
    };
    if (verdicts) {
      const v = verdicts[i];
      const win = v === 'tie' ? 0.5 : (v === 'A') === modelFirst[i] ? 1 : 0;
      wins.push(win);
      rec.judge = { model_shown_as: modelFirst[i] ? 'a' : 'b', verdict: v };
      rec.win_rate = win;
    }
    return rec;
  });
  const metrics: TaskResult['metrics'] = [
    { name: 'ref_nll', filter: 'none', value: mean(nlls), stderr: meanStderr(nlls), higherIsBetter: false },
    { name: 'ref_nll_per_byte', filter: 'none', value: nlls.reduce((a, b) => a + b, 0) / bytes, stderr: null, higherIsBetter: false },
    { name: 'rougeL', filter: 'none', value: mean(rouges), stderr: meanStderr(rouges), higherIsBetter: true },
  ];
  if (verdicts) metrics.push({ name: 'win_rate', filter: 'none', value: mean(wins), stderr: meanStderr(wins), higherIsBetter: true });
  const judgeInfo: Record<string, unknown> | null = opts.judge
    ? {
        name: opts.judge.name,
        parse_failures: (opts.judge as { parseFailures?: number }).parseFailures ?? 0,
        position: 'model output shown as (a) or (b) at random per row (seeded)',
      }
    : null;
  return {
    task: opts.task ?? 'alpaca_eval_proxy',
    version: 1,
    nShot: 0,
    nSamples: { original: all.length, effective: docs.length },
    metrics,
    config: {
      data: opts.path,
      note: ALPACA_PROXY_NOTE,
      prompt: isChat(ctx.chatFormat) ? 'instruction as the user turn' : 'instruction + "\\n"',
      chat_format: chatFormatName(ctx.chatFormat),
      generation: { until: stop, max_gen_toks: maxTokens, temperature: 0 },
      rouge_stemmer: opts.rougeStemmer === true ? 'Porter' : 'none',
      judge: judgeInfo,
    },
    samples,
  };
}
