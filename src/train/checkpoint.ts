/**
 * Training checkpoints: everything `--resume` needs to continue EXACTLY (training 4 steps equals
 * training 2, stopping, and resuming 2, bitwise; test/train-resume.test.ts).
 *
 * A checkpoint is a folder `<root>/checkpoint-<step>` (HF Trainer's naming) holding
 *   tensors.safetensors   every named Float32Array (LoRA factors, AdamW moments, ...), F32, exact
 *   trainer_state.json    step, epoch, scheduler, RNG states, the run's options, elapsed time, extras
 *   + any files the caller adds (e.g. a PEFT adapter folder's files, loadable on their own).
 * It is written into a hidden temporary folder next to it and renamed into place only when complete,
 * so a crash or Ctrl-C never leaves a half checkpoint under the real name. Older checkpoints beyond
 * `keep` are deleted after a successful write.
 *
 * Resuming compares the saved options with the current ones and refuses, listing every difference,
 * unless the key is one that may change between sessions (output verbosity, checkpoint cadence...).
 */
import {
  closeSync,
  existsSync,
  fsyncSync,
  mkdirSync,
  openSync,
  readdirSync,
  renameSync,
  rmSync,
  statSync,
} from 'node:fs';
import { join } from 'node:path';
import { InputError } from '../errors.js';
import { readJsonFile } from '../io/json.js';
import type { Rng } from '../engine/rng.js';
import { writeJsonAtomic } from '../io/atomic.js';
import { openSafetensors, writeSafetensors } from '../io/safetensors.js';
import type { ScheduleState } from './schedule.js';

export const TENSORS_FILE = 'tensors.safetensors';
export const STATE_FILE = 'trainer_state.json';
const FORMAT = 'nuggets-checkpoint';
const VERSION = 1;

export interface CheckpointTensor {
  shape: number[];
  data: Float32Array;
}

/** What trainer_state.json holds. RNG states are Rng.getState() arrays (NaN stored as null in JSON). */
export interface CheckpointState {
  format: typeof FORMAT;
  version: number;
  /** Optimizer updates completed. */
  step: number;
  /** Epoch position (e.g. completed epochs, or fractional); the trainer decides its meaning. */
  epoch: number;
  scheduler: ScheduleState | null;
  rng: Record<string, number[]>;
  /** The options the run was started with (compared on resume). */
  options: Record<string, unknown>;
  /** Seconds of training so far (trainer_log.jsonl elapsed_time continues from it). */
  elapsedS: number;
  /** Anything else the trainer needs (loss accumulators, data cursor, best eval loss...). */
  extra: Record<string, unknown>;
  /** Tensor names in tensors.safetensors (checked on load). */
  tensors: string[];
}

export interface SaveCheckpointInput {
  step: number;
  epoch: number;
  scheduler?: ScheduleState | null;
  /** Named RNG streams (dropout, data order...), saved with getState(). */
  rng?: Record<string, Rng | number[]>;
  options: Record<string, unknown>;
  elapsedS?: number;
  extra?: Record<string, unknown>;
  tensors: Record<string, CheckpointTensor>;
}

export interface SaveCheckpointOptions {
  /** Keep the newest N checkpoints under root (default: keep all). */
  keep?: number;
  /** Writes more files into the (temporary) checkpoint folder before it is published. */
  writeExtra?: (dir: string) => void;
}

export interface LoadedCheckpoint {
  dir: string;
  state: CheckpointState;
  tensors: Map<string, CheckpointTensor>;
}

const NAME = /^checkpoint-(\d+)$/;

export function checkpointDir(root: string, step: number): string {
  return join(root, `checkpoint-${step}`);
}

/** Checkpoint folders under root, oldest first (by step). */
export function listCheckpoints(root: string): Array<{ step: number; dir: string }> {
  if (!existsSync(root)) return [];
  const out: Array<{ step: number; dir: string }> = [];
  for (const name of readdirSync(root)) {
    const m = NAME.exec(name);
    if (!m) continue;
    const dir = join(root, name);
    if (statSync(dir).isDirectory() && existsSync(join(dir, STATE_FILE)))
      out.push({ step: Number(m[1]), dir });
  }
  return out.sort((a, b) => a.step - b.step);
}

/** The newest complete checkpoint under root, or null. */
export function latestCheckpoint(root: string): string | null {
  return listCheckpoints(root).at(-1)?.dir ?? null;
}

