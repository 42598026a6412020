/**
 * The model side of `nuggets serve`: turns a validated request (protocol.ts) into token ids, runs
 * KV-cache generation (src/model/generate.ts) and reports text as it becomes final. It runs inside
 * the worker thread (worker.ts), so the HTTP side stays responsive while the model computes.
 *
 * - Completions: each text prompt is encoded with BOS (one only, as src/eval/model-lm.ts does); token
 *   prompts are used as given. The n choices of a prompt run as ONE batch; choice j samples from an
 *   RNG seeded with seed + j, so a request with a seed is reproducible.
 * - Chat: the messages are rendered exactly as training renders prompts (src/data/chat.ts): the
 *   paper's Tulu format, or the tokenizer's chat template, then the assistant header. Generation
 *   ends at EOS, at the template's end-of-turn token (e.g. <|im_end|>, found by rendering a probe
 *   conversation) or, for Tulu, where the model starts a new turn header.
 * - Text is the continuation of the prompt: decode(prompt tail + new) minus decode(prompt tail), so
 *   a SentencePiece tokenizer's leading space is kept ("A:" + " 18", not "A:18"; src/model/continuation.ts).
 * - Context: like vLLM, a prompt plus max_tokens beyond the model's context is a 400, not a silent
 *   truncation; max_tokens null (chat default) means "up to the end of the context".
 * - logprobs (completions): each choice's tokens (the prompt's too with echo) are scored in one
 *   forward pass after generation (logprobs.ts), which is how lm-eval's local-completions model
 *   scores loglikelihood requests (echo, max_tokens 0 or 1). A choice that ends on EOS includes the
 *   EOS token in its logprobs and in completion_tokens, as vLLM counts it, but not in its text.
 */
import { contextLength } from '../model/config.js';
import { renderPrompt, TULU, type ChatFormat } from '../data/chat.js';
import { tokenizePieces } from '../data/encode.js';
import { templateFormat } from '../data/template.js';
import { kernels } from '../engine/backend.js';
import { loadModelLM } from '../eval/model-lm.js';
import type { Tokenizer } from '../model/tokenizer.js';
import { ContinuationTokenizer } from '../model/continuation.js';
import { completionLogprobs, scoreTokens, TokenTexts } from './logprobs.js';
import { generate, type FinishReason as ModelFinish } from '../model/generate.js';
import type { LlamaModel } from '../model/model.js';
import {
  ApiError,
  type ChatMessageIn,
  type ChoiceResult,
  type GenerationRequest,
  type PromptIn,
} from './protocol.js';

export interface EngineOptions {
  model: string;
  adapter?: string;
  tokenizer?: string;
  /** Name clients send and /v1/models lists (default: the model's folder or file name). */
  name?: string;
  /** auto: the tokenizer's chat template when it has one, else Tulu. */
  chatFormat?: 'auto' | 'tulu' | 'template';
}

export interface EngineInfo {
  name: string;
  /** Unix seconds when the model was loaded. */
  created: number;
  contextLength: number;
  chatFormat: 'tulu' | 'template';
  model: string;
  adapter: string | null;
  parameters: number;
  /** Compute backend of the worker: native (OpenBLAS addon) or ts. */
  backend: string;
}

export interface JobResult {
  choices: ChoiceResult[];
  promptTokens: number;
  completionTokens: number;
}

export interface RunHooks {
  onStart?: () => void;
  onDelta?: (choice: number, text: string) => void;
  cancelled?: () => boolean;
}

/** Thrown out of a generation the client no longer waits for. */
export class Cancelled extends Error {
  constructor() {
    super('cancelled');
    this.name = 'Cancelled';
  }
}

/** Where a chat turn ends, as ids (single-token markers) and strings. */
export interface TurnEnd {
  eosIds: number[];
  stop: string[];
}

const PROBE = 'NUGGETS_PROBE_REPLY';

/**
 * The end-of-turn marker of a chat template: render a probe conversation and take what follows the
 * assistant's text up to the first whitespace ("<|im_end|>", "<|eot_id|>", "</s>"); a marker that is
 * one token becomes an EOS id (it is a special token, invisible to stop strings on decoded text).
 */
