/**
 * The OpenAI wire format as `nuggets serve` speaks it: request validation for /v1/completions and
 * /v1/chat/completions, the error body, and the response / stream-chunk shapes.
 *
 * Validation is strict in the way OpenAI's own API is: a field of the wrong type or out of range,
 * or a field we do not know, is a 400 naming the field (`param`) rather than something silently
 * ignored; features we do not implement (logprobs, penalties, tools, suffix, logit_bias) are refused
 * when they ask for anything but the default. `null` means "not given" for every optional field, as
 * OpenAI clients send it.
 */
import { randomBytes, randomInt } from 'node:crypto';

/** An error answered as `{"error": {message, type, param, code}}` with an HTTP status. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly type: string = 'invalid_request_error',
    readonly param: string | null = null,
    readonly code: string | null = null,
  ) {
    super(message);
    this.name = 'ApiError';
  }

  body(): ErrorBody {
    return errorBody(this.message, this.type, this.param, this.code);
  }
}

export interface ErrorBody {
  error: { message: string; type: string; param: string | null; code: string | null };
}

export function errorBody(
  message: string,
  type: string,
  param: string | null = null,
  code: string | null = null,
): ErrorBody {
  return { error: { message, type, param, code } };
}

export type Role = 'system' | 'user' | 'assistant';

export interface ChatMessageIn {
  role: Role;
  content: string;
}

/** One prompt of a completions request: text, or token ids as given. */
export type PromptIn = { text: string } | { ids: number[] };

export interface SamplingParams {
  /** null = as many as the context allows. */
  maxTokens: number | null;
  temperature: number;
  topP: number;
  /** 0 = no top-k truncation. */
  topK: number;
  /** Choices per prompt. */
  n: number;
  stop: string[];
  /** Choice j samples from an RNG seeded with seed + j. */
  seed: number;
}

interface Common {
  model: string;
  stream: boolean;
  /** stream_options.include_usage: one last chunk with usage and no choices. */
  includeUsage: boolean;
  params: SamplingParams;
}

export interface CompletionRequest extends Common {
  kind: 'completion';
  prompts: PromptIn[];
  echo: boolean;
}

export interface ChatRequest extends Common {
  kind: 'chat';
  messages: ChatMessageIn[];
}

export type GenerationRequest = CompletionRequest | ChatRequest;

export interface ProtocolLimits {
  /** Most choices per request (n times the number of prompts). */
  maxChoices: number;
  /** Most stop strings. */
  maxStop: number;
}

export const DEFAULT_LIMITS: ProtocolLimits = { maxChoices: 8, maxStop: 16 };

/** OpenAI's completions default. */
export const COMPLETIONS_DEFAULT_MAX_TOKENS = 16;

const bad = (param: string, message: string, code = 'invalid_value') =>
  new ApiError(400, message, 'invalid_request_error', param, code);

function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  return typeof v === 'object' ? 'an object' : `${typeof v} ${JSON.stringify(v)?.slice(0, 40)}`;
}

/** Reads fields of one JSON object and remembers which were read, so unknown ones can be refused. */
class Fields {
  private readonly seen = new Set<string>();
  constructor(
    readonly body: Record<string, unknown>,
    private readonly prefix = '',
  ) {}

  private get(key: string): unknown {
    this.seen.add(key);
    const v = this.body[key];
    return v === null ? undefined : v;
  }

  name(key: string): string {
    return this.prefix + key;
  }

  raw(key: string): unknown {
    return this.get(key);
  }

  string(key: string, required: true): string;
  string(key: string, required?: false): string | undefined;
  string(key: string, required = false): string | undefined {
    const v = this.get(key);
    if (v === undefined) {
      if (required)
        throw bad(this.name(key), `you must provide '${this.name(key)}'`, 'missing_required_parameter');
      return undefined;
    }
    if (typeof v !== 'string')
      throw bad(this.name(key), `'${this.name(key)}' must be a string, got ${describe(v)}`, 'invalid_type');
    return v;
  }

  bool(key: string, dflt: boolean): boolean {
    const v = this.get(key);
    if (v === undefined) return dflt;
    if (typeof v !== 'boolean')
      throw bad(this.name(key), `'${this.name(key)}' must be a boolean, got ${describe(v)}`, 'invalid_type');
    return v;
  }

