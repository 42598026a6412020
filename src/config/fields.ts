/**
 * Option fields: the small vocabulary the command schemas are written in, and the introspection
 * that turns one zod field into a command-line flag, help text and config-file key.
 *
 * Naming: a schema key is camelCase (`learningRate`); its flag is kebab-case (`--learning-rate`);
 * a config file may spell it kebab-case, snake_case or camelCase (`learning-rate`, `learning_rate`,
 * `learningRate`). Supported field types: string, path (a string resolved against the config file's
 * folder when it comes from a file), number, integer, boolean, enum, and lists of those (comma
 * separated on the command line).
 */
import { z } from 'zod';

/** Base schemas that are file-system paths, with values that are kept as they are (e.g. "self"). */
const PATHS = new WeakMap<z.ZodType, readonly string[]>();

/** A path option. `keep` lists literal values that are not paths (e.g. `--teacher self`). */
export function path(description: string, keep: readonly string[] = []): z.ZodString {
  const s = z.string().min(1).describe(description);
  PATHS.set(s, keep);
  return s;
}

export function str(description: string): z.ZodString {
  return z.string().describe(description);
}

export function num(description: string): z.ZodNumber {
  return z.number().describe(description);
}

export function int(description: string): z.ZodNumber {
  return z.number().int().describe(description);
}

export function bool(description: string): z.ZodBoolean {
  return z.boolean().describe(description);
}

export function oneOf<const T extends readonly [string, ...string[]]>(values: T, description: string) {
  return z.enum(values).describe(description);
}

export type FieldKind = 'string' | 'path' | 'number' | 'integer' | 'boolean' | 'enum' | 'list';

export interface FieldInfo {
  key: string;
  flag: string;
  kind: FieldKind;
  /** For lists: the kind of each item. */
  item?: Exclude<FieldKind, 'list' | 'boolean'>;
  /** Allowed values for enums (or list items). */
  choices?: readonly string[];
  description: string;
  hasDefault: boolean;
  default?: unknown;
  /** No default and not optional: the merged options must supply it. */
  required: boolean;
  /** Values of a path field that are not paths. */
  keep?: readonly string[];
}

type Def = {
  type: string;
  innerType?: z.ZodType;
  defaultValue?: unknown;
  element?: z.ZodType;
  entries?: Record<string, string>;
};
const defOf = (s: z.ZodType): Def => (s as unknown as { def: Def }).def;

export function camelToKebab(key: string): string {
  return key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
}

/** kebab-case or snake_case or camelCase -> camelCase. */
export function toCamel(key: string): string {
  return key.replace(/[-_]+([a-zA-Z0-9])/g, (_, c: string) => c.toUpperCase());
}

function baseKind(
  s: z.ZodType,
  key: string,
): { kind: Exclude<FieldKind, 'list'>; choices?: readonly string[]; keep?: readonly string[] } {
  const d = defOf(s);
  switch (d.type) {
    case 'string':
      return PATHS.has(s) ? { kind: 'path', keep: PATHS.get(s) } : { kind: 'string' };
    case 'number':
      return { kind: (s as z.ZodNumber).isInt ? 'integer' : 'number' };
    case 'boolean':
      return { kind: 'boolean' };
    case 'enum':
      return { kind: 'enum', choices: Object.values(d.entries ?? {}) };
    default:
      throw new Error(`config field "${key}": unsupported zod type "${d.type}"`);
  }
}

/** Everything the CLI and the config file need to know about one field of a command schema. */
export function fieldInfo(key: string, schema: z.ZodType): FieldInfo {
  let s = schema;
  let description = schema.description;
  let hasDefault = false;
  let dflt: unknown;
  let optional = false;
  for (;;) {
    const d = defOf(s);
    if (d.type === 'default') {
      hasDefault = true;
      dflt = typeof d.defaultValue === 'function' ? (d.defaultValue as () => unknown)() : d.defaultValue;
    } else if (d.type === 'optional' || d.type === 'nullable') {
      optional = true;
    } else break;
    s = d.innerType!;
    description ??= s.description;
  }
  description ??= s.description;
  if (!description) throw new Error(`config field "${key}" has no description (help text is required)`);
  const info: FieldInfo = {
    key,
    flag: `--${camelToKebab(key)}`,
    kind: 'string',
    description,
    hasDefault,
    required: !hasDefault && !optional,
  };
  if (hasDefault) info.default = dflt;
  if (defOf(s).type === 'array') {
    const el = baseKind(defOf(s).element!, key);
    if (el.kind === 'boolean') throw new Error(`config field "${key}": lists of booleans are not supported`);
    info.kind = 'list';
    info.item = el.kind;
    if (el.choices) info.choices = el.choices;
    if (el.keep) info.keep = el.keep;
  } else {
    const b = baseKind(s, key);
    info.kind = b.kind;
    if (b.choices) info.choices = b.choices;
    if (b.keep) info.keep = b.keep;
  }
  return info;
}

export type CommandSchema = z.ZodObject<z.ZodRawShape>;

/** Field infos of a command schema, in declaration order. */
export function fieldsOf(schema: CommandSchema): FieldInfo[] {
  return Object.entries(schema.shape).map(([k, v]) => fieldInfo(k, v as z.ZodType));
}
