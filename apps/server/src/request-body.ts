/**
 * Whole requests before calls: a request's body is read completely — bounded in size (413) and in time
 * (408) — and a batch's size checked, BEFORE the request reaches tRPC, so before any of its calls can take
 * an admission slot. Without this a client that sends its token and then trickles its body holds a slot
 * (the call is admitted, then waits for its input) for as long as it likes: 120 such connections once held
 * every slot for 40 s.
 *
 * The body lands on `req.body` as a string, which both tRPC paths then use instead of the stream: our fast
 * path (fast-trpc.ts) and tRPC's node adapter (11.22.1 `createBody`: a string `req.body` becomes the Fetch
 * Request's body; nothing is read from the socket again).
 *
 * Hand-written rather than raw-body & co.: the read must also end on a deadline and on the client's
 * departure with a typed tRPC error, and the fast path's reader is already this small.
 */
import type { IncomingMessage, RequestListener, ServerResponse } from 'node:http';
import { getTRPCErrorFromUnknown, TRPCError, type AnyTRPCProcedure, type AnyTRPCRouter } from '@trpc/server';
import type { HTTPErrorHandler } from '@trpc/server/http';
import { createAbortController } from '@asyncscope/concurrency';
import { closeAfter, responseGone } from './http-version';
import { TRPC_VARY, trpcErrorResponses, writeJson } from './trpc-error-response';

export interface BodyFirstOptions<TRouter extends AnyTRPCRouter> {
  router: TRouter;
  /** Sliced from the start of the URL's path: '/trpc/'. */
  basePath: string;
  /** Larger bodies get 413 PAYLOAD_TOO_LARGE. */
  maxBodyBytes: number;
  /** A body not complete this long after its headers arrived gets 408 TIMEOUT. */
  bodyTimeoutMs: number;
  /** More calls in one batched request get 400 BAD_REQUEST, before its body is read. */
  maxBatchSize: number;
  /**
   * Whether the request carries the token. Strangers' requests go on as they are — no body read, no early
   * refusal — and tRPC refuses them (401) before it reads any input, so a stranger costs no body read.
   */
  authorized?: ((req: IncomingMessage) => boolean) | undefined;
  /**
   * Load shedding, early: a single call to `path` that would be refused now gets this message as a
   * TOO_MANY_REQUESTS answer at once, before its body is read or tRPC sees it (a 429 in a burst otherwise
   * waits behind everyone else's work: ~1 ms of CPU each through the whole stack).
   */
  refuseEarly?: ((req: IncomingMessage, path: string) => string | undefined) | undefined;
  onError?: HTTPErrorHandler<TRouter, IncomingMessage> | undefined;
}

/** The request with the body a tRPC adapter reads instead of the stream. */
export type RequestWithBody = IncomingMessage & { body?: unknown };

/** Paths in a batched URL (`/trpc/a,b,c?batch=1`), as tRPC splits them; 1 when the URL is no batch. */
export function batchSize(url: string, basePath: string): number {
  const q = url.indexOf('?');
  if (q === -1) return 1;
  // Cheap test first: most requests are single calls.
  if (!url.includes('batch=1', q)) return 1;
  if (new URLSearchParams(url.slice(q + 1)).get('batch') !== '1') return 1;
  const path = url.slice(url.startsWith(basePath) ? basePath.length : 0, q);
  let calls = 1;
  for (let i = path.indexOf(','); i !== -1; i = path.indexOf(',', i + 1)) calls++;
  return calls;
}

/**
 * Reads the whole body of `req` as UTF-8 text (a BOM kept: both tRPC paths drop it when they parse).
 * Rejects with a TRPCError: PAYLOAD_TOO_LARGE past maxBytes, TIMEOUT when `signal` fires first,
 * CLIENT_CLOSED_REQUEST when the client goes away midway. Every listener is removed when it settles.
 */
export function readBody(req: IncomingMessage, maxBytes: number, signal: AbortSignal): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const done = (): void => {
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('error', onGone);
      req.off('close', onClose);
      signal.removeEventListener('abort', onAbort);
    };
    const fail = (error: TRPCError): void => {
      done();
      // Stop reading: what is left of the body is not wanted (the connection is closed after the answer).
      req.pause();
      reject(error);
    };
    const onData = (chunk: Buffer): void => {
      size += chunk.length;
      if (size > maxBytes) fail(new TRPCError({ code: 'PAYLOAD_TOO_LARGE' }));
      else chunks.push(chunk);
    };
    const onEnd = (): void => {
      done();
      resolve(Buffer.concat(chunks, size).toString('utf8'));
    };
    const onGone = (): void => {
      fail(new TRPCError({ code: 'CLIENT_CLOSED_REQUEST', message: 'The client went away before its whole request body arrived.' }));
    };
    const onClose = (): void => {
      if (!req.complete) onGone();
    };
    const onAbort = (): void => {
      fail(new TRPCError({ code: 'TIMEOUT', message: 'The request body did not arrive in time; send it whole, promptly.' }));
    };
    if (signal.aborted) {
      onAbort();
      return;
    }
    signal.addEventListener('abort', onAbort, { once: true });
    req.on('data', onData);
    req.on('end', onEnd);
    req.on('error', onGone);
    req.on('close', onClose);
  });
}

