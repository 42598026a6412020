/**
 * trainer_log.jsonl, the training log users already know from LLaMA-Factory (docs/formats.md "Results and
 * logs"): one JSON object per line with
 *   current_steps, total_steps, loss, learning_rate, epoch, percentage, elapsed_time, remaining_time
 * (+ optional eval_loss, grad_norm and any extra numeric fields). Times are Python `str(timedelta)`
 * of whole seconds: "H:MM:SS", or "1 day, H:MM:SS" past a day. remaining_time is the mean time per
 * step measured in this session times the steps left (LLaMA-Factory's estimate).
 *
 * Lines are appended one at a time (each a single write with O_APPEND), so a crash loses at most the
 * line being written and never garbles earlier ones. On resume the log is cut back to the checkpoint's
 * step (atomically) so it reads as one uninterrupted run.
 */
import { appendFileSync, existsSync, mkdirSync, readFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { writeFileAtomic } from '../io/atomic.js';

/** Python's str(datetime.timedelta(seconds=int(s))). */
export function formatDuration(seconds: number): string {
  let s = Math.max(0, Math.floor(Number.isFinite(seconds) ? seconds : 0));
  const days = Math.floor(s / 86400);
  s -= days * 86400;
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = s % 60;
  const hms = `${h}:${String(m).padStart(2, '0')}:${String(sec).padStart(2, '0')}`;
  return days === 0 ? hms : `${days} day${days === 1 ? '' : 's'}, ${hms}`;
}

export interface TrainerLogRecord {
  current_steps: number;
  total_steps: number;
  loss: number | null;
  learning_rate: number;
  epoch: number;
  percentage: number;
  elapsed_time: string;
  remaining_time: string;
  eval_loss?: number;
  grad_norm?: number;
  [extra: string]: number | string | null | undefined;
}

export interface TrainerLogOptions {
  totalSteps: number;
  /** Resume: the step of the checkpoint; later lines of an existing log are dropped. Default 0 (fresh log). */
  startStep?: number;
  /** Seconds of training before this session (from the checkpoint), added to elapsed_time. */
  elapsedBefore?: number;
  /** Seconds clock (for tests); default performance-based wall clock. */
  now?: () => number;
}

export interface LogEntry {
  /** Optimizer updates done so far (1-based after the first update). */
  step: number;
  /** Mean training loss since the previous line (null when none, e.g. an eval-only line). */
  loss: number | null;
  learningRate: number;
  /** Fractional epoch, e.g. 1.5 halfway through the second epoch. */
  epoch: number;
  evalLoss?: number;
  gradNorm?: number;
  /** Any further numeric fields (tokens_per_second, ...), written under their own names. */
  extra?: Record<string, number>;
}

export class TrainerLog {
  readonly path: string;
  private readonly total: number;
  private readonly startStep: number;
  private readonly elapsedBefore: number;
  private readonly now: () => number;
  private readonly t0: number;

  constructor(path: string, opts: TrainerLogOptions) {
    this.path = path;
    this.total = opts.totalSteps;
    this.startStep = opts.startStep ?? 0;
    this.elapsedBefore = opts.elapsedBefore ?? 0;
    this.now = opts.now ?? (() => performance.now() / 1000);
    this.t0 = this.now();
    mkdirSync(dirname(path), { recursive: true });
    if (this.startStep === 0 || !existsSync(path)) {
      writeFileAtomic(path, []);
    } else {
      // Keep only the lines up to the checkpoint: steps logged after it will be redone.
      const kept = readFileSync(path, 'utf8')
        .split('\n')
        .filter((line) => {
          if (line.trim() === '') return false;
          try {
            const rec = JSON.parse(line) as { current_steps?: unknown };
            return typeof rec.current_steps === 'number' && rec.current_steps <= this.startStep;
          } catch {
            return false; // a torn last line from a crash
          }
        });
      writeFileAtomic(
        path,
        kept.map((l) => l + '\n'),
      );
    }
  }

  /** Seconds since this session started plus the time before it. */
  elapsed(): number {
    return this.elapsedBefore + (this.now() - this.t0);
  }

  /** The record for an entry (not written). */
  record(e: LogEntry): TrainerLogRecord {
    const session = this.now() - this.t0;
    const doneHere = e.step - this.startStep;
    const perStep = doneHere > 0 ? session / doneHere : 0;
    const rec: TrainerLogRecord = {
      current_steps: e.step,
      total_steps: this.total,
      loss: e.loss,
      learning_rate: e.learningRate,
      epoch: Math.round(e.epoch * 100) / 100,
      percentage: this.total > 0 ? Math.round((e.step / this.total) * 10000) / 100 : 100,
      elapsed_time: formatDuration(this.elapsedBefore + session),
      remaining_time: formatDuration(Math.max(0, this.total - e.step) * perStep),
    };
    if (e.evalLoss !== undefined) rec.eval_loss = e.evalLoss;
    if (e.gradNorm !== undefined) rec.grad_norm = e.gradNorm;
    for (const [k, v] of Object.entries(e.extra ?? {})) if (!(k in rec)) rec[k] = v;
    return rec;
  }

  /** Appends one line and returns what was written. */
  log(e: LogEntry): TrainerLogRecord {
    const rec = this.record(e);
    appendFileSync(this.path, JSON.stringify(rec) + '\n');
    return rec;
  }
}

/** Reads a trainer_log.jsonl back (ignoring a torn last line). */
export function readTrainerLog(path: string): TrainerLogRecord[] {
  const out: TrainerLogRecord[] = [];
  for (const line of readFileSync(path, 'utf8').split('\n')) {
    if (line.trim() === '') continue;
    try {
      out.push(JSON.parse(line) as TrainerLogRecord);
    } catch {
      /* torn line */
    }
  }
  return out;
}
