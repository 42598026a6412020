/**
 * Options given as an object (the library API, the study runner): validated by the command's own
 * schema, the same one the flags and config files go through, with its defaults filled in. Errors
 * are InputErrors that name the option by its key, as the caller wrote it.
 */
import type { z } from 'zod';
import { InputError } from '../errors.js';
import { schemaError, type Origins } from './file.js';
import { COMMAND_SCHEMAS, type CommandName } from './schemas.js';

/** The validated options of a command (defaults applied). */
export type OptionsOf<C extends CommandName> = z.infer<(typeof COMMAND_SCHEMAS)[C]>;
/** The options of a command as a caller passes them (fields with a default may be left out). */
export type InputOf<C extends CommandName> = z.input<(typeof COMMAND_SCHEMAS)[C]>;

export function parseOptions<C extends CommandName>(command: C, input: InputOf<C>): OptionsOf<C> {
  const label = command.replace('-', ' ');
  if (input === null || typeof input !== 'object' || Array.isArray(input))
    throw new InputError(label, 'options must be an object of option: value');
  const schema = COMMAND_SCHEMAS[command];
  const parsed = schema.safeParse(input);
  if (parsed.success) return parsed.data as OptionsOf<C>;
  const values = input as Record<string, unknown>;
  const origins: Origins = {};
  for (const k of Object.keys(values)) origins[k] = `${label} options`;
  throw schemaError(parsed.error.issues, schema, values, origins, label, true);
}
