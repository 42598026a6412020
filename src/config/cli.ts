/**
 * Command-line side of the option schemas: every schema field becomes a commander option (flag,
 * value parser, help with its default), plus `--config <file>`; `resolveOptions` merges
 * defaults < config file < flags and validates the result with the same schema.
 *
 * Commander is given NO defaults, so `cmd.opts()` holds exactly the flags the user typed and a flag
 * overrides the file only when it was given. Booleans get both `--x` and `--no-x` (either may be
 * needed to override a file). Lists are comma separated and may also be repeated.
 *
 * Usage in a command module:
 *   const cmd = program.command('train').description('...');
 *   addSchemaOptions(cmd, 'train');
 *   cmd.action(async (flags) => { const opts = resolveOptions('train', flags); ... });
 */
import { InvalidArgumentError, Option, type Command } from 'commander';
import { InputError } from '../errors.js';
import { fieldsOf, type FieldInfo } from './fields.js';
import { closestValue, configValues, readConfigFile, schemaError, type Origins } from './file.js';
import type { OptionsOf } from './parse.js';
import { COMMAND_SCHEMAS, type CommandName } from './schemas.js';

export type { OptionsOf } from './parse.js';

function showDefault(v: unknown): string {
  if (Array.isArray(v)) return v.join(',');
  if (typeof v === 'string') return v === '' ? '""' : v;
  return String(v);
}

function parseNumber(raw: string, integer: boolean): number {
  const v = raw.trim() === '' ? NaN : Number(raw);
  if (!Number.isFinite(v)) throw new InvalidArgumentError(`expected ${integer ? 'an integer' : 'a number'}.`);
  if (integer && !Number.isInteger(v)) throw new InvalidArgumentError('expected an integer.');
  return v;
}

function parseItem(f: FieldInfo, raw: string): unknown {
  switch (f.item) {
    case 'number':
      return parseNumber(raw, false);
    case 'integer':
      return parseNumber(raw, true);
    case 'enum':
      if (!f.choices!.includes(raw)) {
        const hint = closestValue(raw, f.choices!);
        throw new InvalidArgumentError(
          `"${raw}" is not one of ${f.choices!.join(', ')}${hint ? ` (did you mean "${hint}"?)` : ''}.`,
        );
      }
      return raw;
    default:
      return raw;
  }
}

const VALUE_NAME: Record<string, string> = {
  path: 'path',
  string: 'text',
  number: 'number',
  integer: 'integer',
  enum: 'choice',
};

/** Adds one option per schema field (and `--config <file>`) to a commander command. */
export function addSchemaOptions(
  cmd: Command,
  command: CommandName,
  opts: { config?: boolean } = {},
): Command {
  for (const f of fieldsOf(COMMAND_SCHEMAS[command])) {
    const suffix = f.required ? ' (required)' : f.hasDefault ? ` (default: ${showDefault(f.default)})` : '';
    if (f.kind === 'boolean') {
      // Both spellings exist (either may be needed to override a config file); help shows the one
      // that changes the default.
      const on = new Option(f.flag, f.description + (f.required ? ' (required)' : ''));
      const off = new Option(`--no-${f.flag.slice(2)}`, `turn off: ${f.description}`);
      if (f.hasDefault && f.default === true) on.hideHelp();
      else if (f.hasDefault) off.hideHelp();
      cmd.addOption(on);
      cmd.addOption(off);
      continue;
    }
    if (f.kind === 'list') {
      const o = new Option(
        `${f.flag} <${f.item === 'enum' ? 'names' : `${VALUE_NAME[f.item!]}s`}>`,
        f.description + suffix,
      );
      o.argParser((raw: string, prev: unknown[] | undefined) => {
        const items = raw
          .split(',')
          .map((s) => s.trim())
          .filter((s) => s !== '')
          .map((s) => parseItem(f, s));
        return [...(prev ?? []), ...items];
      });
      cmd.addOption(o);
      continue;
    }
    // -o is short for --out on every command that writes.
    const flags = f.key === 'out' ? `-o, ${f.flag}` : f.flag;
    const o = new Option(`${flags} <${VALUE_NAME[f.kind]}>`, f.description + suffix);
    if (f.kind === 'enum') o.choices(f.choices!);
    else if (f.kind === 'number' || f.kind === 'integer')
      o.argParser((raw: string) => parseNumber(raw, f.kind === 'integer'));
    cmd.addOption(o);
  }
  if (opts.config ?? true)
    cmd.addOption(new Option('--config <file>', 'YAML file with options (flags override it)'));
  return cmd;
}

/**
 * The validated options of a command: schema defaults, overridden by the config file (`flags.config`),
 * overridden by the flags given. Errors are InputErrors naming the file or the flag at fault.
 */
export function resolveOptions<C extends CommandName>(
  command: C,
  flags: Record<string, unknown>,
): OptionsOf<C> {
  const schema = COMMAND_SCHEMAS[command];
  const { config, ...given } = flags;
  const origins: Origins = {};
  let merged: Record<string, unknown> = {};
  if (typeof config === 'string') {
    merged = configValues(config, readConfigFile(config), command);
    for (const k of Object.keys(merged)) origins[k] = config;
  }
  for (const [k, v] of Object.entries(given)) {
    if (v === undefined) continue;
    merged[k] = v;
    origins[k] = 'flag';
  }
  const parsed = schema.safeParse(merged);
  if (!parsed.success)
    throw schemaError(parsed.error.issues, schema, merged, origins, command.replace('-', ' '));
  return parsed.data as OptionsOf<C>;
}

/**
 * Folds a second spelling of an option (a positional argument such as `nuggets eval <model>`, or an
 * alias flag such as --output for --out) into the flags before resolveOptions: undefined leaves them
 * alone; a different value given both ways is an InputError(command, conflict).
 */
export function foldAlias(
  flags: Record<string, unknown>,
  key: string,
  value: unknown,
  command: string,
  conflict: () => string,
): void {
  if (value === undefined) return;
  if (flags[key] !== undefined && flags[key] !== value) throw new InputError(command, conflict());
  flags[key] = value;
}

/** The flags that would reproduce `options` (for model cards and manifests: "the command line"). */
export function toFlags(command: CommandName, options: Record<string, unknown>): string[] {
  const out: string[] = [];
  for (const f of fieldsOf(COMMAND_SCHEMAS[command])) {
    const v = options[f.key];
    if (v === undefined) continue;
    if (f.kind === 'boolean') {
      if (!f.hasDefault || v !== f.default) out.push(v ? f.flag : `--no-${f.flag.slice(2)}`);
      continue;
    }
    if (f.hasDefault && JSON.stringify(v) === JSON.stringify(f.default)) continue;
    out.push(f.flag, Array.isArray(v) ? v.join(',') : String(v));
  }
  return out;
}
