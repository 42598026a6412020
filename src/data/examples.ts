/**
 * Training / seed examples: the row shapes nuggets accepts, normalised into one of two kinds.
 *
 * - `chat`: a conversation whose LAST message is the assistant answer; everything before it is prompt
 *   context (the reference trains and measures sensitivity on the last assistant turn only:
 *   its prompt is `messages[:-1]` rendered plus the assistant header, docs/method.md steps 1 and 6).
 *   Accepted rows:
 *     {"dataset", "id", "messages": [{"role", "content"}, ...]}   (the paper's rows)
 *     {"prompt", "answer"} | {"question", "answer"}                (pairs; GSM8K uses question/answer)
 *     {"instruction", "input"?, "output"}                          (Alpaca; user = instruction + "\n\n" + input)
 * - `text`: `{"text"}`, plain language-model training: the whole text is the answer (no prompt).
 *
 * Every problem is an InputError naming "file:line": unknown shapes, wrong field types, unknown
 * roles, a conversation that does not end with an assistant turn, empty answers.
 */
import { InputError } from '../errors.js';
import { readJsonl, type JsonlOptions, type JsonlRecord } from './jsonl.js';

export type Role = 'system' | 'user' | 'assistant';

export interface ChatMessage {
  role: Role;
  content: string;
}

interface ExampleBase {
  /** "file:line", for messages about this example. */
  source: string;
  /** 1-based line number in its file. */
  line: number;
  id?: string;
  dataset?: string;
}

export interface ChatExample extends ExampleBase {
  kind: 'chat';
  /** Non-empty; the last message is the assistant answer with non-blank content. */
  messages: ChatMessage[];
}

export interface TextExample extends ExampleBase {
  kind: 'text';
  text: string;
}

export type Example = ChatExample | TextExample;

const ROLES: readonly Role[] = ['system', 'user', 'assistant'];

const SHAPES =
  'expected one of {"messages":[{"role","content"},...]}, {"prompt","answer"}, {"question","answer"}, ' +
  '{"instruction","input","output"} or {"text"}';

function str(where: string, row: Record<string, unknown>, key: string, optional = false): string | undefined {
  const v = row[key];
  if (v === undefined && optional) return undefined;
  if (typeof v !== 'string') {
    throw new InputError(where, `field "${key}" must be a string, got ${v === null ? 'null' : Array.isArray(v) ? 'an array' : typeof v}`);
  }
  return v;
}

/** An id may be a string or a number in the wild; anything else is ignored rather than refused. */
function idOf(row: Record<string, unknown>): string | undefined {
  const v = row.id ?? row.task_id;
  return typeof v === 'string' || typeof v === 'number' ? String(v) : undefined;
}

function nonBlank(where: string, text: string, what: string): string {
  if (text.trim() === '') throw new InputError(where, `${what} is empty`);
  return text;
}

function parseMessages(where: string, raw: unknown): ChatMessage[] {
  if (!Array.isArray(raw)) throw new InputError(where, `"messages" must be an array of {"role","content"}`);
  if (raw.length === 0) throw new InputError(where, `"messages" is empty`);
  const out: ChatMessage[] = [];
  raw.forEach((m, i) => {
    if (m === null || typeof m !== 'object' || Array.isArray(m)) {
      throw new InputError(where, `messages[${i}] must be an object {"role","content"}`);
    }
    const { role, content } = m as Record<string, unknown>;
    if (typeof role !== 'string' || !ROLES.includes(role as Role)) {
      throw new InputError(where, `messages[${i}].role must be one of ${ROLES.join(', ')}, got ${JSON.stringify(role)}`);
    }
    if (typeof content !== 'string') {
      throw new InputError(where, `messages[${i}].content must be a string, got ${content === null ? 'null' : typeof content}`);
    }
    out.push({ role: role as Role, content });
  });
  const last = out[out.length - 1];
  if (last.role !== 'assistant') {
    throw new InputError(where, `the last message must be the assistant's answer, got role "${last.role}"`);
  }
  nonBlank(where, last.content, 'the answer (last assistant message)');
  return out;
}

/** Normalises one parsed row (see the file comment for the accepted shapes). */
export function toExample(file: string, rec: JsonlRecord): Example {
  const where = `${file}:${rec.line}`;
  const row = rec.value as Record<string, unknown>;
  if (row === null || typeof row !== 'object' || Array.isArray(row)) throw new InputError(where, SHAPES);
  const base: ExampleBase = { source: where, line: rec.line };
  const id = idOf(row);
  if (id !== undefined) base.id = id;
  if (typeof row.dataset === 'string') base.dataset = row.dataset;

  if ('messages' in row) {
    return { ...base, kind: 'chat', messages: parseMessages(where, row.messages) };
  }
  const pair = (user: string, answer: string): ChatExample => ({
    ...base,
    kind: 'chat',
    messages: [
      { role: 'user', content: user },
      { role: 'assistant', content: nonBlank(where, answer, 'the answer') },
    ],
  });
  if ('answer' in row && ('prompt' in row || 'question' in row)) {
    const key = 'prompt' in row ? 'prompt' : 'question';
    return pair(str(where, row, key)!, str(where, row, 'answer')!);
  }
  if ('instruction' in row && 'output' in row) {
    const instruction = str(where, row, 'instruction')!;
    const input = str(where, row, 'input', true) ?? '';
    // Alpaca rows as open-instruct turns them into a user message: the input follows after a blank line.
    const user = input.trim() === '' ? instruction : `${instruction}\n\n${input}`;
    return pair(user, str(where, row, 'output')!);
  }
  if ('text' in row) {
    return { ...base, kind: 'text', text: nonBlank(where, str(where, row, 'text')!, '"text"') };
  }
  const keys = Object.keys(row);
  throw new InputError(where, `${SHAPES}; this row has keys ${keys.length ? keys.map((k) => `"${k}"`).join(', ') : '(none)'}`);
}

/** Reads and normalises every example of a JSONL file (k first rows with `limit`). */
export function readExamples(path: string, opts: Pick<JsonlOptions, 'limit' | 'maxLineChars'> = {}): Example[] {
  const recs = readJsonl(path, { objects: true, limit: opts.limit, maxLineChars: opts.maxLineChars });
  if (recs.length === 0) throw new InputError(path, 'no examples (the file has no non-blank lines)');
  return recs.map((r) => toExample(path, r));
}

/** The answer text of an example (the last assistant message, or the whole text). */
export function answerOf(ex: Example): string {
  return ex.kind === 'text' ? ex.text : ex.messages[ex.messages.length - 1].content;
}
