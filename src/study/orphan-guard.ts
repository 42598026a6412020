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

/** Starts the guard (once per process); it never keeps the process alive by itself. */
export function startOrphanGuard(intervalMs = 500): void {
  const w = new Worker(WORKER, { eval: true, workerData: { parent: process.ppid, intervalMs } });
  w.unref();
}
