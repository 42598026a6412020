/**
 * EvalLM over a nuggets LlamaModel + Tokenizer: the thin adapter between the harness and the model.
 *
 * - generate: prompts are encoded with BOS (one only, even when a chat template already wrote it) and
 *   left-truncated so prompt + budget fits the context (lm-eval does the same); the returned text is
 *   decoded as a continuation of the prompt (see continuationText). Requests with the same budget,
 *   stop strings and temperature run as one batch through src/model/generate.ts (KV cache, left
 *   padding); sampled ones get one RNG each, seeded with their own seed, so a request's text depends
 *   on its seed and not on its batch neighbours (up to float rounding of the batched matmuls).
 * - loglikelihood: lm-eval's split: encode(context + continuation) with BOS, the continuation tokens
 *   are those after the encoding of the context (trailing spaces of the context move to the
 *   continuation first); the model reads the whole sequence minus its last token, left-truncated to
 *   the context length. Requests whose model input is identical (the four " A".." D" of an MMLU
 *   question: one-token continuations of the same context) share one forward pass.
 * - loglikelihoodRolling: lm-eval's loglikelihood_rolling with context_len 1: the text's tokens
 *   (no BOS) are cut into disjoint windows of the context length; the first window is conditioned on
 *   BOS, each later one on the full context-length run of tokens before its last token, as
 *   lm-eval's get_rolling_token_windows does.
 * loadModelLM opens a model (HF folder or llama2.c file) and attaches a PEFT adapter WITHOUT merging:
 * each adapted module computes W x + (alpha / r) B A x with the factors as stored, exactly what PEFT
 * does at inference, so an adapter is evaluated as trained (no rounding from a merged copy).
 * Log-softmax is computed in float64 from the float32 logits. Forward passes are packed up to
 * `tokenBudget` tokens, and the lm_head runs on at most `headRows` rows at a time, so memory stays
 * bounded for large vocabularies.
 */
import { basename } from 'node:path';
import { generate } from '../model/generate.js';
import { padBatch } from '../model/batch.js';
import { checkFiniteParams } from '../model/params.js';
import { LlamaModel } from '../model/model.js';
import { loadModelSource } from '../io/load.js';
import type { Tokenizer } from '../model/tokenizer.js';
import { readAdapter } from '../transfer/peft.js';
import { modulePath } from '../transfer/modules.js';
import {
  truncateAtStop,
  type EvalLM,
  type GenerateRequest,
  type LoglikelihoodRequest,
  type LoglikelihoodResult,
  type RollingRequest,
  type RollingResult,
} from './lm.js';

export interface ModelLMOptions {
  name?: string;
  /** Context length used for truncation and rolling windows (default: the config's maxPositionEmbeddings). */
  maxLength?: number;
  /** Most tokens (B x T, padding included) per forward pass in scoring. */
  tokenBudget?: number;
  /** Most rows through the lm_head at once. */
  headRows?: number;
}

export interface LoadModelLMOptions extends ModelLMOptions {
  /** PEFT LoRA adapter folder, attached to the model's modules (not merged). */
  adapter?: string;
  /** Tokenizer file or folder when the model has none beside it. */
  tokenizer?: string;
}

export interface LoadedModelLM {
  lm: ModelLM;
  /** Facts for results configs and /v1/models: path, format, adapter and its modules. */
  info: {
    model: string;
    format: 'hf' | 'llama2c';
    adapter: string | null;
    adapterModules: number;
    parameters: number;
  };
}

/** Loads a model (+ adapter, attached unmerged) as an EvalLM. Errors name the file at fault (InputError). */
export function loadModelLM(path: string, opts: LoadModelLMOptions = {}): LoadedModelLM {
  const src = loadModelSource(path, { tokenizer: opts.tokenizer });
  let model: LlamaModel;
  try {
    model = LlamaModel.load(src);
    // a damaged file would generate empty text silently: refuse it naming the tensor
    checkFiniteParams(model.params, src.weights.source);
  } finally {
    src.weights.close();
  }
  let adapterModules = 0;
  if (opts.adapter !== undefined) {
    // PEFT semantics: y = W x + (alpha / r) B A x on each adapted module (factors as stored)
    for (const m of readAdapter(opts.adapter, src.config).modules) {
      model.attachLora(modulePath(m.ref), { r: m.r, alpha: m.alpha, A: m.A, B: m.B });
      adapterModules++;
    }
  }
  const strip = (p: string) => basename(p.replace(/[/\\]+$/, ''));
  const name =
    opts.name ?? (opts.adapter !== undefined ? `${strip(path)}+${strip(opts.adapter)}` : strip(path));
  const parameters = model.params.count();
  return {
    lm: new ModelLM(model, src.tokenizer, { ...opts, name }),
    info: { model: path, format: src.format, adapter: opts.adapter ?? null, adapterModules, parameters },
  };
}

