/**
 * Config files (YAML) for the commands, and the merge "defaults < file < flags".
 *
 * A file is either flat (the options of one command) or sectioned: every top-level key a command name
 * (`sense:`, `extract:`, `train:`...), each section holding that command's options, so one file can
 * describe a whole study. Keys may be kebab-case, snake_case or camelCase. Unknown keys are refused
 * with the closest valid key suggested; wrong types name the key and the expected type; relative
 * paths in a file are resolved against the file's folder (so a config works from any directory).
 */
import { readFileSync } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';
import { parseDocument } from 'yaml';
import type { z } from 'zod';
import { InputError } from '../errors.js';
import { camelToKebab, fieldsOf, toCamel, type CommandSchema, type FieldInfo } from './fields.js';
import { COMMAND_SCHEMAS, type CommandName } from './schemas.js';

/** Levenshtein edit distance (insert, delete, substitute; all cost 1). */
export function levenshtein(a: string, b: string): number {
  if (a === b) return 0;
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) {
      cur[j] = Math.min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    prev = cur;
  }
  return prev[b.length];
}

/** Writes a camelCase key in the style of `like` (snake_case, kebab-case or camelCase). */
function spellLike(key: string, like: string): string {
  if (like.includes('_')) return camelToKebab(key).replace(/-/g, '_');
  if (/[A-Z]/.test(like)) return key;
  return camelToKebab(key);
}

/** The valid key closest to `given` (compared in kebab-case), spelled in the user's style. */
export function closestKey(given: string, valid: readonly string[]): string | null {
  const g = camelToKebab(toCamel(given)).toLowerCase();
  let best: string | null = null;
  let bestD = Infinity;
  for (const k of valid) {
    const kk = camelToKebab(k);
    // A shortened key ("warmup" for "warmup-ratio") is a near miss too: compare with the key's prefix.
    const d = Math.min(levenshtein(g, kk), levenshtein(g, kk.slice(0, g.length)) + 0.5);
    if (d < bestD) {
      bestD = d;
      best = k;
    }
  }
  return best === null ? null : spellLike(best, given);
}

/** The value closest to `given` by plain edit distance (for enum choices). */
export function closestValue(given: string, values: readonly string[]): string | null {
  let best: string | null = null;
  let bestD = Infinity;
  for (const v of values) {
    const d = levenshtein(given.toLowerCase(), v.toLowerCase());
    if (d < bestD) {
      bestD = d;
      best = v;
    }
  }
  return best;
}

/** Where each merged value came from, for error messages. */
export type Origins = Record<string, string>;

function typeName(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'object') return 'a mapping';
  if (typeof v === 'string')
    return `the string ${JSON.stringify(v.length > 40 ? v.slice(0, 37) + '...' : v)}`;
  return `${typeof v} ${String(v)}`;
}

function expected(f: FieldInfo): string {
  switch (f.kind) {
    case 'path':
      return 'a path (string)';
    case 'string':
      return 'a string';
    case 'number':
      return 'a number';
    case 'integer':
      return 'an integer';
    case 'boolean':
      return 'true or false';
    case 'enum':
      return `one of ${f.choices!.join(', ')}`;
    case 'list': {
      const item =
        f.item === 'enum'
          ? `values from ${f.choices!.join(', ')}`
          : `${f.item === 'integer' ? 'integer' : f.item}s`;
      return `a list of ${item}`;
    }
  }
}

/** Parses a YAML config file into a plain object; syntax errors name file:line:column. */
export function readConfigFile(file: string): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new InputError(file, `cannot read config file (${(e as NodeJS.ErrnoException).code ?? String(e)})`);
  }
  // prettyErrors fills in linePos (and appends "at line L, column C" plus a code frame, dropped here).
  const doc = parseDocument(text, { prettyErrors: true, uniqueKeys: true });
  if (doc.errors.length > 0) {
    const err = doc.errors[0];
    const pos = err.linePos?.[0];
    const message = err.message.split('\n')[0].replace(/ at line \d+, column \d+:?$/, '');
    throw new InputError(pos ? `${file}:${pos.line}:${pos.col}` : file, `invalid YAML: ${message}`);
  }
  const value = doc.toJS() as unknown;
  if (value === null || value === undefined) return {};
  if (typeof value !== 'object' || Array.isArray(value)) {
    throw new InputError(file, `a config file must be a mapping of option: value, got ${typeName(value)}`);
  }
  return value as Record<string, unknown>;
}

/**
 * The options of `command` from a parsed file: picks the command's section of a sectioned file,
 * normalises keys to camelCase, refuses unknown or duplicate keys, checks each value's type, and
 * resolves relative paths against `baseDir`.
 */
export function configValues(
  file: string,
  raw: Record<string, unknown>,
  command: CommandName,
  baseDir = dirname(resolve(file)),
): Record<string, unknown> {
  return sectionValues(file, file, raw, command, baseDir, true);
}

