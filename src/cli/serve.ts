/**
 * `nuggets serve <model> [--adapter dir] [--host 127.0.0.1] [--port 8000]`: an OpenAI-compatible HTTP
 * server (src/serve/) for a model and an optional PEFT adapter (attached, not merged), so a trained
 * student can be tried at once with any OpenAI client, or act as the judge of `nuggets eval`.
 *
 * Binds loopback unless --host says otherwise (then a warning: no TLS, and no auth without
 * --api-key-env). Prints one line with the URL on stdout once the model is loaded (with --port 0
 * the port the OS chose), request lines on stderr, and stops cleanly on SIGINT / SIGTERM.
 * The work is the library's `serve` (src/api/steps.ts over src/serve/start.ts).
 */
import type { Command } from 'commander';
import { addSchemaOptions, foldAlias, resolveOptions } from '../config/cli.js';
import { serve } from '../api/steps.js';

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
