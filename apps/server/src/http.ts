import { createServer, type IncomingMessage, type RequestListener, type Server, type ServerResponse } from 'node:http';
import { createSecureServer, type Http2SecureServer, type ServerHttp2Session } from 'node:http2';
import type { Socket } from 'node:net';
import { createHTTPHandler, type CreateHTTPContextOptions } from '@trpc/server/adapters/standalone';
import sirv from 'sirv';
import { admittedProcedures, appRouter, createCredentials, createInnerContext, type Logger as ApiLogger, type Runtime } from '@asyncscope/api';
import { isCallId, newCallId } from '@asyncscope/contract';
import type { Logger } from 'pino';
import { callControllerOf, createFastTRPCHandler, type FastTRPCHandlerOptions } from './fast-trpc';
import { logPath } from './log-redaction';
import { setDashboardHeaders } from './security-headers';
import { createTrpcGate, isAuthorized, jsonErrorsOnly, ownerOf } from './trpc-gate';
import { withBodyFirst } from './request-body';
import { isHttp2 } from './http-version';
import { writeJson } from './trpc-error-response';

export interface HttpOptions {
  runtime: Runtime;
  apiToken: string;
  /** More tokens, each its own caller (call ids and cancels are per caller). */
  extraApiTokens?: readonly string[] | undefined;
  maxBodyBytes: number;
  /** A request body must arrive whole this soon after its headers (408 beyond); its headers, likewise. */
  bodyTimeoutMs: number;
  /** Calls in one batched request (400 beyond). */
  maxBatchSize: number;
  log: Logger;
  isDatabaseReady: () => boolean;
  /** The built dashboard, served at / (single-page app); none when undefined. */
  dashboardDir?: string | undefined;
  /** Answers /readyz: resolves if the database answers now. */
  checkDatabase: (signal: AbortSignal) => Promise<void>;
  /** True once shutdown began: /readyz answers 503 then, so a load balancer stops sending while this one drains. */
  isStopping?: (() => boolean) | undefined;
  /** tRPC under /trpc/: our fast path with tRPC's adapter behind it (default), or tRPC's adapter alone (FAST_PATH=off; tests compare them). */
  trpcAdapter?: 'fast' | 'standard' | undefined;
  /** PEM certificate and key: HTTPS, HTTP/2 with HTTP/1.1 beside it (ALPN); plain HTTP/1.1 when absent. */
  tls?: { cert: string | Buffer; key: string | Buffer } | undefined;
}

/** Ids of the calls of a batched request, by position (x-call-ids); unusable entries are left empty. */
function parseCallIds(header: string | string[] | undefined): string[] | undefined {
  if (typeof header !== 'string' || header.length > 8192) return undefined;
  return header.split(',').map((id) => (isCallId(id) ? id : ''));
}

/** The client's remaining time budget (x-deadline-ms), if it sent a sane one. */
function parseBudget(header: string | string[] | undefined): number | undefined {
  if (typeof header !== 'string' || !/^\d{1,9}$/.test(header)) return undefined;
  return Math.max(1, Number(header));
}

/** Our own (non-tRPC) JSON answers: health checks and the 404/405 outside the API. */
function sendJson(res: ServerResponse, status: number, body: unknown): void {
  writeJson(res, status, JSON.stringify(body), { 'cache-control': 'no-store' });
}

/** A per-request logger made only when something is logged: most calls log nothing but the access line. */
class LazyChildLogger implements ApiLogger {
  private child: Logger | undefined;
  constructor(private readonly log: Logger, private readonly requestId: string) {}
  private get(): Logger {
    return (this.child ??= this.log.child({ requestId: this.requestId }));
  }
  info(obj: object, msg?: string): void { this.get().info(obj, msg); }
  warn(obj: object, msg?: string): void { this.get().warn(obj, msg); }
  error(obj: object, msg?: string): void { this.get().error(obj, msg); }
}

function notFound(res: ServerResponse, path: string): void {
  sendJson(res, 404, { error: { message: `Nothing at ${path}. The API is under /trpc/<procedure>.` } });
}

export interface HttpServer {
  /**
   * node:http's Server, or with `tls` an Http2SecureServer (allowHTTP1). Both emit 'upgrade' for an
   * HTTP/1.1 upgrade request (over TLS: a client that negotiated http/1.1 or no ALPN); HTTP/2 has no upgrade.
   */
  server: Server | Http2SecureServer;
  /** Closes connections with no request in flight; HTTP/2 sessions get GOAWAY and end when their streams do. */
  closeIdleConnections(): void;
  /** Destroys every connection, busy or not. */
  closeAllConnections(): void;
  /** Requests being answered right now (event streams not counted). */
  inFlight(): number;
  /** Resolves when no request is in flight. */
  drained(): Promise<void>;
  /** Ends every open event stream (SSE): at shutdown they would otherwise hold it up to its deadline. */
  endStreams(): void;
}

