/**
 * manifest.json of an initialisation folder: everything needed to audit or repeat an extraction —
 * the selected teacher layers and their scores, each matrix's window offset and share of sensitivity
 * captured, its singular values and the energy kept at rank r, every option, and sha256 hashes of
 * the inputs.
 */
import { closeSync, existsSync, openSync, readSync, readdirSync, statSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { basename, join } from 'node:path';
import { InputError } from '../errors.js';
import { readJsonFile } from '../io/json.js';
import { writeJsonAtomic } from '../io/atomic.js';
import type { LayerSelection } from './layers.js';
import type { InitKind } from './plan.js';
import type { ModuleKind } from './modules.js';
import type { Structure } from './submatrix.js';

export const MANIFEST_FILE = 'manifest.json';
export const MANIFEST_FORMAT = 'nuggets-transfer-manifest';
export const MANIFEST_VERSION = 1;

export interface FileHash {
  name: string;
  bytes: number;
  /** sha256 of the whole file; null for a file over WHOLE_HASH_MAX_BYTES (see endsSha256). */
  sha256: string | null;
  /**
   * For files over WHOLE_HASH_MAX_BYTES only: sha256 of the first and the last ENDS_BYTES (a safetensors
   * header with every name, shape and offset is at the start). Hashing a 13B teacher, its 26 GB
   * sensitivity and a 7B student whole would read 65 GB, longer than the extraction itself.
   */
  endsSha256?: string;
}

/** Files up to this size are hashed whole. */
export const WHOLE_HASH_MAX_BYTES = 1 << 30;
/** How much of each end of a larger file its endsSha256 covers. */
export const ENDS_BYTES = 16 << 20;

export interface InputHash {
  path: string;
  files: FileHash[];
}

export interface MatrixRecord {
  /** Student module path (PEFT naming), e.g. model.layers.3.self_attn.q_proj. */
  module: string;
  kind: ModuleKind;
  studentLayer: number | null;
  /** Teacher layer feeding it (null for embed_tokens / lm_head, or when the init reads no teacher). */
  teacherLayer: number | null;
  teacherTensor: string | null;
  /** Factor-layout shapes (embedding: [d, V]). */
  shape: [number, number];
  teacherShape: [number, number] | null;
  transposed: boolean;
  structure: Structure | null;
  /** Window top-left (row, col) in the teacher's factor layout, for block / heads. */
  offset: [number, number] | null;
  /** Share of the matrix's total sensitivity inside the kept entries (0..1). */
  share: number | null;
  /**
   * Top-r singular values of the factorised matrix: W_e (teacher init; for random-matched, the
   * teacher block whose delta norm the random factors match), the student's own weight (PiSSA),
   * empty for the plain LoRA init.
   */
  singularValues: number[];
  /** sum of the kept s_i^2 over ||W||_F^2. */
  energyKept: number | null;
  /** The SVD that factorised it ('auto' resolved by the block's shape); null when none ran. */
  svd?: 'exact' | 'randomized' | null;
  /** ||scale·B·A||_F, the norm of the delta the subtract trick removes. */
  deltaNorm: number;
}

export interface Manifest {
  format: typeof MANIFEST_FORMAT;
  version: typeof MANIFEST_VERSION;
  created: string;
  init: InitKind;
  lora: { r: number; alpha: number; scale: number; dropout: number };
  /** The trainer forms W_s - scale·B·A for every module before training (docs/method.md step 5). */
  subtract: boolean;
  /** The student's tied lm_head must be untied before the subtract trick (see plan.ts). */
  untieStudentHead: boolean;
  layers: LayerSelection | null;
  options: Record<string, unknown>;
  matrices: MatrixRecord[];
  inputs: Record<string, InputHash>;
  notes: string[];
}

/**
 * sha256 of a file, streamed in 8 MiB chunks; a file over `wholeMaxBytes` gets endsSha256 instead (its
 * first and last ENDS_BYTES), so that recording a many-GB model's identity does not mean reading it.
 */
export function sha256File(path: string, wholeMaxBytes = WHOLE_HASH_MAX_BYTES): FileHash {
  const size = statSync(path).size;
  const h = createHash('sha256');
  const fd = openSync(path, 'r');
  const buf = Buffer.allocUnsafe(8 << 20);
  const hashRange = (from: number, to: number) => {
    for (let at = from; at < to;) {
      const n = readSync(fd, buf, 0, Math.min(buf.length, to - at), at);
      if (n === 0)
        throw new InputError(path, `ended at byte ${at}, expected ${to} (changed while being read?)`);
      h.update(buf.subarray(0, n));
      at += n;
    }
  };
  try {
    if (size <= wholeMaxBytes) {
      let bytes = 0;
      for (;;) {
        const n = readSync(fd, buf, 0, buf.length, null);
        if (n === 0) break;
        h.update(buf.subarray(0, n));
        bytes += n;
      }
      return { name: basename(path), bytes, sha256: h.digest('hex') };
    }
    const ends = Math.min(ENDS_BYTES, Math.floor(size / 2));
    hashRange(0, ends);
    hashRange(size - ends, size);
    return { name: basename(path), bytes: size, sha256: null, endsSha256: h.digest('hex') };
  } finally {
    closeSync(fd);
  }
}

/** Hashes an input: a file, or every regular non-hidden file directly inside a folder (sorted). */
export function hashInput(path: string): InputHash {
  if (!existsSync(path)) throw new InputError(path, 'does not exist');
  if (statSync(path).isDirectory()) {
    const files = readdirSync(path)
      .filter((n) => !n.startsWith('.') && statSync(join(path, n)).isFile())
      .sort()
      .map((n) => sha256File(join(path, n)));
    return { path, files };
  }
  return { path, files: [sha256File(path)] };
}

export function writeManifest(dir: string, manifest: Manifest): void {
  writeJsonAtomic(join(dir, MANIFEST_FILE), manifest);
}

/** Reads manifest.json back; refuses other formats and versions by name. */
export function readManifest(dir: string): Manifest {
  const path = join(dir, MANIFEST_FILE);
  if (!existsSync(path))
    throw new InputError(dir, `no ${MANIFEST_FILE} (not a nuggets initialisation folder)`);
  const o = readJsonFile(path) as Partial<Manifest> | null;
  if (!o || typeof o !== 'object' || o.format !== MANIFEST_FORMAT)
    throw new InputError(path, `format is not "${MANIFEST_FORMAT}"`);
  if (o.version !== MANIFEST_VERSION)
    throw new InputError(
      path,
      `version ${String(o.version)} is not supported (expected ${MANIFEST_VERSION})`,
    );
  if (
    !Array.isArray(o.matrices) ||
    !o.lora ||
    typeof o.lora.r !== 'number' ||
    typeof o.lora.scale !== 'number'
  ) {
    throw new InputError(path, 'missing matrices or lora fields');
  }
  return o as Manifest;
}