function sectionValues(
  file: string,
  where: string,
  raw: Record<string, unknown>,
  command: CommandName,
  baseDir: string,
  top: boolean,
): Record<string, unknown> {
  const keys = Object.keys(raw);
  const commands = Object.keys(COMMAND_SCHEMAS);
  const sections = top ? keys.filter((k) => commands.includes(k)) : [];
  let values = raw;
  if (sections.length > 0) {
    if (sections.length !== keys.length) {
      const stray = keys.filter((k) => !commands.includes(k));
      throw new InputError(
        file,
        `mixes command sections (${sections.join(', ')}) with top-level options (${stray.join(', ')}); put every option in a section`,
      );
    }
    for (const s of sections) {
      const v = raw[s];
      if (v !== null && (typeof v !== 'object' || Array.isArray(v)))
        throw new InputError(file, `section "${s}" must be a mapping of option: value`);
    }
    // Every section is checked now, so a typo in a later step's section surfaces before hours of work.
    const label = (s: string) => `${file} (section ${s})`;
    for (const s of sections) {
      if (s !== command)
        sectionValues(
          file,
          label(s),
          (raw[s] ?? {}) as Record<string, unknown>,
          s as CommandName,
          baseDir,
          false,
        );
    }
    values = (raw[command] ?? {}) as Record<string, unknown>;
    where = label(command);
  }
  const fields = new Map(fieldsOf(COMMAND_SCHEMAS[command]).map((f) => [f.key, f]));
  const out: Record<string, unknown> = {};
  const spelled: Record<string, string> = {};
  for (const [given, v] of Object.entries(values)) {
    const key = toCamel(given);
    const f = fields.get(key);
    if (!f) {
      const hint = closestKey(given, [...fields.keys()]);
      throw new InputError(
        where,
        `unknown option "${given}"${hint ? `; did you mean "${hint}"?` : ''} (see nuggets ${command.replace('-', ' ')} --help)`,
      );
    }
    if (key in spelled)
      throw new InputError(where, `option "${given}" is given twice (also as "${spelled[key]}")`);
    spelled[key] = given;
    out[key] = checkValue(where, given, f, v, baseDir);
  }
  return out;
}

function resolvePath(f: FieldInfo, v: string, baseDir: string): string {
  return f.keep?.includes(v) || isAbsolute(v) ? v : resolve(baseDir, v);
}

/** Type-checks one file value (types only; ranges are left to the schema) and resolves paths. */
function checkValue(where: string, given: string, f: FieldInfo, v: unknown, baseDir: string): unknown {
  const bad = (x: unknown = v) => {
    const hint = f.choices && typeof x === 'string' ? closestValue(x, f.choices) : null;
    return new InputError(
      where,
      `option "${given}": expected ${expected(f)}, got ${typeName(x)}${hint ? ` (did you mean "${hint}"?)` : ''}`,
    );
  };
  const one = (kind: FieldInfo['kind'], x: unknown): unknown => {
    switch (kind) {
      case 'path':
        if (typeof x !== 'string') throw bad(x);
        return resolvePath(f, x, baseDir);
      case 'string':
        if (typeof x !== 'string') throw bad(x);
        return x;
      case 'number':
        if (typeof x !== 'number' || !Number.isFinite(x)) throw bad(x);
        return x;
      case 'integer':
        if (typeof x !== 'number' || !Number.isInteger(x)) throw bad(x);
        return x;
      case 'boolean':
        if (typeof x !== 'boolean') throw bad(x);
        return x;
      case 'enum':
        if (typeof x !== 'string' || !f.choices!.includes(x)) throw bad(x);
        return x;
      default:
        throw bad(x);
    }
  };
  if (f.kind === 'list') {
    // A single value is accepted as a one-element list (`modules: all`), as a comma list would be on the CLI.
    const xs = Array.isArray(v)
      ? v
      : typeof v === 'string'
        ? v
            .split(',')
            .map((s) => s.trim())
            .filter((s) => s !== '')
        : [v];
    return xs.map((x) => one(f.item!, x));
  }
  return one(f.kind, v);
}

/**
 * Formats the schema issues as "key: problem" in the words of the option's source: flags and
 * config files by default, or option keys (`asKeys`) for options given as an object (library calls).
 */
export function schemaError(
  issues: z.core.$ZodIssue[],
  schema: CommandSchema,
  values: Record<string, unknown>,
  origins: Origins,
  command: string,
  asKeys = false,
): InputError {
  const fields = new Map(fieldsOf(schema).map((f) => [f.key, f]));
  const lines: string[] = [];
  let source = '';
  for (const issue of issues) {
    const key = String(issue.path[0] ?? '');
    const f = fields.get(key);
    const origin = origins[key];
    source ||= origin && origin !== 'flag' ? origin : command;
    const name = f ? (asKeys || (origin && origin !== 'flag') ? key : f.flag) : key;
    if (f && issue.code === 'invalid_type' && values[key] === undefined && issue.path.length === 1) {
      lines.push(
        asKeys
          ? `${key} is required (${f.description})`
          : `${f.flag} is required (${f.description}); give it as a flag or in a config file`,
      );
    } else if (f && (issue.code === 'invalid_type' || issue.code === 'invalid_value')) {
      lines.push(`${name}: expected ${expected(f)}`);
    } else if (issue.code === 'unrecognized_keys') {
      const hints = issue.keys.map((k) => {
        const hint = closestKey(k, [...fields.keys()]);
        return hint ? `${k} (did you mean "${hint}"?)` : k;
      });
      lines.push(`unknown option(s) ${hints.join(', ')}`);
    } else {
      lines.push(
        `${name}: ${issue.message
          .replace(/^Too (big|small): expected number to be /, 'must be ')
          .replace(/^Too small: expected array to have >=(\d+) items?$/, 'needs at least $1 value(s)')
          .replace(/^Invalid input: /, '')}`,
      );
    }
  }
  return new InputError(source, lines.join('; '));
}