  number(
    key: string,
    dflt: number,
    o: { min?: number; max?: number; gtMin?: boolean; integer?: boolean },
  ): number;
  number(
    key: string,
    dflt: null,
    o: { min?: number; max?: number; gtMin?: boolean; integer?: boolean },
  ): number | null;
  number(
    key: string,
    dflt: number | null,
    o: { min?: number; max?: number; gtMin?: boolean; integer?: boolean },
  ): number | null {
    const v = this.get(key);
    if (v === undefined) return dflt;
    const what = o.integer ? 'an integer' : 'a number';
    if (typeof v !== 'number' || !Number.isFinite(v) || (o.integer && !Number.isSafeInteger(v))) {
      throw bad(this.name(key), `'${this.name(key)}' must be ${what}, got ${describe(v)}`, 'invalid_type');
    }
    const lo = o.min ?? -Infinity,
      hi = o.max ?? Infinity;
    if (v < lo || (o.gtMin && v === lo) || v > hi) {
      const range = o.gtMin ? `in (${lo}, ${hi}]` : hi === Infinity ? `>= ${lo}` : `in [${lo}, ${hi}]`;
      throw bad(this.name(key), `'${this.name(key)}' must be ${range}, got ${v}`);
    }
    return v;
  }

  /** A field we accept only at its default (a feature not implemented): refused otherwise. */
  onlyDefault(key: string, isDefault: (v: unknown) => boolean, what: string): void {
    const v = this.get(key);
    if (v !== undefined && !isDefault(v))
      throw bad(
        this.name(key),
        `'${this.name(key)}' is not supported by this server (${what})`,
        'unsupported_parameter',
      );
  }

  /** Accepted and ignored (no effect on the output). */
  ignore(...keys: string[]): void {
    for (const k of keys) this.seen.add(k);
  }

  refuseUnknown(): void {
    for (const k of Object.keys(this.body)) {
      if (!this.seen.has(k))
        throw bad(
          this.name(k),
          `unrecognized request argument supplied: ${this.name(k)}`,
          'unknown_parameter',
        );
    }
  }
}

function asObject(body: unknown, what: string): Record<string, unknown> {
  if (body === null || typeof body !== 'object' || Array.isArray(body)) {
    throw new ApiError(
      400,
      `${what} must be a JSON object, got ${describe(body)}`,
      'invalid_request_error',
      null,
      'invalid_type',
    );
  }
  return body as Record<string, unknown>;
}

function parseStop(f: Fields, limits: ProtocolLimits): string[] {
  const v = f.raw('stop');
  if (v === undefined) return [];
  const list = typeof v === 'string' ? [v] : v;
  if (!Array.isArray(list) || list.some((s) => typeof s !== 'string')) {
    throw bad('stop', `'stop' must be a string or an array of strings, got ${describe(v)}`, 'invalid_type');
  }
  if (list.length > limits.maxStop)
    throw bad('stop', `'stop' has ${list.length} strings; at most ${limits.maxStop} are allowed`);
  return (list as string[]).filter((s) => s !== '');
}

function parseStreamOptions(f: Fields, stream: boolean): boolean {
  const v = f.raw('stream_options');
  if (v === undefined) return false;
  if (!stream) throw bad('stream_options', "'stream_options' is only allowed when 'stream' is true");
  const o = new Fields(asObjectParam(v, 'stream_options'), 'stream_options.');
  const u = o.bool('include_usage', false);
  o.refuseUnknown();
  return u;
}

function asObjectParam(v: unknown, param: string): Record<string, unknown> {
  if (v === null || typeof v !== 'object' || Array.isArray(v))
    throw bad(param, `'${param}' must be an object, got ${describe(v)}`, 'invalid_type');
  return v as Record<string, unknown>;
}

/** Sampling fields shared by both endpoints. */
function parseSampling(f: Fields, limits: ProtocolLimits, maxTokens: number | null): SamplingParams {
  const n = f.number('n', 1, { min: 1, max: limits.maxChoices, integer: true });
  const seed = f.number('seed', null, { integer: true });
  return {
    maxTokens,
    temperature: f.number('temperature', 1, { min: 0, max: 2 }),
    topP: f.number('top_p', 1, { min: 0, max: 1, gtMin: true }),
    // vLLM's extension; -1 and 0 both mean "all tokens"
    topK: Math.max(0, f.number('top_k', 0, { min: -1, integer: true })),
    n,
    stop: parseStop(f, limits),
    seed: seed ?? randomInt(0, 2 ** 31),
  };
}

function refuseUnsupported(f: Fields): void {
  const zero = (v: unknown) => v === 0;
  f.onlyDefault('presence_penalty', zero, 'only 0');
  f.onlyDefault('frequency_penalty', zero, 'only 0');
  f.onlyDefault(
    'logit_bias',
    (v) => typeof v === 'object' && v !== null && Object.keys(v).length === 0,
    'only {}',
  );
  f.ignore('user', 'metadata', 'store');
}

