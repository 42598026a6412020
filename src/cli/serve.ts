/**
 * `nuggets serve <model> [--adapter dir] [--host 127.0.0.1] [--port 8000]`: an OpenAI-compatible HTTP
 * server (src/serve/) for a model and an optional PEFT adapter (attached, not merged), so a trained
 * student can be tried at once with any OpenAI client, or act as the judge of `nuggets eval`.
 *
 * Binds loopback unless --host says otherwise (then a warning: no TLS, and no auth without
 * --api-key-env). Prints one line with the URL on stdout once the model is loaded (with --port 0
 * the port the OS chose), request lines on stderr, and stops cleanly on SIGINT / SIGTERM.
 */
import type { Command } from 'commander';
import { InputError } from '../errors.js';
import { addSchemaOptions, foldAlias, resolveOptions, type OptionsOf } from '../config/cli.js';
import { Scheduler } from '../serve/scheduler.js';
import { isLoopback, startServer, type RunningServer } from '../serve/server.js';
import { serve } from '../api/steps.js';

type ServeCliOpts = OptionsOf<'serve'>;

export interface ServeHandle {
  server: RunningServer;
  scheduler: Scheduler;
  /** Stops the HTTP server and the model worker. */
  close(): Promise<void>;
}

/** Loads the model in its worker and starts listening; resolves once requests can be served. */
export async function startServe(
  o: ServeCliOpts,
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

export function registerServe(program: Command): void {
  const cmd = program
    .command('serve')
    .description(
      'serve a model (+ adapter) over an OpenAI-compatible HTTP API (/v1/models, /v1/completions, /v1/chat/completions)',
    )
    .argument('[model]', 'HF model folder or llama2.c checkpoint (or --model, or model: in --config)');
  addSchemaOptions(cmd, 'serve');
  cmd.action(async (model: string | undefined, flags: Record<string, unknown>) => {
    const rest = { ...flags };
    foldAlias(
      rest,
      'model',
      model,
      'serve',
      () => `two models given: ${model} and --model ${String(rest.model)}`,
    );
    const h = await serve(resolveOptions('serve', rest));
    const info = h.scheduler.info!;
    process.stdout.write(
      `nuggets serve: ${info.name} at ${h.server.url}/v1 (context ${info.contextLength} tokens, chat format ${info.chatFormat}${info.adapter ? `, adapter ${info.adapter}` : ''})\n`,
    );
    await new Promise<void>((resolve) => {
      const stop = (sig: string) => {
        process.stderr.write(`nuggets serve: ${sig}, shutting down\n`);
        process.off('SIGINT', onInt);
        process.off('SIGTERM', onTerm);
        h.close().then(resolve, resolve);
      };
      const onInt = () => stop('SIGINT');
      const onTerm = () => stop('SIGTERM');
      process.on('SIGINT', onInt);
      process.on('SIGTERM', onTerm);
    });
  });
}
