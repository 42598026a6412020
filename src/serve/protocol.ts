/**
 * The OpenAI wire format as `nuggets serve` speaks it: request schemas (zod) for /v1/completions and
 * /v1/chat/completions, the error body, and the response / stream-chunk shapes.
 *
 * Validation follows vLLM's OpenAI server: a known field of the wrong type or out of range is a 400
 * naming the field (`param`, e.g. `messages[0].role`) and saying what is wrong; a field this server
 * does not know (a typo, or another server's extension such as `repetition_penalty`, `min_p`,
 * `service_tier`) is accepted, ignored and listed in `ignored` so the server can log it. OpenAI
 * features that would change the output but are not implemented (penalties, logit_bias, suffix,
 * tools, best_of other than n) are refused unless they ask for the default. `null` means "not
 * given" for every optional field, as OpenAI clients send it.
 */
import { randomBytes, randomInt } from 'node:crypto';
import { z } from 'zod';

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
  /** Fields given but not known to this server (accepted and ignored, for the log), e.g. "min_p". */
  ignored: string[];
  stream: boolean;
  /** stream_options.include_usage: one last chunk with usage and no choices. */
  includeUsage: boolean;
  params: SamplingParams;
}

export interface CompletionRequest extends Common {
  kind: 'completion';
  prompts: PromptIn[];
  /** The prompt is returned before the completion (and, with logprobs, scored token by token). */
  echo: boolean;
  /** Top-k alternatives per token in choices[i].logprobs; null = no logprobs (OpenAI's legacy field). */
  logprobs: number | null;
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

/** 64 prompts: lm-eval's API models send `batch_size` prompts per request (commonly 16 to 64). */
export const DEFAULT_LIMITS: ProtocolLimits = { maxChoices: 64, maxStop: 16 };

/** Most alternatives per token in logprobs (vLLM's default max_logprobs). */
export const MAX_LOGPROBS = 20;

/** OpenAI's completions default. */
export const COMPLETIONS_DEFAULT_MAX_TOKENS = 16;

// ------------------------------------------------------------------ request schemas

function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  return typeof v === 'object' ? 'an object' : `${typeof v} ${JSON.stringify(v)?.slice(0, 40)}`;
}

/** messages[0].content[1] style names for an issue path. */
function paramName(path: readonly PropertyKey[]): string {
  let s = '';
  for (const p of path) s += typeof p === 'number' ? `[${p}]` : s === '' ? String(p) : `.${String(p)}`;
  return s;
}

const TYPE_WORDS: Record<string, string> = {
  number: 'a number',
  int: 'an integer',
  string: 'a string',
  boolean: 'a boolean',
  array: 'an array',
  object: 'an object',
};

/**
 * The schemas below carry their "must be ..." phrase as the issue message (ranges, unions, enums);
 * zod's own messages are used only for plain type errors, reworded here.
 */
function issueError(iss: z.core.$ZodIssue): ApiError {
  const param = paramName(iss.path);
  const input = (iss as { input?: unknown }).input;
  const own = !iss.message.startsWith('Invalid input') && !iss.message.startsWith('Too ');
  const err = (message: string, code: string) =>
    new ApiError(400, message, 'invalid_request_error', param === '' ? null : param, code);
  if (param === '')
    return err(`the request body must be a JSON object, got ${describe(input)}`, 'invalid_type');
  if (input === undefined && (iss.code === 'invalid_type' || iss.code === 'invalid_union'))
    return err(`you must provide '${param}'`, 'missing_required_parameter');
  switch (iss.code) {
    case 'invalid_type':
      return err(
        `'${param}' must be ${TYPE_WORDS[iss.expected] ?? iss.expected}, got ${describe(input)}`,
        'invalid_type',
      );
    case 'invalid_union': {
      // one branch that got past the outer type (an array of bad parts) says more than the union
      const past = (e: z.core.$ZodIssue) =>
        e.path.length > 0 || (e.code !== 'invalid_type' && e.code !== 'invalid_value');
      const deeper = iss.errors.filter((b) => b.some(past));
      if (deeper.length === 1) {
        const inner = deeper[0].find(past)!;
        return issueError({ ...inner, path: [...iss.path, ...inner.path] });
      }
      return err(`'${param}' must be ${iss.message}, got ${describe(input)}`, 'invalid_type');
    }
    case 'too_small':
    case 'too_big':
      if (iss.origin === 'int')
        return err(`'${param}' must be an integer, got ${describe(input)}`, 'invalid_type');
      if (!own) return err(`'${param}' is out of range: ${iss.message}`, 'invalid_value');
      return err(
        `'${param}' must be ${iss.message}, got ${Array.isArray(input) ? `${input.length} items` : String(input)}`,
        'invalid_value',
      );
    case 'invalid_value':
      return err(`'${param}' must be ${iss.message}, got ${JSON.stringify(input)}`, 'invalid_value');
    case 'custom': {
      const code = (iss.params as { code?: string } | undefined)?.code ?? 'invalid_value';
      if (code === 'unsupported_parameter')
        return err(`'${param}' is not supported by this server (${iss.message})`, code);
      return err(iss.message.replaceAll('{param}', param), code);
    }
    default:
      return err(`'${param}': ${iss.message}`, 'invalid_value');
  }
}

