/**
 * `nuggets serve`'s HTTP side (node:http): an OpenAI-compatible API over one model.
 *
 *   GET  /v1/models, /v1/models/{id}     the served model (OpenAI list / model objects)
 *   POST /v1/completions                  text completion (prompt: string, strings or token ids)
 *   POST /v1/chat/completions             chat (Tulu or the tokenizer's chat template, see engine.ts)
 *   GET  /health                          {"status": "ok"} once the model is loaded
 *
 * Streaming (`"stream": true`) is server-sent events: `data: {chunk}\n\n` per piece of text, one
 * chunk per choice with its finish_reason, optionally a usage chunk, then `data: [DONE]\n\n`.
 * Headers are sent when the model starts on the request, so a prompt that does not fit the context
 * still gets a plain 400 JSON answer.
 *
 * Every failure is a JSON error `{"error": {message, type, param, code}}` with a 4xx/5xx status:
 * 400 malformed JSON / wrong fields, 401 missing or wrong API key (when one is configured), 404
 * unknown route or model, 405 wrong method, 413 body over the limit, 429 queue full, 500/503 model
 * worker failures. Bodies are read up to `maxBodyBytes`; generation runs in a worker thread behind a
 * bounded queue (scheduler.ts), so the server keeps answering while the model computes.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Cancelled, type EngineInfo, type JobResult } from './engine.js';
import {
  ApiError,
  chatResponse,
  completionResponse,
  errorBody,
  newId,
  parseChatRequest,
  parseCompletionRequest,
  sse,
  streamChunk,
  usageOf,
  type GenerationRequest,
  type ProtocolLimits,
  type ResponseMeta,
} from './protocol.js';
import type { Scheduler } from './scheduler.js';

export interface ServerOptions {
  host: string;
  port: number;
  maxBodyBytes: number;
  /** Clients must send `Authorization: Bearer <apiKey>` on /v1/ routes; null = no auth. */
  apiKey: string | null;
  limits: ProtocolLimits;
  /** One line per request (method, path, status, seconds) and server notes. */
  log?: (line: string) => void;
}

export interface RunningServer {
  server: Server;
  /** http://host:port (the port the OS chose when port 0 was asked). */
  url: string;
  port: number;
  close(): Promise<void>;
}

const ROUTES: Record<string, readonly string[]> = {
  '/health': ['GET'],
  '/v1/models': ['GET'],
  '/v1/completions': ['POST'],
  '/v1/chat/completions': ['POST'],
};

/** True for addresses that only this machine can reach. */
export function isLoopback(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, '').toLowerCase();
  return h === 'localhost' || h === '::1' || /^127\.\d+\.\d+\.\d+$/.test(h) || h === '::ffff:127.0.0.1';
}

function sendJson(
  res: ServerResponse,
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
): void {
  if (res.headersSent || res.destroyed) {
    if (!res.writableEnded) res.end();
    return;
  }
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json',
    'content-length': String(Buffer.byteLength(text)),
    ...headers,
  });
  res.end(text);
}

function sendError(res: ServerResponse, e: ApiError): void {
  const headers: Record<string, string> = {};
  if (e.status === 429) headers['retry-after'] = '1';
  sendJson(res, e.status, e.body(), headers);
}

/**
 * The request body, refusing (413) a declared or actual size over `limit`. After a refusal the rest
 * of the body is still read and dropped, up to DRAIN_FACTOR x limit (then the socket is cut), so
 * the client can finish sending and read the 413 instead of failing with a broken pipe.
 */
function readBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  const tooLarge = () =>
    new ApiError(
      413,
      `the request body is larger than the server's limit of ${limit} bytes`,
      'invalid_request_error',
      null,
      'request_too_large',
    );
  const DRAIN_FACTOR = 16;
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let over = false;
    const refuse = () => {
      over = true;
      chunks.length = 0;
      reject(tooLarge());
    };
    const declared = req.headers['content-length'];
    if (declared !== undefined && Number(declared) > limit) refuse();
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (over) {
        if (size > DRAIN_FACTOR * limit) req.destroy();
        return;
      }
      if (size > limit) refuse();
      else chunks.push(c);
    });
    req.on('end', () => {
      if (!over) resolve(Buffer.concat(chunks));
    });
    req.on('error', (e) => reject(new ApiError(400, `reading the request failed: ${e.message}`)));
  });
}

