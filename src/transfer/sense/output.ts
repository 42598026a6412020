/**
 * Where `sense` writes: the file `out` names, and its folder, cleared of the per-layer folders a killed
 * earlier run left behind.
 */
import { existsSync, mkdirSync, readdirSync, rmSync, statSync } from 'node:fs';
import { basename, dirname, join, sep } from 'node:path';
import { InputError } from '../../errors.js';

/** The file name `sense -o <folder>/` writes (and the study runner's sensitivity steps). */
export const SENSITIVITY_FILE = 'sensitivity.safetensors';

/**
 * The file `--out` names: a path ending in "/" or an existing folder means <folder>/sensitivity.safetensors
 * (the README writes `-o sens/`).
 */
export function senseOutputFile(out: string): string {
  if (out.endsWith('/') || out.endsWith(sep) || (existsSync(out) && statSync(out).isDirectory()))
    return join(out, SENSITIVITY_FILE);
  return out;
}

/** The infix of DiskSink's per-layer folder beside the output (sink.ts: ".<file>.parts-XXXXXX"). */
const PARTS_INFIX = '.parts-';

/**
 * Creates the output's folder, and removes per-layer folders that a killed earlier run of the same
 * output left behind (a clean run removes its own), with a note.
 */
export function prepareOutputFolder(out: string, log: (line: string) => void): void {
  const dir = dirname(out);
  try {
    mkdirSync(dir, { recursive: true });
  } catch (e) {
    throw new InputError(
      dir,
      `cannot create the output folder (${(e as NodeJS.ErrnoException).code ?? String(e)})`,
    );
  }
  const prefix = `.${basename(out)}${PARTS_INFIX}`;
  for (const name of readdirSync(dir)) {
    if (!name.startsWith(prefix)) continue;
    rmSync(join(dir, name), { recursive: true, force: true });
    log(`sense: removed ${join(dir, name)}, left by an interrupted earlier run`);
  }
}