/** Parses with `schema` or throws the first problem as a 400 ApiError. */
function parseOr400<T extends z.ZodType>(schema: T, body: unknown): z.output<T> {
  const r = schema.safeParse(body, { reportInput: true });
  if (!r.success) throw issueError(r.error.issues[0]);
  return r.data;
}

/** An optional field: absent and null both mean "not given". */
const opt = <T extends z.ZodType>(s: T) => s.nullish();

/** A number in [min, max] (or (min, max] with gtMin); the phrase goes into the 400's message. */
function ranged(min: number, max: number, o: { integer?: boolean; gtMin?: boolean } = {}) {
  const phrase = o.gtMin ? `in (${min}, ${max}]` : max === Infinity ? `>= ${min}` : `in [${min}, ${max}]`;
  let s = o.integer ? z.int() : z.number();
  s = o.gtMin ? s.gt(min, { error: phrase }) : s.gte(min, { error: phrase });
  return max === Infinity ? s : s.lte(max, { error: phrase });
}

/** An OpenAI field accepted only at its default value (the feature is not implemented). */
function onlyDefault(isDefault: (v: unknown) => boolean, what: string) {
  return z
    .unknown()
    .refine((v) => v === null || isDefault(v), { error: what, params: { code: 'unsupported_parameter' } })
    .optional();
}

const tokenIds = z.array(z.int().gte(0, { error: 'a token id (an integer >= 0)' })).min(1);
const PROMPT_SHAPES =
  'a string, an array of strings, an array of token ids or an array of such arrays (non-empty)';
const promptSchema = z.union([z.string(), z.array(z.string()).min(1), tokenIds, z.array(tokenIds).min(1)], {
  error: PROMPT_SHAPES,
});

const streamOptionsSchema = z.looseObject({ include_usage: opt(z.boolean()) });

const isZero = (v: unknown) => v === 0;

/** Fields both endpoints take (OpenAI's, plus vLLM's top_k). */
function commonShape(limits: ProtocolLimits) {
  return {
    model: z.string(),
    n: opt(ranged(1, limits.maxChoices, { integer: true })),
    seed: opt(z.int()),
    temperature: opt(ranged(0, 2)),
    top_p: opt(ranged(0, 1, { gtMin: true })),
    // vLLM's extension; -1 and 0 both mean "all tokens"
    top_k: opt(ranged(-1, Infinity, { integer: true })),
    stop: opt(
      z.union(
        [z.string(), z.array(z.string()).max(limits.maxStop, { error: `at most ${limits.maxStop} strings` })],
        {
          error: 'a string or an array of strings',
        },
      ),
    ),
    stream: opt(z.boolean()),
    stream_options: opt(streamOptionsSchema),
    presence_penalty: onlyDefault(isZero, 'only 0'),
    frequency_penalty: onlyDefault(isZero, 'only 0'),
    logit_bias: onlyDefault(
      (v) => typeof v === 'object' && v !== null && Object.keys(v).length === 0,
      'only {}',
    ),
    // accepted, no effect on the output
    user: z.unknown().optional(),
    metadata: z.unknown().optional(),
    store: z.unknown().optional(),
  };
}

