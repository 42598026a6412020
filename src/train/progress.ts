/**
 * Progress display for long loops (training steps, sensitivity seeds, evaluation samples).
 *
 * On a terminal: a cli-progress bar on stderr with the step, custom fields (loss, lr, ...) and ETA.
 * When stderr is not a TTY (CI logs, `2> file`): plain lines at most every `intervalS` seconds plus
 * the first and the last update, so logs stay readable and short. `mode: 'off'` prints nothing.
 * Numbers in fields are formatted compactly (loss 1.2346, lr 3.00e-4).
 */
import cliProgress from 'cli-progress';
import { formatDuration } from './log.js';

export type ProgressMode = 'auto' | 'bar' | 'lines' | 'off';
export type Fields = Record<string, number | string>;

/** The part of a stream this module needs (process.stderr, or a test double). */
export interface ProgressStream {
  write(s: string): unknown;
  isTTY?: boolean;
  columns?: number;
}

export interface ProgressOptions {
  /** Shown first on each line, e.g. "train" or "sense". */
  label: string;
  total: number;
  /** Start value (resume). */
  initial?: number;
  stream?: ProgressStream;
  mode?: ProgressMode;
  /** Seconds between plain lines (non-TTY); default 30. */
  intervalS?: number;
  /** Seconds clock (tests). */
  now?: () => number;
}

export function formatField(v: number | string): string {
  if (typeof v === 'string') return v;
  if (!Number.isFinite(v)) return String(v);
  if (Number.isInteger(v)) return String(v);
  const a = Math.abs(v);
  return a !== 0 && (a < 1e-2 || a >= 1e5) ? v.toExponential(2) : v.toFixed(4);
}

function formatFields(f: Fields): string {
  return Object.entries(f)
    .map(([k, v]) => `${k} ${formatField(v)}`)
    .join(' | ');
}

export class Progress {
  readonly mode: Exclude<ProgressMode, 'auto'>;
  private readonly opts: ProgressOptions;
  private readonly stream: ProgressStream;
  private readonly now: () => number;
  private readonly t0: number;
  private readonly initial: number;
  private bar: cliProgress.SingleBar | null = null;
  private value: number;
  private fields: Fields = {};
  private lastLineAt = -Infinity;
  private lastLineValue = -1;
  private stopped = false;

  constructor(opts: ProgressOptions) {
    this.opts = opts;
    this.stream = opts.stream ?? process.stderr;
    this.now = opts.now ?? (() => performance.now() / 1000);
    this.t0 = this.now();
    this.initial = opts.initial ?? 0;
    this.value = this.initial;
    const mode = opts.mode ?? 'auto';
    this.mode = mode === 'auto' ? (this.stream.isTTY ? 'bar' : 'lines') : mode;
    if (this.mode === 'bar') {
      this.bar = new cliProgress.SingleBar(
        {
          stream: this.stream as NodeJS.WritableStream,
          format: `${opts.label} |{bar}| {value}/{total} {percentage}% | {fields} | {duration_formatted} < ETA {eta_formatted}`,
          barsize: 24,
          // No hidden cursor and no SIGINT hook: a SIGINT listener would stop Node's default exit on
          // Ctrl-C, and the commands install their own cleanup.
          hideCursor: false,
          gracefulExit: false,
          clearOnComplete: false,
          etaBuffer: 50,
        },
        cliProgress.Presets.shades_classic,
      );
      this.bar.start(opts.total, this.initial, { fields: '' });
    }
  }

  /** Seconds left, from the mean rate since start (0 before any progress). */
  eta(): number {
    const done = this.value - this.initial;
    if (done <= 0) return NaN;
    return ((this.now() - this.t0) / done) * Math.max(0, this.opts.total - this.value);
  }

  /** The plain line for the current state (what non-TTY mode prints). */
  line(): string {
    const { label, total } = this.opts;
    const pct = total > 0 ? ((100 * this.value) / total).toFixed(1) : '100.0';
    const eta = this.eta();
    let s = `${label} ${this.value}/${total} (${pct}%)`;
    const f = formatFields(this.fields);
    if (f) s += ` | ${f}`;
    s += ` | elapsed ${formatDuration(this.now() - this.t0)}`;
    s += ` | ETA ${Number.isNaN(eta) ? '-' : formatDuration(eta)}`;
    return s;
  }

  update(value: number, fields?: Fields): void {
    if (this.stopped) return;
    this.value = value;
    if (fields) this.fields = { ...this.fields, ...fields };
    if (this.mode === 'bar') {
      this.bar!.update(value, { fields: formatFields(this.fields) });
    } else if (this.mode === 'lines') {
      const t = this.now();
      const first = this.lastLineValue < 0;
      if (first || t - this.lastLineAt >= (this.opts.intervalS ?? 30) || value >= this.opts.total)
        this.printLine(t);
    }
  }

  increment(delta = 1, fields?: Fields): void {
    this.update(this.value + delta, fields);
  }

  /** A message that must not be overwritten by the bar (epoch summaries, warnings). */
  log(message: string): void {
    if (this.mode === 'off') return;
    if (this.mode === 'bar' && !this.stopped) {
      this.stream.write('\r\x1b[2K' + message + '\n');
      this.bar!.render();
    } else {
      this.stream.write(message + '\n');
    }
  }

  stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    if (this.mode === 'bar') this.bar!.stop();
    else if (this.mode === 'lines' && this.lastLineValue !== this.value) this.printLine(this.now());
  }

  private printLine(t: number): void {
    this.lastLineAt = t;
    this.lastLineValue = this.value;
    this.stream.write(this.line() + '\n');
  }
}
