/**
 * The main-thread side of the model worker: a FIFO of jobs with a bounded length, one job running
 * at a time in the worker (worker.ts), text deltas forwarded to the job's callback, cancellation of
 * queued and running jobs, and a restart when the worker dies (its running job fails with a 500;
 * queued jobs wait for the new worker).
 *
 * Bounded concurrency: at most one job runs and at most `maxQueue` wait; a request beyond that is
 * refused at once with 429 (the client may retry later) instead of piling up memory and latency.
 */
import { Worker } from 'node:worker_threads';
import { InputError } from '../errors.js';
import { Cancelled, type EngineInfo, type EngineOptions, type JobResult } from './engine.js';
import { ApiError, type ErrorBody, type GenerationRequest } from './protocol.js';
import type { WorkerData } from './worker.js';

export interface SchedulerOptions {
  engine: EngineOptions;
  /** Jobs waiting behind the running one at most. */
  maxQueue: number;
  /** Worker restarts allowed in a row after crashes before the server gives up (503). */
  maxRestarts?: number;
  log?: (message: string) => void;
}

export interface JobHooks {
  /** The worker accepted the prompt (it fits the context): generation begins. */
  onStart?: () => void;
  onDelta?: (choice: number, text: string) => void;
}

interface Job {
  id: number;
  req: GenerationRequest;
  hooks: JobHooks;
  resolve: (r: JobResult) => void;
  reject: (e: Error) => void;
}

type WorkerMessage =
  | { type: 'ready'; info: EngineInfo }
  | { type: 'fatal'; message: string; input: { source: string; problem: string } | null }
  | { type: 'started'; id: number }
  | { type: 'delta'; id: number; choice: number; text: string }
  | { type: 'done'; id: number; result: JobResult }
  | { type: 'cancelled'; id: number }
  | { type: 'error'; id: number; status: number; body: ErrorBody };

/** Starts worker.ts: from the TypeScript sources (under tsx) or from the compiled dist/. */
function spawnWorker(data: WorkerData): Worker {
  const here = import.meta.url;
  if (here.endsWith('.ts')) {
    // A worker does not inherit the parent's --import tsx hooks: register them first, then load the entry.
    const tsx = import.meta.resolve('tsx/esm/api');
    const entry = new URL('./worker.ts', here).href;
    const code = `import(${JSON.stringify(tsx)}).then((m) => { m.register(); return import(${JSON.stringify(entry)}); });`;
    return new Worker(code, { eval: true, workerData: data });
  }
  return new Worker(new URL('./worker.js', here), { workerData: data });
}

export class Scheduler {
  info: EngineInfo | null = null;
  private worker: Worker | null = null;
  private ready = false;
  private dead: string | null = null;
  private readonly queue: Job[] = [];
  private running: Job | null = null;
  private nextId = 1;
  private readonly cancelBuf = new SharedArrayBuffer(4);
  private readonly cancelFlag = new Int32Array(this.cancelBuf);
  private closing = false;
  private crashes = 0;
  private readonly log: (m: string) => void;

  constructor(private readonly opts: SchedulerOptions) {
    this.log = opts.log ?? (() => {});
  }

  /** Loads the model in the worker; rejects with the load error (an InputError for bad files). */
  start(): Promise<EngineInfo> {
    return new Promise((resolve, reject) => {
      const w = spawnWorker({ options: this.opts.engine, cancel: this.cancelBuf });
      this.worker = w;
      let settled = false;
      w.on('message', (m: WorkerMessage) => {
        if (m.type === 'ready') {
          this.info = m.info;
          this.ready = true;
          this.crashes = 0;
          if (!settled) {
            settled = true;
            resolve(m.info);
          }
          this.dispatch();
        } else if (m.type === 'fatal') {
          this.dead = m.input ? `${m.input.source}: ${m.input.problem}` : m.message;
          if (!settled) {
            settled = true;
            reject(m.input ? new InputError(m.input.source, m.input.problem) : new Error(m.message));
          }
          void w.terminate();
        } else {
          this.onJobMessage(m);
        }
      });
      w.on('error', (e) => {
        this.log(`model worker error: ${e.stack ?? e.message}`);
        if (!settled) {
          settled = true;
          reject(e);
        }
      });
      w.on('exit', (code) => {
        if (this.worker !== w) return;
        this.worker = null;
        this.ready = false;
        if (!settled) {
          settled = true;
          reject(new Error(`the model worker exited with code ${code} before the model was loaded`));
        }
        if (!this.closing) this.onCrash(`the model worker stopped unexpectedly (exit code ${code})`);
      });
    });
  }