/** The HTTP layer: request ids and logs, /healthz, /readyz, and tRPC under /trpc. */
export function createHttpServer(options: HttpOptions): HttpServer {
  const { log } = options;
  const credentials = createCredentials([options.apiToken, ...(options.extraApiTokens ?? [])]);
  // One createContext for both paths: the fast one (single calls) and tRPC's adapter (batches, SSE, the rest).
  const createContext = ({ req, info }: CreateHTTPContextOptions) => {
    const requestId = (req as IncomingMessage & { id: string }).id;
    return createInnerContext({
      runtime: options.runtime,
      // Decided by the gate, before routing: a bearer header, or a stream ticket for a subscription.
      authorized: isAuthorized(req),
      owner: ownerOf(req),
      callId: requestId,
      // Fair admission takes turns between remote addresses: a client's many connections are one client.
      clientKey: req.socket.remoteAddress,
      clientBudgetMs: parseBudget(req.headers['x-deadline-ms']),
      batchCallIds: parseCallIds(req.headers['x-call-ids']),
      log: new LazyChildLogger(log, requestId),
      isDatabaseReady: options.isDatabaseReady,
      // A single call on the fast path: its scope aborts the request's own controller (one AbortSignal per call, not two).
      callController: callControllerOf(info),
    });
  };
  const trpcOptions: FastTRPCHandlerOptions<typeof appRouter> = {
    router: appRouter,
    basePath: '/trpc/',
    maxBodySize: options.maxBodyBytes,
    maxBatchSize: options.maxBatchSize,
    createContext,
    onError: ({ error, path, req }) => {
      const requestId = (req as IncomingMessage & { id?: string }).id;
      if (error.code === 'INTERNAL_SERVER_ERROR') log.error({ requestId, path, err: error.cause ?? error }, 'procedure failed');
      // The code only: refusal messages can quote what the caller sent (a CONFLICT names the email).
      else log.debug({ requestId, path, code: error.code }, 'procedure refused');
    },
  };
  const standard = createHTTPHandler(trpcOptions);
  const fallback = (req: IncomingMessage, res: ServerResponse): void => {
    jsonErrorsOnly(res);
    standard(req, res);
  };
  const { bodyTimeoutMs } = options;
  // Bodies are read whole before a call can be admitted (request-body.ts); strangers never get that far:
  // the gate answers them 401 first.
  const trpc = withBodyFirst(options.trpcAdapter === 'standard' ? fallback : createFastTRPCHandler({ ...trpcOptions, fallback }), {
    router: appRouter,
    basePath: '/trpc/',
    maxBodyBytes: options.maxBodyBytes,
    bodyTimeoutMs,
    maxBatchSize: options.maxBatchSize,
    authorized: isAuthorized,
    // A full server answers 429 before it reads a body or builds a context (a burst's 429s come at once).
    refuseEarly: (req, path) => (admittedProcedures.has(path) ? options.runtime.admission.refuseNow(req.socket.remoteAddress ?? '') : undefined),
    onError: trpcOptions.onError,
  });
  const gate = createTrpcGate({ router: appRouter, basePath: '/trpc/', identify: (authorization) => credentials.ownerOfHeader(authorization), redeemTicket: (ticket) => options.runtime.tickets.take(ticket)?.owner });

  const dashboard = options.dashboardDir ? sirv(options.dashboardDir, { single: true, etag: true }) : undefined;
  let inFlight = 0;
  let onDrained: (() => void) | undefined;
  const streams = new Set<ServerResponse>();

  const handle: RequestListener = (req, res) => {
    const started = performance.now();
    const given = req.headers['x-request-id'];
    // The contract's generator, not crypto.randomUUID: unique in this process, distinct across processes, and
    // ~1.5 µs cheaper per request (randomUUID 1.5 % of users.byId's profile; README *What the profiles taught*).
    const id = isCallId(given) ? given : newCallId('r');
    (req as IncomingMessage & { id: string }).id = id;
    res.setHeader('x-request-id', id);
    const isStream = req.headers.accept === 'text/event-stream';
    if (isStream) streams.add(res);
    else inFlight++;
    res.once('close', () => {
      if (isStream) streams.delete(res);
      else inFlight--;
      // An HTTP/2 compat response is writableFinished even when its stream was reset: ended is what counts there.
      const answered = isHttp2(req) ? res.writableEnded : res.writableFinished;
      log.info({ requestId: id, method: req.method, path: logPath(req.url), status: answered ? res.statusCode : 499, ms: Math.round(performance.now() - started), aborted: !answered }, 'request');
      if (!isStream && inFlight === 0) onDrained?.();
    });

    const path = (req.url ?? '/').split('?', 1)[0] ?? '/';
    if (req.method !== 'GET' && req.method !== 'HEAD' && !path.startsWith('/trpc/')) {
      res.setHeader('allow', 'GET, HEAD');
      sendJson(res, 405, { error: { message: `Only GET and HEAD are served here, not ${req.method ?? 'this method'}.` } });
    } else if (path === '/healthz') {
      sendJson(res, 200, { status: 'ok' });
    } else if (path === '/readyz' && options.isStopping?.()) {
      sendJson(res, 503, { status: 'stopping', reason: 'the server is shutting down' });
    } else if (path === '/readyz') {
      const signal = AbortSignal.timeout(2000);
      options.checkDatabase(signal).then(
        () => { sendJson(res, 200, { status: 'ready' }); },
        // A fixed reason: driver errors can name hosts and users, and /readyz needs no token.
        () => { sendJson(res, 503, { status: 'unavailable', reason: 'the database does not answer' }); },
      );
    } else if (path.startsWith('/trpc/')) {
      if (gate(req, res)) trpc(req, res);
    } else if (dashboard) {
      setDashboardHeaders(res);
      dashboard(req, res, () => { notFound(res, path); });
    } else {
      notFound(res, path);
    }
  };

  // Slowloris: headers must arrive within bodyTimeoutMs, and a whole request soon after (Node answers 408
  // and closes; the body's own deadline answers first, in JSON). Checked every second, not every 30 s.
  const timeouts = { headersTimeout: bodyTimeoutMs, requestTimeout: 2 * bodyTimeoutMs + 1000, connectionsCheckingInterval: 1000 };
  const served = options.tls ? secureServer(options.tls, timeouts, bodyTimeoutMs, handle) : plainServer(timeouts, handle);

  return {
    ...served,
    inFlight: () => inFlight,
    drained: () =>
      inFlight === 0
        ? Promise.resolve()
        : new Promise<void>((resolve) => {
            onDrained = resolve;
          }),
    endStreams: () => {
      for (const res of streams) res.destroy();
    },
  };
}