/** One forward-pass input and the positions whose next-token log-probabilities are wanted. */
interface ScoreJob {
  input: number[];
  /** Target `token` is predicted at `pos` of `input`; its log-probability is added to request `owner`. */
  wants: { pos: number; token: number; owner: number }[];
}

export class ModelLM implements EvalLM {
  readonly name: string;
  readonly maxLength: number;
  private readonly tokenBudget: number;
  private readonly headRows: number;

  constructor(
    readonly model: LlamaModel,
    readonly tokenizer: Tokenizer,
    opts: ModelLMOptions = {},
  ) {
    this.name = opts.name ?? 'nuggets-model';
    this.maxLength = opts.maxLength ?? model.config.maxPositionEmbeddings;
    if (!(
      Number.isInteger(this.maxLength) &&
      this.maxLength >= 2 &&
      this.maxLength <= model.config.maxPositionEmbeddings
    )) {
      throw new RangeError(
        `maxLength must be an integer in [2, ${model.config.maxPositionEmbeddings}], got ${this.maxLength}`,
      );
    }
    this.tokenBudget = opts.tokenBudget ?? 8192;
    this.headRows = opts.headRows ?? 256;
  }

  /**
   * encode(text) with BOS, and never two BOS in a row at the start: a chat template may already write
   * the BOS token's text ("<s>", "<|begin_of_text|>"), which a Hugging Face tokenizer turns into the id.
   */
  private encodeBos(text: string): number[] {
    const ids = this.tokenizer.encode(text, { addBos: true });
    const bos = this.tokenizer.bosId;
    return bos !== null && ids.length >= 2 && ids[0] === bos && ids[1] === bos ? ids.slice(1) : ids;
  }

  private encodePrompt(prompt: string, maxTokens: number): { ids: number[]; budget: number } {
    let ids = this.encodeBos(prompt);
    const budget = Math.max(0, Math.min(maxTokens, this.maxLength - 1));
    const room = this.maxLength - budget;
    if (ids.length > room) ids = ids.slice(ids.length - room);
    return { ids, budget };
  }

  async generate(reqs: GenerateRequest[]): Promise<string[]> {
    const out: string[] = new Array(reqs.length);
    // Requests that share a budget, stop strings and temperature run as one left-padded batch.
    const groups = new Map<string, number[]>();
    reqs.forEach((r, i) => {
      const key = JSON.stringify([r.maxTokens, r.stop, r.temperature]);
      const g = groups.get(key);
      if (g) g.push(i);
      else groups.set(key, [i]);
    });
    for (const idx of groups.values()) {
      const r0 = reqs[idx[0]];
      const enc = idx.map((i) => this.encodePrompt(reqs[i].prompt, r0.maxTokens));
      const res = generate(
        this.model,
        enc.map((e) => e.ids),
        {
          maxNewTokens: enc[0].budget,
          stop: r0.stop,
          tokenizer: this.tokenizer,
          temperature: r0.temperature,
          // sampled: one RNG per request, so its text depends on its own seed, not on its batch neighbours
          seeds: r0.temperature > 0 ? idx.map((i) => reqs[i].seed) : undefined,
        },
      );
      idx.forEach((i, k) => (out[i] = this.continuationText(enc[k].ids, res[k].tokens, r0.stop)));
    }
    return out;
  }

  /**
   * The generated text as a continuation of the prompt: decode(prompt + new) minus decode(prompt),
   * cut at the first stop string. Decoding the new tokens alone would drop the leading space of the
   * first piece (SentencePiece-style decoders strip it at the start of a sequence), which turns
   * "A:" + " 18" into "A:18" and breaks the indentation of HumanEval completions.
   */
  private continuationText(promptIds: number[], tokens: number[], stop: string[]): string {
    const before = this.tokenizer.decode(promptIds, { skipSpecial: true });
    const full = this.tokenizer.decode([...promptIds, ...tokens], { skipSpecial: true });
    const text = full.startsWith(before)
      ? full.slice(before.length)
      : this.tokenizer.decode(tokens, { skipSpecial: true });
    return truncateAtStop(text, stop);
  }

  /** lm-eval's _encode_pair: continuation tokens = encode(context + continuation) after encode(context). */
  private encodePair(context: string, continuation: string): { whole: number[]; ctxLen: number } {
    const nSpaces = context.length - context.trimEnd().length;
    if (nSpaces > 0) {
      continuation = context.slice(context.length - nSpaces) + continuation;
      context = context.slice(0, context.length - nSpaces);
    }
    const whole = this.encodeBos(context + continuation);
    const ctxLen = this.encodeBos(context).length;
    return { whole, ctxLen: Math.min(ctxLen, whole.length - 1) };
  }