  /** Jobs waiting (not counting the running one). */
  get waiting(): number {
    return this.queue.length;
  }

  get busy(): boolean {
    return this.running !== null;
  }

  /**
   * Queues a request. Throws ApiError 429 when the queue is full, 503 when the model is unavailable.
   * The promise rejects with ApiError (bad request for this model, worker failure) or Cancelled.
   */
  submit(req: GenerationRequest, hooks: JobHooks = {}): { result: Promise<JobResult>; cancel: () => void } {
    if (this.dead !== null || this.closing)
      throw new ApiError(
        503,
        `the model is unavailable: ${this.dead ?? 'the server is shutting down'}`,
        'server_error',
        null,
        'model_unavailable',
      );
    if (this.queue.length >= this.opts.maxQueue && (this.running !== null || !this.ready)) {
      throw new ApiError(
        429,
        `the server is busy: ${this.queue.length} requests are already waiting for the model; retry later`,
        'rate_limit_error',
        null,
        'queue_full',
      );
    }
    let job!: Job;
    const result = new Promise<JobResult>((resolve, reject) => {
      job = { id: this.nextId++, req, hooks, resolve, reject };
    });
    this.queue.push(job);
    this.dispatch();
    return { result, cancel: () => this.cancel(job) };
  }

  private cancel(job: Job): void {
    const at = this.queue.indexOf(job);
    if (at >= 0) {
      this.queue.splice(at, 1);
      job.reject(new Cancelled());
    } else if (this.running === job) {
      Atomics.store(this.cancelFlag, 0, job.id);
    }
  }

  private dispatch(): void {
    if (!this.ready || this.running !== null || this.worker === null) return;
    const job = this.queue.shift();
    if (!job) return;
    this.running = job;
    this.worker.postMessage({ type: 'job', id: job.id, req: job.req });
  }

  private onJobMessage(m: Exclude<WorkerMessage, { type: 'ready' } | { type: 'fatal' }>): void {
    const job = this.running;
    if (!job || job.id !== m.id) return;
    if (m.type === 'started') {
      job.hooks.onStart?.();
      return;
    }
    if (m.type === 'delta') {
      job.hooks.onDelta?.(m.choice, m.text);
      return;
    }
    this.running = null;
    Atomics.compareExchange(this.cancelFlag, 0, job.id, 0);
    if (m.type === 'done') job.resolve(m.result);
    else if (m.type === 'cancelled') job.reject(new Cancelled());
    else
      job.reject(
        new ApiError(
          m.status,
          m.body.error.message,
          m.body.error.type,
          m.body.error.param,
          m.body.error.code,
        ),
      );
    this.dispatch();
  }

  /** The worker is gone for good: new requests get 503 (submit), and so does every queued one, naming why. */
  private giveUp(reason: string): void {
    this.dead = reason;
    for (const j of this.queue.splice(0))
      j.reject(
        new ApiError(503, `the model is unavailable: ${reason}`, 'server_error', null, 'model_unavailable'),
      );
  }

  private onCrash(reason: string): void {
    this.log(reason);
    const job = this.running;
    this.running = null;
    Atomics.store(this.cancelFlag, 0, 0);
    job?.reject(new ApiError(500, `${reason} while answering this request`, 'server_error'));
    this.crashes++;
    if (this.crashes > (this.opts.maxRestarts ?? 3)) {
      this.giveUp(`${reason}; gave up after ${this.crashes - 1} restarts`);
      return;
    }
    this.log('restarting the model worker');
    this.start().catch((e: Error) => this.giveUp(`the model worker could not be restarted: ${e.message}`));
  }

  /** Stops the worker; queued and running jobs fail with 503. */
  async close(): Promise<void> {
    this.closing = true;
    const err = () =>
      new ApiError(503, 'the server is shutting down', 'server_error', null, 'model_unavailable');
    for (const j of this.queue.splice(0)) j.reject(err());
    this.running?.reject(err());
    this.running = null;
    const w = this.worker;
    this.worker = null;
    if (w) await w.terminate();
  }
}