export function templateTurnEnd(fmt: Extract<ChatFormat, { kind: 'template' }>, tok: Tokenizer): TurnEnd {
  let after: string;
  try {
    const full = fmt.render(
      [
        { role: 'user', content: 'hi' },
        { role: 'assistant', content: PROBE },
      ],
      false,
    );
    const at = full.indexOf(PROBE);
    if (at < 0) return { eosIds: [], stop: [] };
    after = full.slice(at + PROBE.length);
  } catch {
    return { eosIds: [], stop: [] };
  }
  const marker = after.trimStart().split(/\s/)[0];
  if (!marker) return { eosIds: [], stop: [] };
  const ids = tok.encode(marker, { addBos: false });
  return { eosIds: ids.length === 1 ? ids : [], stop: [marker] };
}

export class ServeEngine {
  readonly info: EngineInfo;
  private readonly chat: ChatFormat;
  private readonly turnEnd: TurnEnd;
  private readonly eosIds: number[];

  constructor(
    readonly model: LlamaModel,
    readonly tokenizer: Tokenizer,
    info: Omit<EngineInfo, 'chatFormat' | 'contextLength' | 'backend'>,
    chatFormat: 'auto' | 'tulu' | 'template' = 'auto',
  ) {
    const useTemplate =
      chatFormat === 'template' || (chatFormat === 'auto' && tokenizer.chatTemplate !== null);
    if (useTemplate) {
      const fmt = templateFormat(tokenizer, info.model) as Extract<ChatFormat, { kind: 'template' }>;
      this.chat = fmt;
      this.turnEnd = templateTurnEnd(fmt, tokenizer);
    } else {
      this.chat = TULU;
      // a Tulu-trained model ends its turn with EOS; one that starts the next turn header is done too
      this.turnEnd = { eosIds: [], stop: ['<|user|>', '<|assistant|>', '<|system|>'] };
    }
    const eos = new Set(model.config.eosTokenId);
    if (tokenizer.eosId !== null) eos.add(tokenizer.eosId);
    this.eosIds = [...eos];
    this.info = {
      ...info,
      chatFormat: useTemplate ? 'template' : 'tulu',
      contextLength: contextLength(model.config),
      backend: kernels().name,
    };
  }

  static load(o: EngineOptions): ServeEngine {
    const { lm, info } = loadModelLM(o.model, { adapter: o.adapter, tokenizer: o.tokenizer, name: o.name });
    return new ServeEngine(
      lm.model,
      lm.tokenizer,
      {
        name: lm.name,
        created: Math.floor(Date.now() / 1000),
        model: o.model,
        adapter: info.adapter,
        parameters: info.parameters,
      },
      o.chatFormat,
    );
  }

  /** Text prompt ids: BOS + encode(text), never two BOS (a text that spells "<s>" is its own BOS). */
  private encodeText(text: string): number[] {
    const ids = this.tokenizer.encode(text, { addBos: true });
    const bos = this.tokenizer.bosId;
    if (bos !== null && ids.length >= 2 && ids[0] === bos && ids[1] === bos) return ids.slice(1);
    if (ids.length === 0)
      throw new ApiError(
        400,
        'the prompt encodes to no tokens (the tokenizer has no BOS token); give a non-empty prompt',
        'invalid_request_error',
        'prompt',
      );
    return ids;
  }

  private promptIds(p: PromptIn): number[] {
    if ('text' in p) return this.encodeText(p.text);
    // the tokenizer's vocabulary, not the model's (which may be padded): every id must decode
    const V = Math.min(this.model.config.vocabSize, this.tokenizer.vocabSize);
    const badId = p.ids.find((id) => id >= V);
    if (badId !== undefined)
      throw new ApiError(
        400,
        `token id ${badId} in 'prompt' is outside the vocabulary (${V} tokens)`,
        'invalid_request_error',
        'prompt',
      );
    return p.ids;
  }

  private chatIds(messages: ChatMessageIn[]): number[] {
    try {
      return tokenizePieces(renderPrompt(messages, this.chat), this.tokenizer, { addBos: true }).ids;
    } catch (e) {
      throw new ApiError(
        400,
        `the chat template could not render these messages: ${(e as Error).message}`,
        'invalid_request_error',
        'messages',
      );
    }
  }

