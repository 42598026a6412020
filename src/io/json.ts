/** Reading JSON files given by the user (configs, manifests, adapter and tokenizer files). */
import { readFileSync } from 'node:fs';
import { InputError } from '../errors.js';

/** Reads and parses a JSON file, with InputErrors that name it (unreadable, or not valid JSON). */
export function readJsonFile(path: string): unknown {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new InputError(path, `cannot read: ${(e as Error).message}`);
  }
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new InputError(path, `not valid JSON (${(e as Error).message})`);
  }
}