function isTokenArray(v: unknown): v is number[] {
  return Array.isArray(v) && v.length > 0 && v.every((x) => Number.isSafeInteger(x) && (x as number) >= 0);
}

function parsePrompt(v: unknown): PromptIn[] {
  if (v === undefined) throw bad('prompt', "you must provide 'prompt'", 'missing_required_parameter');
  if (typeof v === 'string') return [{ text: v }];
  if (isTokenArray(v)) return [{ ids: v }];
  if (Array.isArray(v) && v.length > 0) {
    if (v.every((p) => typeof p === 'string')) return (v as string[]).map((text) => ({ text }));
    if (v.every(isTokenArray)) return (v as number[][]).map((ids) => ({ ids }));
  }
  throw bad(
    'prompt',
    `'prompt' must be a string, an array of strings, an array of token ids or an array of such arrays (non-empty), got ${describe(v)}`,
    'invalid_type',
  );
}

/** Validates a /v1/completions body. */
export function parseCompletionRequest(
  body: unknown,
  limits: ProtocolLimits = DEFAULT_LIMITS,
): CompletionRequest {
  const f = new Fields(asObject(body, 'the request body'));
  const model = f.string('model', true);
  const prompts = parsePrompt(f.raw('prompt'));
  const maxTokens = f.number('max_tokens', COMPLETIONS_DEFAULT_MAX_TOKENS, { min: 0, integer: true });
  const params = parseSampling(f, limits, maxTokens);
  const stream = f.bool('stream', false);
  const includeUsage = parseStreamOptions(f, stream);
  const echo = f.bool('echo', false);
  const bestOf = f.number('best_of', null, { min: 1, integer: true });
  if (bestOf !== null && bestOf !== params.n)
    throw bad('best_of', `'best_of' other than n is not supported by this server`, 'unsupported_parameter');
  f.onlyDefault('logprobs', (v) => v === 0 || v === false, 'log-probabilities are not returned');
  f.onlyDefault('suffix', (v) => v === '', 'no insertion mode');
  refuseUnsupported(f);
  f.refuseUnknown();
  if (prompts.length * params.n > limits.maxChoices) {
    throw bad(
      'n',
      `${prompts.length} prompts x n = ${params.n} is ${prompts.length * params.n} choices; at most ${limits.maxChoices} per request`,
    );
  }
  return { kind: 'completion', model, prompts, echo, stream, includeUsage, params };
}

function parseContent(v: unknown, param: string): string {
  if (typeof v === 'string') return v;
  // the content-parts form: [{type: "text", text}]
  if (Array.isArray(v)) {
    const parts = v.map((p, i) => {
      const o =
        p !== null && typeof p === 'object' && !Array.isArray(p) ? (p as Record<string, unknown>) : null;
      if (!o || o.type !== 'text' || typeof o.text !== 'string') {
        throw bad(
          `${param}[${i}]`,
          `content parts must be {"type": "text", "text": string}; only text is supported`,
          'invalid_type',
        );
      }
      return o.text;
    });
    return parts.join('');
  }
  throw bad(
    param,
    `'${param}' must be a string or an array of text parts, got ${describe(v)}`,
    'invalid_type',
  );
}

function parseMessages(v: unknown): ChatMessageIn[] {
  if (v === undefined) throw bad('messages', "you must provide 'messages'", 'missing_required_parameter');
  if (!Array.isArray(v))
    throw bad('messages', `'messages' must be an array, got ${describe(v)}`, 'invalid_type');
  if (v.length === 0) throw bad('messages', "'messages' must not be empty");
  return v.map((m, i) => {
    const p = `messages[${i}]`;
    const f = new Fields(asObjectParam(m, p), `${p}.`);
    const role = f.string('role', true);
    // "developer" is OpenAI's newer name for the system role
    const r = role === 'developer' ? 'system' : role;
    if (r !== 'system' && r !== 'user' && r !== 'assistant') {
      throw bad(
        `${p}.role`,
        `'${p}.role' must be "system", "user" or "assistant", got ${JSON.stringify(role)}`,
      );
    }
    const content = f.raw('content');
    if (content === undefined)
      throw bad(`${p}.content`, `you must provide '${p}.content'`, 'missing_required_parameter');
    const text = parseContent(content, `${p}.content`);
    f.ignore('name');
    f.refuseUnknown();
    return { role: r, content: text };
  });
}