function fsyncDir(dir: string): void {
  try {
    const fd = openSync(dir, 'r');
    try {
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
  } catch {
    /* not supported on this platform/filesystem: the rename is still atomic */
  }
}

function encodeRng(s: number[]): number[] {
  return s.map((v) => (Number.isNaN(v) ? (null as unknown as number) : v));
}

function decodeRng(s: unknown, dir: string, name: string): number[] {
  if (!Array.isArray(s) || !s.every((v) => v === null || typeof v === 'number')) {
    throw new InputError(join(dir, STATE_FILE), `rng "${name}" is not an array of numbers`);
  }
  return s.map((v) => (v === null ? NaN : (v as number)));
}

function removeStaleTemps(root: string): void {
  for (const name of readdirSync(root)) {
    const m = /^\.checkpoint-\d+\.(tmp|old)-(\d+)-/.exec(name);
    if (m && Number(m[2]) !== process.pid) rmSync(join(root, name), { recursive: true, force: true });
  }
}

/** Writes `<root>/checkpoint-<step>` atomically and prunes old ones; returns its path. */
export function saveCheckpoint(
  root: string,
  ck: SaveCheckpointInput,
  opts: SaveCheckpointOptions = {},
): string {
  if (!(Number.isInteger(ck.step) && ck.step >= 0))
    throw new Error(`saveCheckpoint: step must be an integer >= 0, got ${ck.step}`);
  mkdirSync(root, { recursive: true });
  removeStaleTemps(root);
  const final = checkpointDir(root, ck.step);
  const tag = `${process.pid}-${Math.random().toString(36).slice(2, 8)}`;
  const tmp = join(root, `.checkpoint-${ck.step}.tmp-${tag}`);
  const names = Object.keys(ck.tensors);
  const rng: Record<string, number[]> = {};
  for (const [k, r] of Object.entries(ck.rng ?? {})) rng[k] = encodeRng(Array.isArray(r) ? r : r.getState());
  const state: CheckpointState = {
    format: FORMAT,
    version: VERSION,
    step: ck.step,
    epoch: ck.epoch,
    scheduler: ck.scheduler ?? null,
    rng,
    options: ck.options,
    elapsedS: ck.elapsedS ?? 0,
    extra: ck.extra ?? {},
    tensors: names,
  };
  mkdirSync(tmp);
  try {
    writeSafetensors(
      join(tmp, TENSORS_FILE),
      names.map((name) => {
        const t = ck.tensors[name];
        // Float64 buffers (gradient-check mode) are stored as F32 values, never as raw f64 bytes.
        const data = t.data instanceof Float32Array ? t.data : Float32Array.from(t.data);
        return { name, shape: t.shape, data, dtype: 'F32' as const };
      }),
      { format: FORMAT, step: String(ck.step) },
    );
    opts.writeExtra?.(tmp);
    // The state file last: a folder with trainer_state.json is complete.
    writeJsonAtomic(join(tmp, STATE_FILE), state);
    fsyncDir(tmp);
    if (existsSync(final)) {
      // Re-saving a step (e.g. epoch end coinciding with save_steps): swap, then drop the old one.
      const old = join(root, `.checkpoint-${ck.step}.old-${tag}`);
      renameSync(final, old);
      renameSync(tmp, final);
      rmSync(old, { recursive: true, force: true });
    } else {
      renameSync(tmp, final);
    }
    fsyncDir(root);
  } catch (e) {
    rmSync(tmp, { recursive: true, force: true });
    throw e;
  }
  if (opts.keep !== undefined) pruneCheckpoints(root, opts.keep, final);
  return final;
}

/** Deletes all but the newest `keep` checkpoints (never `protect`). */
export function pruneCheckpoints(root: string, keep: number, protect?: string): string[] {
  if (!(Number.isInteger(keep) && keep >= 1))
    throw new Error(`pruneCheckpoints: keep must be an integer >= 1, got ${keep}`);
  const all = listCheckpoints(root);
  const removed: string[] = [];
  for (const c of all.slice(0, Math.max(0, all.length - keep))) {
    if (c.dir === protect) continue;
    rmSync(c.dir, { recursive: true, force: true });
    removed.push(c.dir);
  }
  return removed;
}

/** Reads a checkpoint folder back; every defect is an InputError naming the file. */
export function loadCheckpoint(dir: string): LoadedCheckpoint {
  const statePath = join(dir, STATE_FILE);
  if (!existsSync(dir)) throw new InputError(dir, 'no such checkpoint folder');
  if (!existsSync(statePath)) throw new InputError(dir, `not a complete checkpoint (no ${STATE_FILE})`);
  const s = readJsonFile(statePath) as Partial<CheckpointState>;
  if (s === null || typeof s !== 'object' || s.format !== FORMAT)
    throw new InputError(statePath, `not a nuggets training checkpoint (format "${String(s?.format)}")`);
  if (s.version !== VERSION)
    throw new InputError(
      statePath,
      `checkpoint version ${String(s.version)} is not supported (expected ${VERSION})`,
    );
  if (!(Number.isInteger(s.step) && (s.step as number) >= 0))
    throw new InputError(statePath, `"step" must be an integer >= 0`);
  if (typeof s.epoch !== 'number') throw new InputError(statePath, `"epoch" must be a number`);
  if (!Array.isArray(s.tensors) || !s.tensors.every((n) => typeof n === 'string'))
    throw new InputError(statePath, `"tensors" must list tensor names`);
  if (s.options === null || typeof s.options !== 'object')
    throw new InputError(statePath, `"options" must be an object`);
  const rng: Record<string, number[]> = {};
  for (const [k, v] of Object.entries(s.rng ?? {})) rng[k] = decodeRng(v, dir, k);
  const state: CheckpointState = {
    format: FORMAT,
    version: VERSION,
    step: s.step as number,
    epoch: s.epoch,
    scheduler: s.scheduler ?? null,
    rng,
    options: s.options as Record<string, unknown>,
    elapsedS: typeof s.elapsedS === 'number' ? s.elapsedS : 0,
    extra: s.extra ?? {},
    tensors: s.tensors,
  };
  const tensors = new Map<string, CheckpointTensor>();
  const file = join(dir, TENSORS_FILE);
  if (!existsSync(file)) throw new InputError(dir, `checkpoint has no ${TENSORS_FILE}`);
  const reader = openSafetensors(file);
  try {
    const present = new Set(reader.names());
    const missing = state.tensors.filter((n) => !present.has(n));
    if (missing.length)
      throw new InputError(
        file,
        `missing tensors listed in ${STATE_FILE}: ${missing.slice(0, 5).join(', ')}${missing.length > 5 ? ', ...' : ''}`,
      );
    for (const name of state.tensors) {
      const info = reader.info(name);
      if (info.dtype !== 'F32')
        throw new InputError(file, `tensor "${name}" is ${info.dtype}; checkpoints hold F32`);
      tensors.set(name, { shape: info.shape, data: reader.get(name) });
    }
  } finally {
    reader.close();
  }
  return { dir, state, tensors };
}

/** A tensor of a loaded checkpoint with its expected shape checked. */
export function checkpointTensor(ck: LoadedCheckpoint, name: string, shape: number[]): Float32Array {
  const t = ck.tensors.get(name);
  if (!t) throw new InputError(ck.dir, `checkpoint has no tensor "${name}"`);
  if (t.shape.length !== shape.length || t.shape.some((d, i) => d !== shape[i])) {
    throw new InputError(
      ck.dir,
      `tensor "${name}" has shape [${t.shape.join(', ')}], expected [${shape.join(', ')}]`,
    );
  }
  return t.data;
}

/** Sets an Rng to a saved stream; refuses a checkpoint without it. */
export function restoreRng(rng: Rng, ck: LoadedCheckpoint, name: string): void {
  const s = ck.state.rng[name];
  if (!s) throw new InputError(join(ck.dir, STATE_FILE), `no RNG state "${name}"`);
  if (s.length !== 5)
    throw new InputError(join(ck.dir, STATE_FILE), `RNG state "${name}" has ${s.length} numbers, expected 5`);
  rng.setState(s);
}

/** Options that may change between a run and its resumption (they do not change the result). */
export const RESUME_MAY_CHANGE: readonly string[] = [
  'resume',
  'resumeFrom',
  'config',
  'progress',
  'loggingSteps',
  'saveSteps',
  'keepCheckpoints',
  'threads',
  'quiet',
];

function same(a: unknown, b: unknown): boolean {
  return JSON.stringify(normalise(a)) === JSON.stringify(normalise(b));
}

/** JSON-stable form: key order does not matter, undefined members vanish. */
function normalise(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(normalise);
  if (v !== null && typeof v === 'object') {
    const o: Record<string, unknown> = {};
    for (const k of Object.keys(v).sort()) {
      const x = (v as Record<string, unknown>)[k];
      if (x !== undefined) o[k] = normalise(x);
    }
    return o;
  }
  return v;
}

function show(v: unknown): string {
  return v === undefined ? '(unset)' : JSON.stringify(v);
}

/** Lines "key: <saved> in the checkpoint, <now> now" for every option that differs. */
export function diffOptions(
  saved: Record<string, unknown>,
  current: Record<string, unknown>,
  mayChange: readonly string[] = RESUME_MAY_CHANGE,
): string[] {
  const keys = [...new Set([...Object.keys(saved), ...Object.keys(current)])].sort();
  const out: string[] = [];
  for (const k of keys) {
    if (mayChange.includes(k)) continue;
    if (!same(saved[k], current[k]))
      out.push(`${k}: ${show(saved[k])} in the checkpoint, ${show(current[k])} now`);
  }
  return out;
}

/** Refuses to resume from a checkpoint made with different options, listing every difference. */
export function assertResumable(
  ck: LoadedCheckpoint,
  current: Record<string, unknown>,
  mayChange: readonly string[] = RESUME_MAY_CHANGE,
): void {
  const diffs = diffOptions(ck.state.options, current, mayChange);
  if (diffs.length > 0) {
    throw new InputError(
      ck.dir,
      `was saved with different options, so resuming would not continue the same run (start a new output folder, or use the same options):\n  ${diffs.join('\n  ')}`,
    );
  }
}