/** Requests whose body tRPC reads: every method but GET and HEAD. */
function hasBody(req: IncomingMessage): boolean {
  return req.method !== 'GET' && req.method !== 'HEAD';
}

/**
 * Wraps a tRPC request handler: batch size checked, body read whole (see the top of this file), then
 * `handler` called with `req.body` set. Refusals are tRPC-shaped JSON errors, and close the connection
 * (what is left of a refused body is not read).
 */
export function withBodyFirst<TRouter extends AnyTRPCRouter>(handler: RequestListener, opts: BodyFirstOptions<TRouter>): RequestListener {
  const errors = trpcErrorResponses(opts.router);

  const answer = (res: ServerResponse, status: number, body: string, close: boolean): void => {
    if (res.headersSent || responseGone(res)) return;
    writeJson(res, status, body, close ? { vary: TRPC_VARY, ...closeAfter(res.req) } : { vary: TRPC_VARY });
  };

  const refuse = (req: IncomingMessage, res: ServerResponse, cause: unknown): void => {
    const error = getTRPCErrorFromUnknown(cause);
    opts.onError?.({ error, req, path: undefined, input: undefined, ctx: undefined, type: 'unknown' });
    const { status, body } = errors.answer(error);
    answer(res, status, body, true);
  };

  // The 429 answers, made once per procedure and message (a handful): the same JSON the procedure gives.
  const shedBodies = new Map<string, string>();
  const shedBody = (path: string, message: string): string => {
    const key = `${path}\n${message}`;
    let body = shedBodies.get(key);
    if (body === undefined) {
      const error = new TRPCError({ code: 'TOO_MANY_REQUESTS', message });
      const procedure = (opts.router._def.procedures as Record<string, AnyTRPCProcedure | undefined>)[path];
      body = errors.answer(error, { type: procedure?._def.type ?? 'unknown', path }).body;
      if (shedBodies.size < 1000) shedBodies.set(key, body);
    }
    return body;
  };

  return (req, res) => {
    const received = performance.now();
    const calls = batchSize(req.url ?? '', opts.basePath);
    if (calls > opts.maxBatchSize) {
      refuse(req, res, new TRPCError({
        code: 'BAD_REQUEST',
        message: `A batch may hold at most ${opts.maxBatchSize} calls; this one has ${calls}. Send smaller batches (httpBatchLink's maxItems).`,
      }));
      return;
    }
    const authorized = opts.authorized?.(req) ?? true;
    // tRPC also takes the token from ?connectionParams=: such a request may be authorized, so it too is read first.
    if (!authorized && !(req.url ?? '').includes('connectionParams=')) {
      handler(req, res);
      return;
    }
    if (authorized && opts.refuseEarly && calls === 1) {
      const url = req.url ?? '';
      const q = url.indexOf('?');
      const path = url.slice(opts.basePath.length, q === -1 ? undefined : q);
      const refusal = opts.refuseEarly(req, path);
      if (refusal !== undefined) {
        // A body, if any, is left unread: close the connection after the answer rather than drain it.
        // Server-Timing says how long the refusal took here, apart from the time the request waited to be
        // read (in a burst of new connections that wait is most of what a client sees).
        res.setHeader('server-timing', `shed;dur=${(performance.now() - received).toFixed(2)}`);
        answer(res, 429, shedBody(path, refusal), hasBody(req));
        return;
      }
    }
    if (!hasBody(req)) {
      handler(req, res);
      return;
    }
    const declared = Number(req.headers['content-length']);
    if (declared > opts.maxBodyBytes) {
      refuse(req, res, new TRPCError({ code: 'PAYLOAD_TOO_LARGE' })); // said so up front: nothing to read
      return;
    }
    // The deadline counts from the end of the headers; its timer is cleared whichever way the read ends.
    const timeout = createAbortController();
    const timer = setTimeout(() => { timeout.abort(); }, opts.bodyTimeoutMs);
    timer.unref();
    void readBody(req, opts.maxBodyBytes, timeout.signal).then(
      (text) => {
        clearTimeout(timer);
        (req as RequestWithBody).body = text;
        try {
          handler(req, res);
        } catch (error) {
          refuse(req, res, error);
        }
      },
      (error: unknown) => {
        clearTimeout(timer);
        refuse(req, res, error);
      },
    );
  };
}