interface Served {
  server: Server | Http2SecureServer;
  closeIdleConnections(): void;
  closeAllConnections(): void;
}

function plainServer(timeouts: { headersTimeout: number; requestTimeout: number; connectionsCheckingInterval: number }, handle: RequestListener): Served {
  const server = createServer(timeouts, handle);
  return { server, closeIdleConnections: () => { server.closeIdleConnections(); }, closeAllConnections: () => { server.closeAllConnections(); } };
}

/**
 * HTTPS: HTTP/2 for clients that offer it (browsers: one connection, every call a stream of its own, so a
 * page is not held to 6 requests at once and an abort resets only its stream), HTTP/1.1 for the others.
 * The same handler serves both through Node's compat API (http-version.ts): a reset stream closes its
 * response before it was written, which fires the call's signal as a closed HTTP/1.1 connection does.
 */
function secureServer(
  tls: { cert: string | Buffer; key: string | Buffer },
  timeouts: { headersTimeout: number; requestTimeout: number; connectionsCheckingInterval: number },
  handshakeTimeoutMs: number,
  handle: RequestListener,
): Served {
  // A handshake must finish as soon as headers must (the default, 120 s, lets idle sockets pile up).
  const server = createSecureServer({ ...tls, allowHTTP1: true, handshakeTimeout: handshakeTimeoutMs }, handle as unknown as Parameters<typeof createSecureServer>[1]);
  // The HTTP/1.1 side is node:http's connection handling, which reads these off the server (no constructor
  // options for them here): the same slow-header protection as the plain server. HTTP/2 has no such
  // timeouts; its bodies have request-body.ts's deadline, its sessions are closed below.
  // keepAliveTimeout as node:http's default: an idle HTTP/1.1 keep-alive connection is closed after 5 s.
  Object.assign(server, timeouts, { keepAliveTimeout: 5000 });
  // Neither closeAllConnections nor a way to reach HTTP/2 sessions: keep both, to close them at shutdown.
  const sockets = new Set<Socket>();
  const sessions = new Set<ServerHttp2Session>();
  server.on('connection', (socket: Socket) => {
    sockets.add(socket);
    socket.once('close', () => { sockets.delete(socket); });
  });
  server.on('session', (session: ServerHttp2Session) => {
    sessions.add(session);
    session.once('close', () => { sessions.delete(session); });
  });
  return {
    server,
    closeIdleConnections: () => {
      // The HTTP/1.1 connections (Node 20.19 has it with allowHTTP1; its types do not say so yet).
      (server as Http2SecureServer & { closeIdleConnections?: () => void }).closeIdleConnections?.();
      // GOAWAY: no new streams; the session ends when those in flight are answered.
      for (const session of sessions) if (!session.closed) session.close();
    },
    closeAllConnections: () => {
      for (const session of sessions) session.destroy();
      for (const socket of sockets) socket.destroy();
    },
  };
}
