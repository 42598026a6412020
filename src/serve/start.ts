/**
 * The `serve` step: an OpenAI-compatible HTTP server (server.ts) in front of a model worker
 * (scheduler.ts) for a model and an optional PEFT adapter (attached, not merged). Resolves once the
 * model is loaded and the server listens (with port 0, on the port the OS chose); binds where `host`
 * says, with a warning when that is not loopback (no TLS, and no auth without `apiKeyEnv`).
 *
 * The library's `serve` (src/api/steps.ts) validates the options and calls `startServe`.
 */
import type { OptionsOf } from '../config/parse.js';
import { InputError } from '../errors.js';
import { Scheduler } from './scheduler.js';
import { isLoopback, startServer, type RunningServer } from './server.js';

type ServeOpts = OptionsOf<'serve'>;

export interface ServeHandle {
  server: RunningServer;
  scheduler: Scheduler;
  /** Stops the HTTP server and the model worker. */
  close(): Promise<void>;
}

/** Loads the model in its worker and starts listening; resolves once requests can be served. */
export async function startServe(
  o: ServeOpts,
  log: (line: string) => void = (l) => process.stderr.write(l + '\n'),
): Promise<ServeHandle> {
  let apiKey: string | null = null;
  if (o.apiKeyEnv !== undefined) {
    apiKey = process.env[o.apiKeyEnv] ?? '';
    if (apiKey === '')
      throw new InputError(
        `environment variable ${o.apiKeyEnv}`,
        'is not set; it must hold the API key clients will send',
      );
  }
  const scheduler = new Scheduler({
    engine: {
      model: o.model,
      adapter: o.adapter,
      tokenizer: o.tokenizer,
      name: o.servedModelName,
      chatFormat: o.chatFormat,
    },
    maxQueue: o.maxQueue,
    log,
  });
  let info;
  try {
    info = await scheduler.start();
  } catch (e) {
    await scheduler.close();
    throw e;
  }
  let server: RunningServer;
  try {
    server = await startServer(scheduler, info, {
      host: o.host,
      port: o.port,
      maxBodyBytes: o.maxBodyKb * 1024,
      apiKey,
      limits: { maxChoices: o.maxChoices, maxStop: 16 },
      allowedHosts: (o.allowedHosts ?? '')
        .split(',')
        .map((h) => h.trim())
        .filter((h) => h !== ''),
      log,
    });
  } catch (e) {
    await scheduler.close();
    const err = e as NodeJS.ErrnoException;
    if (err.code === 'EADDRINUSE')
      throw new InputError(`--port ${o.port}`, `address ${o.host}:${o.port} is already in use`);
    if (err.code === 'EADDRNOTAVAIL' || err.code === 'ENOTFOUND' || err.code === 'EACCES')
      throw new InputError(`--host ${o.host}`, `cannot listen there (${err.code})`);
    throw e;
  }
  if (!isLoopback(o.host)) {
    log(
      `warning: listening on ${o.host}, reachable from other machines; plain HTTP${apiKey === null ? ' and no API key (set --api-key-env)' : ''}`,
    );
  }
  return {
    server,
    scheduler,
    close: async () => {
      await server.close();
      await scheduler.close();
    },
  };
}
