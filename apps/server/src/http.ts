import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createHTTPHandler } from '@trpc/server/adapters/standalone';
import { appRouter, createBearerVerifier, createInnerContext, type Services } from '@asyncscope/api';
import type { Logger } from 'pino';

export interface HttpOptions {
  services: Services;
  apiToken: string;
  maxBodyBytes: number;
  log: Logger;
  isDatabaseReady: () => boolean;
  /** Answers /readyz: resolves if the database answers now. */
  checkDatabase: (signal: AbortSignal) => Promise<void>;
}

const REQUEST_ID = /^[\w.:-]{1,128}$/;

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const payload = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload), 'cache-control': 'no-store' });
  res.end(payload);
}

export interface HttpServer {
  server: Server;
  /** Requests being answered right now. */
  inFlight(): number;
  /** Resolves when no request is in flight. */
  drained(): Promise<void>;
}

/** The HTTP layer: request ids and logs, /healthz, /readyz, and tRPC under /trpc. */
export function createHttpServer(options: HttpOptions): HttpServer {
  const { log } = options;
  const verify = createBearerVerifier(options.apiToken);
  const trpc = createHTTPHandler({
    router: appRouter,
    basePath: '/trpc/',
    maxBodySize: options.maxBodyBytes,
    createContext: ({ req }) => {
      const requestId = (req as IncomingMessage & { id: string }).id;
      return createInnerContext({
        services: options.services,
        authorized: verify(req.headers.authorization),
        requestId,
        log: log.child({ requestId }),
        isDatabaseReady: options.isDatabaseReady,
      });
    },
    onError: ({ error, path, req }) => {
      const requestId = (req as IncomingMessage & { id?: string }).id;
      if (error.code === 'INTERNAL_SERVER_ERROR') log.error({ requestId, path, err: error.cause ?? error }, 'procedure failed');
      else log.debug({ requestId, path, code: error.code, msg: error.message }, 'procedure refused');
    },
  });

  let inFlight = 0;
  let onDrained: (() => void) | undefined;

  const server = createServer((req, res) => {
    const started = performance.now();
    const given = req.headers['x-request-id'];
    const id = typeof given === 'string' && REQUEST_ID.test(given) ? given : randomUUID();
    (req as IncomingMessage & { id: string }).id = id;
    res.setHeader('x-request-id', id);
    inFlight++;
    res.once('close', () => {
      inFlight--;
      log.info({ requestId: id, method: req.method, url: req.url, status: res.statusCode, ms: Math.round(performance.now() - started), aborted: !res.writableFinished }, 'request');
      if (inFlight === 0) onDrained?.();
    });

    const path = (req.url ?? '/').split('?', 1)[0] ?? '/';
    if (path === '/healthz') {
      sendJson(res, 200, { status: 'ok' });
    } else if (path === '/readyz') {
      const signal = AbortSignal.timeout(2000);
      options.checkDatabase(signal).then(
        () => { sendJson(res, 200, { status: 'ready' }); },
        (error: unknown) => { sendJson(res, 503, { status: 'unavailable', reason: error instanceof Error ? error.message : String(error) }); },
      );
    } else if (path.startsWith('/trpc/')) {
      trpc(req, res);
    } else {
      sendJson(res, 404, { error: { message: `Nothing at ${path}. The API is under /trpc/<procedure>.` } });
    }
  });

  return {
    server,
    inFlight: () => inFlight,
    drained: () =>
      inFlight === 0
        ? Promise.resolve()
        : new Promise<void>((resolve) => {
            onDrained = resolve;
          }),
  };
}