/** Validates a /v1/chat/completions body. */
export function parseChatRequest(body: unknown, limits: ProtocolLimits = DEFAULT_LIMITS): ChatRequest {
  const f = new Fields(asObject(body, 'the request body'));
  const model = f.string('model', true);
  const messages = parseMessages(f.raw('messages'));
  const a = f.number('max_tokens', null, { min: 1, integer: true });
  const b = f.number('max_completion_tokens', null, { min: 1, integer: true });
  if (a !== null && b !== null && a !== b)
    throw bad('max_tokens', "give 'max_tokens' or 'max_completion_tokens', not two different values");
  const params = parseSampling(f, limits, a ?? b);
  const stream = f.bool('stream', false);
  const includeUsage = parseStreamOptions(f, stream);
  f.onlyDefault('logprobs', (v) => v === false, 'log-probabilities are not returned');
  f.onlyDefault('top_logprobs', (v) => v === 0, 'log-probabilities are not returned');
  f.onlyDefault('tools', (v) => Array.isArray(v) && v.length === 0, 'no tool calls');
  f.onlyDefault('tool_choice', (v) => v === 'none', 'no tool calls');
  f.onlyDefault('parallel_tool_calls', () => true, 'no tool calls');
  f.onlyDefault(
    'response_format',
    (v) =>
      v !== null &&
      typeof v === 'object' &&
      (v as { type?: unknown }).type === 'text' &&
      Object.keys(v).length === 1,
    'only {"type": "text"}',
  );
  refuseUnsupported(f);
  f.refuseUnknown();
  return { kind: 'chat', model, messages, stream, includeUsage, params };
}

// ------------------------------------------------------------------ responses

export type FinishReason = 'stop' | 'length';

export interface ChoiceResult {
  text: string;
  finishReason: FinishReason;
}

export interface Usage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
}

export function usageOf(promptTokens: number, completionTokens: number): Usage {
  return {
    prompt_tokens: promptTokens,
    completion_tokens: completionTokens,
    total_tokens: promptTokens + completionTokens,
  };
}

export function newId(kind: 'completion' | 'chat'): string {
  return `${kind === 'chat' ? 'chatcmpl' : 'cmpl'}-${randomBytes(12).toString('hex')}`;
}

export interface ResponseMeta {
  id: string;
  created: number;
  model: string;
}

export function completionResponse(
  m: ResponseMeta,
  choices: ChoiceResult[],
  usage: Usage,
): Record<string, unknown> {
  return {
    id: m.id,
    object: 'text_completion',
    created: m.created,
    model: m.model,
    choices: choices.map((c, index) => ({
      index,
      text: c.text,
      logprobs: null,
      finish_reason: c.finishReason,
    })),
    usage,
  };
}

export function chatResponse(
  m: ResponseMeta,
  choices: ChoiceResult[],
  usage: Usage,
): Record<string, unknown> {
  return {
    id: m.id,
    object: 'chat.completion',
    created: m.created,
    model: m.model,
    choices: choices.map((c, index) => ({
      index,
      message: { role: 'assistant', content: c.text },
      logprobs: null,
      finish_reason: c.finishReason,
    })),
    usage,
  };
}

/**
 * One stream chunk. Completions: choices[{index, text, logprobs, finish_reason}]. Chat:
 * choices[{index, delta, logprobs, finish_reason}], the first delta of a choice carrying the role.
 * `usage` chunks (include_usage) have no choices.
 */
export function streamChunk(
  kind: 'completion' | 'chat',
  m: ResponseMeta,
  choice: { index: number; text?: string; role?: boolean; finishReason: FinishReason | null } | null,
  usage?: Usage | null,
): Record<string, unknown> {
  const base = {
    id: m.id,
    object: kind === 'chat' ? 'chat.completion.chunk' : 'text_completion',
    created: m.created,
    model: m.model,
  };
  let choices: unknown[] = [];
  if (choice) {
    if (kind === 'chat') {
      const delta: Record<string, string> = {};
      if (choice.role) delta.role = 'assistant';
      if (choice.text !== undefined) delta.content = choice.text;
      choices = [{ index: choice.index, delta, logprobs: null, finish_reason: choice.finishReason }];
    } else {
      choices = [
        { index: choice.index, text: choice.text ?? '', logprobs: null, finish_reason: choice.finishReason },
      ];
    }
  }
  return usage !== undefined ? { ...base, choices, usage } : { ...base, choices };
}

/** Server-sent event framing of one JSON payload (or the final [DONE]). */
export function sse(payload: unknown): string {
  return `data: ${typeof payload === 'string' ? payload : JSON.stringify(payload)}\n\n`;
}