  async loglikelihood(reqs: LoglikelihoodRequest[]): Promise<LoglikelihoodResult[]> {
    const jobs = new Map<string, ScoreJob>();
    reqs.forEach((r, owner) => {
      const { whole, ctxLen } = this.encodePair(r.context, r.continuation);
      const k = whole.length - ctxLen;
      if (k < 1)
        throw new Error(`loglikelihood: continuation ${JSON.stringify(r.continuation)} encodes to no tokens`);
      if (k > this.maxLength)
        throw new Error(
          `loglikelihood: continuation has ${k} tokens, more than the context length ${this.maxLength}`,
        );
      const full = whole.slice(0, -1);
      const input = full.length > this.maxLength ? full.slice(full.length - this.maxLength) : full;
      const key = input.join(',');
      let job = jobs.get(key);
      if (!job) jobs.set(key, (job = { input, wants: [] }));
      for (let j = 0; j < k; j++)
        job.wants.push({ pos: input.length - k + j, token: whole[whole.length - k + j], owner });
    });
    const acc = this.score([...jobs.values()], reqs.length);
    return acc.map((a) => ({ logprob: a.logprob, greedy: a.greedy }));
  }

  async loglikelihoodRolling(reqs: RollingRequest[]): Promise<RollingResult[]> {
    const bos = this.tokenizer.bosId;
    if (bos === null)
      throw new Error(`model "${this.name}": loglikelihoodRolling needs a tokenizer with a BOS token`);
    const L = this.maxLength;
    const jobs: ScoreJob[] = [];
    const counts: number[] = [];
    reqs.forEach((r, owner) => {
      const toks = this.tokenizer.encode(r.text, { addBos: false });
      counts.push(toks.length);
      if (toks.length === 0) return;
      // first window: [BOS] + tokens[0 : n-1] predicts tokens[0 : n]
      const first = Math.min(L, toks.length);
      jobs.push({
        input: [bos, ...toks.slice(0, first - 1)],
        wants: toks.slice(0, first).map((token, pos) => ({ pos, token, owner })),
      });
      let predicted = first;
      while (predicted < toks.length) {
        const len = Math.min(toks.length - predicted, L);
        const end = predicted + len;
        const input = toks.slice(end - L - 1, end - 1);
        jobs.push({
          input,
          wants: toks
            .slice(predicted, end)
            .map((token, j) => ({ pos: input.length - len + j, token, owner })),
        });
        predicted = end;
      }
    });
    const acc = this.score(jobs, reqs.length);
    return acc.map((a, i) => ({ logprob: a.logprob, tokens: counts[i] }));
  }

  /** Runs the jobs in token-budgeted batches and sums log-probabilities per owner. */
  private score(jobs: ScoreJob[], owners: number): { logprob: number; greedy: boolean }[] {
    const acc = Array.from({ length: owners }, () => ({ logprob: 0, greedy: true }));
    // longest first, so each batch pads little (lm-eval sorts the same way)
    const order = jobs.map((_, i) => i).sort((a, b) => jobs[b].input.length - jobs[a].input.length);
    const d = this.model.config.hiddenSize;
    const V = this.model.config.vocabSize;
    let i = 0;
    while (i < order.length) {
      const T = jobs[order[i]].input.length;
      const B = Math.max(1, Math.min(order.length - i, Math.floor(this.tokenBudget / T)));
      const group = order.slice(i, i + B).map((j) => jobs[j]);
      i += B;
      const batch = padBatch(
        group.map((j) => j.input),
        'right',
        0,
      );
      const h = this.model.hidden(batch);
      // distinct rows needed (the four MMLU letters share one), each with the targets read from it
      const rowIndex = new Map<number, number>();
      const rows: number[] = [];
      const targets: { token: number; owner: number }[][] = [];
      group.forEach((job, b) => {
        for (const w of job.wants) {
          const r = b * batch.T + w.pos;
          let k = rowIndex.get(r);
          if (k === undefined) {
            rowIndex.set(r, (k = rows.length));
            rows.push(r);
            targets.push([]);
          }
          targets[k].push({ token: w.token, owner: w.owner });
        }
      });
      for (let s = 0; s < rows.length; s += this.headRows) {
        const n = Math.min(this.headRows, rows.length - s);
        const hg = new Float32Array(n * d);
        for (let k = 0; k < n; k++) hg.set(h.subarray(rows[s + k] * d, (rows[s + k] + 1) * d), k * d);
        const logits = this.model.head.forward(hg, n);
        for (let k = 0; k < n; k++) {
          const off = k * V;
          let mx = -Infinity;
          let arg = 0;
          for (let v = 0; v < V; v++) {
            const x = logits[off + v];
            if (x > mx) {
              mx = x;
              arg = v;
            }
          }
          let se = 0;
          for (let v = 0; v < V; v++) se += Math.exp(logits[off + v] - mx);
          const lse = mx + Math.log(se);
          for (const t of targets[s + k]) {
            const a = acc[t.owner];
            a.logprob += logits[off + t.token] - lse;
            if (arg !== t.token) a.greedy = false;
          }
        }
      }
    }
    return acc;
  }
}