function digest(s: string): Buffer {
  return createHash('sha256').update(s).digest();
}

export function startServer(
  scheduler: Scheduler,
  info: EngineInfo,
  o: ServerOptions,
): Promise<RunningServer> {
  const log = o.log ?? (() => {});
  const keyDigest = o.apiKey === null ? null : digest(o.apiKey);

  const authorized = (req: IncomingMessage): boolean => {
    if (keyDigest === null) return true;
    const m = /^Bearer\s+(.+)$/i.exec(req.headers.authorization ?? '');
    return m !== null && timingSafeEqual(digest(m[1].trim()), keyDigest);
  };

  const modelObject = () => ({
    id: info.name,
    object: 'model',
    created: info.created,
    owned_by: 'nuggets',
    max_model_len: info.contextLength,
  });

  async function generation(
    kind: 'completion' | 'chat',
    req: IncomingMessage,
    res: ServerResponse,
  ): Promise<void> {
    const raw = await readBody(req, o.maxBodyBytes);
    let body: unknown;
    try {
      body = JSON.parse(raw.toString('utf8'));
    } catch (e) {
      throw new ApiError(
        400,
        `We could not parse the JSON body of your request: ${(e as Error).message}`,
        'invalid_request_error',
        null,
        'invalid_json',
      );
    }
    const r: GenerationRequest =
      kind === 'chat' ? parseChatRequest(body, o.limits) : parseCompletionRequest(body, o.limits);
    // vLLM's rule: fields this server does not know are ignored, and said so in the log
    if (r.ignored.length > 0) log(`ignored request fields on ${req.url}: ${r.ignored.join(', ')}`);
    if (r.model !== info.name) {
      throw new ApiError(
        404,
        `The model \`${r.model}\` does not exist; this server serves \`${info.name}\` (see /v1/models)`,
        'invalid_request_error',
        'model',
        'model_not_found',
      );
    }
    const meta: ResponseMeta = { id: newId(kind), created: Math.floor(Date.now() / 1000), model: info.name };
    const nChoices = (kind === 'chat' ? 1 : (r as { prompts: unknown[] }).prompts.length) * r.params.n;
    const usageField = r.includeUsage ? null : undefined;
    const write = (payload: unknown) => {
      if (!res.writableEnded && !res.destroyed) res.write(sse(payload));
    };
    const started = new Set<number>();
    const startStream = () => {
      if (res.headersSent || res.destroyed) return;
      res.writeHead(200, {
        'content-type': 'text/event-stream; charset=utf-8',
        'cache-control': 'no-cache',
        connection: 'keep-alive',
        'x-accel-buffering': 'no',
      });
    };
    const job = scheduler.submit(
      r,
      r.stream
        ? {
            onStart: startStream,
            onDelta: (choice, text) => {
              startStream();
              const first = !started.has(choice);
              started.add(choice);
              write(
                streamChunk(
                  kind,
                  meta,
                  { index: choice, text, role: kind === 'chat' && first, finishReason: null },
                  usageField,
                ),
              );
            },
          }
        : {},
    );
    // a client that goes away stops its generation (queued: dropped; running: cancelled at the next token)
    res.on('close', () => {
      if (!res.writableFinished) job.cancel();
    });
    let result: JobResult;
    try {
      result = await job.result;
    } catch (e) {
      if (e instanceof Cancelled) return;
      if (r.stream && res.headersSent) {
        const err = e instanceof ApiError ? e.body() : errorBody('internal error', 'server_error');
        write(err);
        write('[DONE]');
        res.end();
        return;
      }
      throw e;
    }
    const usage = usageOf(result.promptTokens, result.completionTokens);
    if (!r.stream) {
      sendJson(
        res,
        200,
        kind === 'chat'
          ? chatResponse(meta, result.choices, usage)
          : completionResponse(meta, result.choices, usage),
      );
      return;
    }
    startStream();
    for (let i = 0; i < nChoices; i++) {
      const c = result.choices[i];
      const first = !started.has(i);
      // chat: the closing chunk has an empty delta (plus the role if the choice produced no text)
      write(
        streamChunk(
          kind,
          meta,
          {
            index: i,
            text: kind === 'chat' ? (first ? '' : undefined) : '',
            role: kind === 'chat' && first,
            finishReason: c.finishReason,
          },
          usageField,
        ),
      );
    }
    if (r.includeUsage) write(streamChunk(kind, meta, null, usage));
    write('[DONE]');
    res.end();
  }

  async function route(
    req: IncomingMessage,
    res: ServerResponse,
    method: string,
    path: string,
  ): Promise<void> {
    if (path.startsWith('/v1/') && !authorized(req)) {
      throw new ApiError(
        401,
        'Incorrect or missing API key: send "Authorization: Bearer <key>"',
        'invalid_request_error',
        null,
        'invalid_api_key',
      );
    }
    if (path.startsWith('/v1/models/') && method === 'GET') {
      const id = decodeURIComponent(path.slice('/v1/models/'.length));
      if (id !== info.name)
        throw new ApiError(
          404,
          `The model \`${id}\` does not exist`,
          'invalid_request_error',
          'model',
          'model_not_found',
        );
      sendJson(res, 200, modelObject());
      return;
    }
    const allowed = ROUTES[path];
    if (!allowed)
      throw new ApiError(
        404,
        `Unknown request URL: ${method} ${path}`,
        'invalid_request_error',
        null,
        'unknown_url',
      );
    if (!allowed.includes(method)) {
      res.setHeader('allow', allowed.join(', '));
      throw new ApiError(
        405,
        `${method} is not allowed on ${path}; use ${allowed.join(', ')}`,
        'invalid_request_error',
        null,
        'method_not_allowed',
      );
    }
    switch (path) {
      case '/health':
        sendJson(res, 200, {
          status: 'ok',
          model: info.name,
          backend: info.backend,
          waiting: scheduler.waiting,
          busy: scheduler.busy,
        });
        return;
      case '/v1/models':
        sendJson(res, 200, { object: 'list', data: [modelObject()] });
        return;
      case '/v1/completions':
        return generation('completion', req, res);
      case '/v1/chat/completions':
        return generation('chat', req, res);
    }
  }

  const server = createServer((req, res) => {
    const t0 = performance.now();
    const method = req.method ?? 'GET';
    let path = '/';
    try {
      path = new URL(req.url ?? '/', 'http://localhost').pathname;
    } catch {
      /* a malformed URL is answered 404 below */
    }
    res.on('error', () => {});
    req.on('error', () => {});
    res.on('close', () =>
      log(
        `${method} ${path} ${res.writableFinished ? res.statusCode : 'client closed'} ${((performance.now() - t0) / 1000).toFixed(3)}s`,
      ),
    );
    route(req, res, method, path).catch((e: unknown) => {
      if (e instanceof ApiError) sendError(res, e);
      else {
        log(
          `internal error on ${method} ${path}: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`,
        );
        sendJson(res, 500, errorBody('internal error', 'server_error'));
      }
    });
  });
  // bounded: time to receive a request, idle keep-alive sockets, open sockets
  server.requestTimeout = 60_000;
  server.headersTimeout = 20_000;
  server.maxConnections = 256;

  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(o.port, o.host, () => {
      server.off('error', reject);
      const port = (server.address() as AddressInfo).port;
      const host = o.host.includes(':') ? `[${o.host}]` : o.host;
      resolve({
        server,
        port,
        url: `http://${host}:${port}`,
        close: () =>
          new Promise<void>((done) => {
            server.close(() => done());
            server.closeAllConnections();
          }),
      });
    });
  });
}
