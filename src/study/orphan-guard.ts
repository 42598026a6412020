/**
 * A job child ends itself when the `nuggets run` that started it is gone (killed with SIGKILL, say):
 * otherwise it would go on writing into the run folder while a rerun starts the same job again.
 * The steps run synchronous compute loops that block the event loop for minutes, so the check runs
 * in a worker thread, which polls the parent pid and kills the whole process once it changes.
 */
import { Worker } from 'node:worker_threads';

const WORKER = `
const { workerData } = require('node:worker_threads');
const { parent, intervalMs } = workerData;
setInterval(() => {
  if (process.ppid !== parent) process.kill(process.pid, 'SIGKILL');
}, intervalMs);
`;

/** The runner's pid once the guard is started (null: not a guarded job child). */
let guardedParent: number | null = null;

/** The variable through which `nuggets run` tells its job children its pid. */
export const RUNNER_PID_ENV = 'NUGGETS_RUNNER_PID';

/**
 * Starts the guard (once per process); it never keeps the process alive by itself. The runner's pid
 * comes from the environment it set, not from process.ppid at start: a runner killed while this
 * process was still starting has already handed it to init, and the ppid read then would be init's.
 */
export function startOrphanGuard(intervalMs = 500): void {
  const parent = Number(process.env[RUNNER_PID_ENV]) || process.ppid;
  guardedParent = parent;
  exitIfOrphaned();
  const w = new Worker(WORKER, { eval: true, workerData: { parent, intervalMs } });
  w.unref();
}

/**
 * Ends the process at once when its runner is gone. Called before a job records a step or its result
 * as finished: a step shorter than the poll interval (or a worker slow to start on a busy machine)
 * must not leave a finished-looking job behind a killed run.
 */
export function exitIfOrphaned(): void {
  if (guardedParent !== null && process.ppid !== guardedParent) process.kill(process.pid, 'SIGKILL');
}