function completionSchema(limits: ProtocolLimits) {
  return z.looseObject({
    ...commonShape(limits),
    prompt: promptSchema,
    max_tokens: opt(ranged(0, Infinity, { integer: true })),
    echo: opt(z.boolean()),
    // OpenAI's legacy field: top-k per token; false (some clients) = none
    logprobs: opt(
      z.union([ranged(0, MAX_LOGPROBS, { integer: true }), z.literal(false)], {
        error: `an integer in [0, ${MAX_LOGPROBS}]`,
      }),
    ),
    best_of: opt(ranged(1, Infinity, { integer: true })),
    suffix: onlyDefault((v) => v === '', 'no insertion mode'),
  });
}

/** A text content part; anything else (images, audio) is refused by name. */
const textPart = z.custom<{ type: 'text'; text: string }>(
  (p) =>
    p !== null &&
    typeof p === 'object' &&
    (p as { type?: unknown }).type === 'text' &&
    typeof (p as { text?: unknown }).text === 'string',
  { error: 'content parts must be {"type": "text", "text": string}; only text is supported ({param})' },
);

const messageSchema = z.looseObject({
  // "developer" is OpenAI's newer name for the system role
  role: z.enum(['system', 'user', 'assistant', 'developer'], { error: '"system", "user" or "assistant"' }),
  content: z.union([z.string(), z.array(textPart)], { error: 'a string or an array of text parts' }),
  name: z.unknown().optional(),
});

function chatSchema(limits: ProtocolLimits) {
  return z.looseObject({
    ...commonShape(limits),
    messages: z.array(messageSchema).min(1, { error: 'a non-empty array' }),
    max_tokens: opt(ranged(1, Infinity, { integer: true })),
    max_completion_tokens: opt(ranged(1, Infinity, { integer: true })),
    logprobs: onlyDefault((v) => v === false, 'log-probabilities are returned by /v1/completions only'),
    top_logprobs: onlyDefault(isZero, 'log-probabilities are returned by /v1/completions only'),
    tools: onlyDefault((v) => Array.isArray(v) && v.length === 0, 'no tool calls'),
    tool_choice: onlyDefault((v) => v === 'none', 'no tool calls'),
    parallel_tool_calls: z.unknown().optional(),
    response_format: onlyDefault(
      (v) =>
        v !== null &&
        typeof v === 'object' &&
        (v as { type?: unknown }).type === 'text' &&
        Object.keys(v).length === 1,
      'only {"type": "text"}',
    ),
  });
}

/** Schemas depend on the limits; a server uses one limits object for its lifetime. */
const schemaCache = new WeakMap<ProtocolLimits, { completion: z.ZodType; chat: z.ZodType }>();
function schemasFor(limits: ProtocolLimits) {
  let s = schemaCache.get(limits);
  if (!s) schemaCache.set(limits, (s = { completion: completionSchema(limits), chat: chatSchema(limits) }));
  return s as { completion: ReturnType<typeof completionSchema>; chat: ReturnType<typeof chatSchema> };
}

/** Keys of `obj` that `schema` does not name, with `prefix` ("stream_options.", "messages[0]."). */
function unknownKeys(obj: unknown, schema: { shape: Record<string, unknown> }, prefix = ''): string[] {
  if (obj === null || typeof obj !== 'object' || Array.isArray(obj)) return [];
  return Object.keys(obj)
    .filter((k) => !(k in schema.shape))
    .map((k) => prefix + k);
}

const bad = (param: string, message: string, code = 'invalid_value') =>
  new ApiError(400, message, 'invalid_request_error', param, code);

type CommonFields = z.output<ReturnType<typeof completionSchema>> | z.output<ReturnType<typeof chatSchema>>;

function samplingOf(f: CommonFields, maxTokens: number | null): SamplingParams {
  const stop = f.stop ?? [];
  return {
    maxTokens,
    temperature: f.temperature ?? 1,
    topP: f.top_p ?? 1,
    topK: Math.max(0, f.top_k ?? 0),
    n: f.n ?? 1,
    stop: (typeof stop === 'string' ? [stop] : stop).filter((s) => s !== ''),
    seed: f.seed ?? randomInt(0, 2 ** 31),
  };
}

