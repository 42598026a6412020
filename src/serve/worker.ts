/**
 * Worker-thread entry of `nuggets serve`: loads the model once, then runs one job at a time and
 * posts text deltas as they become final. Messages (scheduler.ts is the other side):
 *   in:  {type: 'job', id, req}
 *   out: {type: 'ready', info} | {type: 'fatal', message, input} (load failed; input: an InputError's parts)
 *        {type: 'started', id} (prompt accepted) | {type: 'delta', id, choice, text} | {type: 'done', id, result}
 *        {type: 'cancelled', id} | {type: 'error', id, status, body}
 * Cancellation cannot come as a message (the thread is busy generating), so the scheduler writes
 * the id of the job to drop into a shared Int32Array, which the engine polls after every token.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { InputError } from '../errors.js';
import { Cancelled, ServeEngine, type EngineOptions } from './engine.js';
import { ApiError, errorBody, type GenerationRequest } from './protocol.js';

export interface WorkerData {
  options: EngineOptions;
  /** Int32Array(1) over this buffer: the id of the job to cancel (0: none). */
  cancel: SharedArrayBuffer;
}

const port = parentPort;
if (!port) throw new Error('src/serve/worker.ts must run in a worker thread');
const { options, cancel } = workerData as WorkerData;
const cancelFlag = new Int32Array(cancel);

let engine: ServeEngine | null = null;
try {
  engine = ServeEngine.load(options);
  port.postMessage({ type: 'ready', info: engine.info });
} catch (e) {
  port.postMessage({
    type: 'fatal',
    message: e instanceof Error ? (e.stack ?? e.message) : String(e),
    input: e instanceof InputError ? { source: e.source, problem: e.problem } : null,
  });
}

port.on('message', (msg: { type: 'job'; id: number; req: GenerationRequest }) => {
  if (msg.type !== 'job' || engine === null) return;
  const { id, req } = msg;
  try {
    const result = engine.run(req, {
      onStart: () => port.postMessage({ type: 'started', id }),
      // only a streaming client reads text before the end
      onDelta: req.stream
        ? (choice, text) => port.postMessage({ type: 'delta', id, choice, text })
        : undefined,
      cancelled: () => Atomics.load(cancelFlag, 0) === id,
    });
    port.postMessage({ type: 'done', id, result });
  } catch (e) {
    if (e instanceof Cancelled) port.postMessage({ type: 'cancelled', id });
    else if (e instanceof ApiError) port.postMessage({ type: 'error', id, status: e.status, body: e.body() });
    else if (e instanceof InputError)
      port.postMessage({
        type: 'error',
        id,
        status: 400,
        body: errorBody(e.message, 'invalid_request_error'),
      });
    else
      port.postMessage({
        type: 'error',
        id,
        status: 500,
        body: errorBody(`internal error: ${e instanceof Error ? e.message : String(e)}`, 'server_error'),
      });
  }
});