  /** The token budget of one prompt, refusing what does not fit the context (vLLM's rule). */
  private budget(promptLen: number, maxTokens: number | null, promptParam: string): number {
    const ctx = this.info.contextLength;
    if (promptLen >= ctx) {
      throw new ApiError(
        400,
        `This model's maximum context length is ${ctx} tokens. However, your prompt has ${promptLen} tokens, which leaves no room for the completion.`,
        'invalid_request_error',
        promptParam,
        'context_length_exceeded',
      );
    }
    if (maxTokens === null) return ctx - promptLen;
    if (promptLen + maxTokens > ctx) {
      throw new ApiError(
        400,
        `This model's maximum context length is ${ctx} tokens. However, you requested ${promptLen + maxTokens} tokens (${promptLen} in the prompt, ${maxTokens} for the completion). Please reduce the prompt or max_tokens.`,
        'invalid_request_error',
        'max_tokens',
        'context_length_exceeded',
      );
    }
    return maxTokens;
  }

  /**
   * Runs a request. `onStart` is called once the prompts are encoded and fit the context (errors
   * before it are the request's fault: ApiError 400); `onDelta(choice, text)` receives text as it
   * becomes final (choice = prompt index * n + j); `cancelled()` is polled after every token and
   * stops the work by throwing Cancelled.
   */
  run(req: GenerationRequest, hooks: RunHooks = {}): JobResult {
    const onDelta = hooks.onDelta ?? (() => {});
    const cancelled = hooks.cancelled ?? (() => false);
    const p = req.params;
    const prompts =
      req.kind === 'chat' ? [this.chatIds(req.messages)] : req.prompts.map((x) => this.promptIds(x));
    const budgets = prompts.map((ids) =>
      this.budget(ids.length, p.maxTokens, req.kind === 'chat' ? 'messages' : 'prompt'),
    );
    hooks.onStart?.();
    const stop = req.kind === 'chat' ? [...p.stop, ...this.turnEnd.stop] : p.stop;
    const eosIds = req.kind === 'chat' ? [...new Set([...this.eosIds, ...this.turnEnd.eosIds])] : this.eosIds;
    const choices: ChoiceResult[] = [];
    const logprobsK = req.kind === 'completion' ? req.logprobs : null;
    const texts = logprobsK !== null ? new TokenTexts(this.tokenizer) : null;
    let promptTokens = 0;
    let completionTokens = 0;
    prompts.forEach((ids, pi) => {
      promptTokens += ids.length;
      let echo = '';
      const echoOn = req.kind === 'completion' && req.echo;
      if (echoOn) {
        const src = req.prompts[pi];
        echo = 'text' in src ? src.text : this.tokenizer.decode(ids, { skipSpecial: true });
        for (let j = 0; j < p.n; j++) onDelta(pi * p.n + j, echo);
      }
      // the EOS token a choice ended on (generate() leaves it out of `tokens`)
      const eosToken: (number | null)[] = Array.from({ length: p.n }, () => null);
      const res = generate(
        this.model,
        Array.from({ length: p.n }, () => ids),
        {
          maxNewTokens: budgets[pi],
          temperature: p.temperature,
          topP: p.topP,
          topK: p.topK,
          seeds: Array.from({ length: p.n }, (_, j) => p.seed + j),
          eosIds,
          stop,
          tokenizer: new ContinuationTokenizer(this.tokenizer, ids),
          onToken: (e) => {
            if (cancelled()) throw new Cancelled();
            if (e.finishReason === 'eos') eosToken[e.seq] = e.token;
            if (e.text) onDelta(pi * p.n + e.seq, e.text);
          },
        },
      );
      res.forEach((r, j) => {
        const eos = eosToken[j];
        const generated = eos === null ? r.tokens : [...r.tokens, eos];
        completionTokens += generated.length;
        const text = echo + (r.text ?? '');
        let logprobs = null;
        if (logprobsK !== null && texts !== null) {
          if (cancelled()) throw new Cancelled();
          const seq = [...ids, ...generated];
          const from = echoOn ? 0 : ids.length;
          const scores = scoreTokens(this.model, seq, Math.max(from, 1), logprobsK);
          logprobs = completionLogprobs(texts, seq, from, scores, echoOn ? 0 : echo.length);
        }
        choices.push({ text, finishReason: finishOf(r.finishReason), ...(logprobs ? { logprobs } : {}) });
      });
    });
    return { choices, promptTokens, completionTokens };
  }
}

function finishOf(r: ModelFinish): 'stop' | 'length' {
  return r === 'length' ? 'length' : 'stop';
}