function streamFlags(f: CommonFields): { stream: boolean; includeUsage: boolean } {
  const stream = f.stream ?? false;
  if (f.stream_options != null && !stream)
    throw bad('stream_options', "'stream_options' is only allowed when 'stream' is true");
  return { stream, includeUsage: f.stream_options?.include_usage ?? false };
}

function toPrompts(p: z.output<typeof promptSchema>): PromptIn[] {
  if (typeof p === 'string') return [{ text: p }];
  if (typeof p[0] === 'number') return [{ ids: p as number[] }];
  return (p as (string | number[])[]).map((x) => (typeof x === 'string' ? { text: x } : { ids: x }));
}

/** Validates a /v1/completions body. */
export function parseCompletionRequest(
  body: unknown,
  limits: ProtocolLimits = DEFAULT_LIMITS,
): CompletionRequest {
  const schema = schemasFor(limits).completion;
  const f = parseOr400(schema, body);
  const prompts = toPrompts(f.prompt);
  const params = samplingOf(f, f.max_tokens ?? COMPLETIONS_DEFAULT_MAX_TOKENS);
  const { stream, includeUsage } = streamFlags(f);
  if (f.best_of != null && f.best_of !== params.n)
    throw bad('best_of', `'best_of' other than n is not supported by this server`, 'unsupported_parameter');
  const logprobs = typeof f.logprobs === 'number' ? f.logprobs : null;
  if (logprobs !== null && stream)
    throw bad(
      'logprobs',
      "'logprobs' with 'stream' is not supported by this server",
      'unsupported_parameter',
    );
  if (prompts.length * params.n > limits.maxChoices) {
    throw bad(
      'n',
      `${prompts.length} prompts x n = ${params.n} is ${prompts.length * params.n} choices; at most ${limits.maxChoices} per request`,
    );
  }
  return {
    kind: 'completion',
    model: f.model,
    ignored: [
      ...unknownKeys(body, schema),
      ...unknownKeys(f.stream_options, streamOptionsSchema, 'stream_options.'),
    ],
    prompts,
    echo: f.echo ?? false,
    logprobs,
    stream,
    includeUsage,
    params,
  };
}

/** Validates a /v1/chat/completions body. */
export function parseChatRequest(body: unknown, limits: ProtocolLimits = DEFAULT_LIMITS): ChatRequest {
  const schema = schemasFor(limits).chat;
  const f = parseOr400(schema, body);
  const a = f.max_tokens ?? null;
  const b = f.max_completion_tokens ?? null;
  if (a !== null && b !== null && a !== b)
    throw bad('max_tokens', "give 'max_tokens' or 'max_completion_tokens', not two different values");
  const { stream, includeUsage } = streamFlags(f);
  const raw = (body as { messages: unknown[] }).messages;
  return {
    kind: 'chat',
    model: f.model,
    ignored: [
      ...unknownKeys(body, schema),
      ...unknownKeys(f.stream_options, streamOptionsSchema, 'stream_options.'),
      ...raw.flatMap((m, i) => unknownKeys(m, messageSchema, `messages[${i}].`)),
    ],
    messages: f.messages.map((m) => ({
      role: m.role === 'developer' ? 'system' : m.role,
      content: typeof m.content === 'string' ? m.content : m.content.map((p) => p.text).join(''),
    })),
    stream,
    includeUsage,
    params: samplingOf(f, a ?? b),
  };
}

// ------------------------------------------------------------------ responses

export type FinishReason = 'stop' | 'length';

/**
 * choices[i].logprobs of a completion, OpenAI's legacy layout (vLLM's too): one entry per token
 * (the echoed prompt's first, when echo is on, then the generated ones); `token_logprobs[i]` is
 * log p(token i | tokens before it), null for the first prompt token, which has no context;
 * `top_logprobs[i]` maps the k likeliest tokens' text (and the chosen token's) to their
 * log-probabilities; `text_offset[i]` is where token i's text starts in the choice's text.
 */
export interface CompletionLogprobs {
  tokens: string[];
  token_logprobs: (number | null)[];
  top_logprobs: (Record<string, number> | null)[];
  text_offset: number[];
}

export interface ChoiceResult {
  text: string;
  finishReason: FinishReason;
  /** Set when the request asked for logprobs. */
  logprobs?: CompletionLogprobs | null;
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
      logprobs: c.logprobs ?? null,
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
