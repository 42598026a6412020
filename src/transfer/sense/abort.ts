/** Stopping a sensitivity run cleanly when it is aborted (Ctrl-C). */

/** Thrown when the run was aborted (Ctrl-C): nothing has been written under the output name. */
export class SenseAborted extends Error {
  constructor() {
    super('sensitivity run interrupted');
    this.name = 'SenseAborted';
  }
}

/** Lets the event loop run (SIGINT handlers fire there) and stops when aborted. */
export async function tick(signal?: AbortSignal): Promise<void> {
  await new Promise<void>((r) => setImmediate(r));
  if (signal?.aborted) throw new SenseAborted();
}
