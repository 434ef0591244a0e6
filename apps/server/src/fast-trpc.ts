/**
 * tRPC on plain node:http for the common case, and tRPC's own adapter for everything else.
 *
 * Why: the standalone adapter (`createHTTPHandler`, @trpc/server 11.22) turns every Node request into Fetch
 * API objects (URL, Headers, an undici Request with a ReadableStream body, two AbortControllers, two
 * AbortSignal.any — which leak on Node 20) and pipes a web stream back. Measured on this 2-core box, a
 * constant-answer procedure: ~330–580 µs CPU per request through it, ~65–87 µs through this file, ~35–49 µs
 * for plain node:http. users.byId through the whole server: 735 → 387 µs CPU/request, 0.17 → 0.31× the
 * req/s of the node:http + postgres.js baseline; peak RSS with 10,000 calls in flight: ~650 → ~450 MB.
 *
 * Served here: ONE call, not batched — a query by GET (`<basePath><path>`, optionally `?input=<url-encoded
 * JSON>`), a mutation by POST (JSON body, content-type application/json) — with all its errors: bad input,
 * malformed JSON, body over maxBodySize (413), wrong method (405), unknown procedure (404), createContext or
 * procedure failures. Everything else goes untouched to `fallback` (by default tRPC's standard handler with
 * the same options): batches, subscriptions / SSE, jsonl, other methods (OPTIONS, HEAD, PUT…), other content
 * types (the 415s), other query parameters (connectionParams…), percent-encoded or odd paths, Host headers
 * tRPC's URL parsing would reject, lazy routers' unloaded procedures.
 *
 * Reproduced from resolveResponse / nodeHTTPRequestHandler (11.22.1): status codes and JSON bodies (errors
 * through the router's errorFormatter via getErrorShape), onError calls (error, path, type, input, ctx, the
 * Node request), the order of checks (404, 405, createContext's error, then the procedure; input read lazily,
 * so a middleware that refuses — auth — wins over bad JSON or a body too large), input decoding
 * (URLSearchParams rules for the query; a body's BOM dropped), `vary` / `content-type`, and the procedure's
 * `signal`, fired when the response closes before it was written (no AbortSignal.any), and createContext's
 * `{ req, res, info }` (`info.url` made when first read). By design: a content-length instead of chunked
 * encoding; a body cut off midway (client gone) fails the input read — tRPC's adapter waits on it forever.
 *
 * Public entry points of @trpc/server only ('@trpc/server', '@trpc/server/http',
 * '@trpc/server/adapters/standalone'); `router._def.procedures` / `_def.lazy` are typed parts of a router,
 * `_def._config` is read in trpc-error-response.ts.
 *
 * Fenced: FAST_PATH=off serves everything through tRPC's adapter (one restart rules this file out), and
 * fast-trpc.test.ts fails on any other @trpc/server than TRPC_SERVER_VERIFIED. Upgrading @trpc/server:
 *   1. Read the changelog and the diff of resolveResponse / nodeHTTPRequestHandler / getRequestInfo (and
 *      of `createURL`, `createRouterFactory`'s lazy loading) between the two versions.
 *   2. Re-run the differential corpus: `npx vitest run src/fast-trpc.test.ts` (the same requests through
 *      this file and tRPC's adapter; status, headers, bodies, onError and createContext's `info` compared).
 *      Any difference: follow tRPC here, or send the request to the fallback; add a case for it.
 *   3. Check what the corpus cannot see: new `info` fields, new headers, new defaults
 *      (maxBatchSize, allowMethodOverride, content types), `_def` shapes (procedures, lazy, _config).
 *   4. Update TRPC_SERVER_VERIFIED below and the version in the first paragraph; re-run `pnpm bench`.
 */
import type { IncomingMessage, RequestListener, ServerResponse } from 'node:http';
import {
  callTRPCProcedure,
  getTRPCErrorFromUnknown,
  TRPCError,
  type AnyTRPCProcedure,
  type AnyTRPCRouter,
  type inferRouterContext,
  type TRPCProcedureType,
} from '@trpc/server';
import { createHTTPHandler, type CreateHTTPContextOptions } from '@trpc/server/adapters/standalone';
import { createAbortController } from '@asyncscope/concurrency';
import type { HTTPErrorHandler, TRPCRequestInfo } from '@trpc/server/http';
import { responseGone } from './http-version';
import { TRPC_VARY, trpcErrorResponses, writeJson } from './trpc-error-response';

/** The @trpc/server version this file was checked against (header: the upgrade checklist). */
export const TRPC_SERVER_VERIFIED = '11.22.1';

export interface FastTRPCHandlerOptions<TRouter extends AnyTRPCRouter> {
  router: TRouter;
  /** Sliced from the start of the path, with its trailing slash: '/trpc/'. */
  basePath: string;
  /** Largest request body in bytes (413 PAYLOAD_TOO_LARGE beyond); none when 0 or undefined, like tRPC. */
  maxBodySize?: number | undefined;
  /** Most calls in one batch (tRPC's adapter answers 400 beyond); batches are the fallback's. */
  maxBatchSize?: number | undefined;
  createContext: (opts: CreateHTTPContextOptions) => inferRouterContext<TRouter> | Promise<inferRouterContext<TRouter>>;
  onError?: HTTPErrorHandler<TRouter, IncomingMessage> | undefined;
  /** Serves what the fast path does not; default: tRPC's standard handler with the same options. */
  fallback?: RequestListener | undefined;
}

/** A procedure path as tRPC's routers build them: dot-separated names; nothing a URL parser would rewrite. */
const PROCEDURE_PATH = /^[\w$-]+(?:\.[\w$-]+)*$/;
const FORM_OR_OCTETS = /multipart\/form-data|application\/octet-stream/i;
const STREAM_MESSAGE = 'Cannot use stream-like response in non-streaming request - use httpBatchStreamLink';

/** content-type is application/json, compared as tRPC does (case-insensitive, parameters ignored). */
function isJson(contentType: string | undefined): boolean {
  if (contentType === undefined) return false;
  if (contentType === 'application/json') return true;
  return contentType.toLowerCase().split(';', 1)[0]?.trim() === 'application/json';
}

/**
 * The `input` query parameter as URLSearchParams would read it: undefined for no input, null when the
 * query holds anything else (other or repeated parameters, escapes URLSearchParams would read leniently).
 */
function queryInput(url: string, start: number): string | undefined | null {
  if (start === url.length) return undefined;
  if (!url.startsWith('input=', start)) return null;
  let value = url.slice(start + 6);
  if (value.includes('&') || value.includes('#')) return null;
  if (value === '') return undefined; // tRPC: `if (queryInput)`: an empty input is no input
  if (value.includes('+')) value = value.replaceAll('+', ' ');
  if (!value.includes('%')) return value;
  try {
    return decodeURIComponent(value);
  } catch {
    return null; // URLSearchParams keeps malformed escapes as they are: let tRPC's own reading decide
  }
}

/** Whether x is an object with promises or async iterables in it (resolveResponse's isDataStream). */
function isDataStream(value: unknown): boolean {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false;
  if (Symbol.asyncIterator in value) return true;
  for (const item of Object.values(value)) {
    const isObject = typeof item === 'object' && item !== null && !Array.isArray(item);
    if (isObject || typeof item === 'function') {
      const thenable = item as { then?: unknown; catch?: unknown };
      if (typeof thenable.then === 'function' && typeof thenable.catch === 'function') return true;
      if (isObject && Symbol.asyncIterator in item) return true;
    }
  }
  return false;
}

function clientGone(): TRPCError {
  return new TRPCError({ code: 'CLIENT_CLOSED_REQUEST', message: 'The client went away before its whole request body arrived.' });
}

/**
 * A POST body, collected as it arrives (as tRPC's adapter does, from the start of the request), up to
 * maxBodySize. Its listeners stay attached and ignore what comes after the outcome.
 */
class RequestBody {
  private chunks: Buffer[] | undefined = [];
  private size = 0;
  private text: string | undefined;
  private error: Error | undefined;
  private waiter: { resolve: (text: string) => void; reject: (error: Error) => void } | undefined;

  constructor(private readonly req: IncomingMessage, private readonly maxBodySize: number | undefined) {
    // Read whole already (request-body.ts, before admission): the stream has nothing more to give.
    const given = (req as IncomingMessage & { body?: unknown }).body;
    if (typeof given === 'string') {
      this.chunks = undefined;
      this.text = given.charCodeAt(0) === 0xfeff ? given.slice(1) : given; // a BOM dropped, as below
      return;
    }
    req.on('data', (chunk: Buffer) => { this.data(chunk); });
    req.on('end', () => { this.end(); });
    req.on('error', (error: Error) => { this.settle(undefined, error); });
    // Gone before the end of its body: tRPC's own reading would wait forever; fail it (the call's signal fires too).
    req.on('close', () => { if (!this.req.complete) this.settle(undefined, clientGone()); });
  }

  read(): Promise<string> {
    if (this.text !== undefined) return Promise.resolve(this.text);
    if (this.error !== undefined) return Promise.reject(this.error);
    return new Promise((resolve, reject) => {
      this.waiter = { resolve, reject };
    });
  }

  private data(chunk: Buffer): void {
    if (this.chunks === undefined) return;
    this.size += chunk.length;
    if (!this.maxBodySize || this.size <= this.maxBodySize) this.chunks.push(chunk);
    // Like tRPC: stop collecting (the rest of the body flows on, unread) and fail the read.
    else this.settle(undefined, new TRPCError({ code: 'PAYLOAD_TOO_LARGE' }));
  }

  private end(): void {
    const { chunks } = this;
    if (chunks === undefined) return;
    const bytes = chunks.length === 1 && chunks[0] ? chunks[0] : Buffer.concat(chunks, this.size);
    // As undici's body.json(): UTF-8, a leading BOM dropped.
    const bom = bytes.length >= 3 && bytes[0] === 0xef && bytes[1] === 0xbb && bytes[2] === 0xbf;
    this.settle(bytes.toString('utf8', bom ? 3 : 0), undefined);
  }

  private settle(text: string | undefined, error: Error | undefined): void {
    if (this.chunks === undefined) return;
    this.chunks = undefined;
    this.text = text;
    this.error = error;
    const { waiter } = this;
    if (!waiter) return;
    this.waiter = undefined;
    if (text === undefined) waiter.reject(error ?? clientGone());
    else waiter.resolve(text);
  }
}

/**
 * The call, as tRPC's `info.calls[0]`: its input is read and parsed only when the procedure asks
 * (getRawInput), memoized, errors as tRPC's memo() makes them.
 */
class SingleCall {
  readonly batchIndex = 0;
  /** The input as read, for `result()`: undefined until read successfully. */
  private value: unknown = undefined;
  private reading: Promise<unknown> | undefined;

  constructor(
    readonly path: string,
    readonly procedure: AnyTRPCProcedure | null,
    private readonly queryText: string | undefined,
    private readonly body: RequestBody | undefined,
    private readonly deserialize: (value: unknown) => unknown,
  ) {}

  getRawInput(): Promise<unknown> {
    return (this.reading ??= this.read());
  }

  result(): unknown {
    return this.value;
  }

  private async read(): Promise<unknown> {
    try {
      const text = this.body ? await this.body.read() : this.queryText;
      if (text === undefined) return undefined;
      const value = this.deserialize(JSON.parse(text));
      this.value = value;
      return value;
    } catch (cause) {
      // tRPC's memo() around input reading: its own errors pass, anything else is BAD_REQUEST with its message.
      if (cause instanceof TRPCError) throw cause;
      throw new TRPCError({ code: 'BAD_REQUEST', message: cause instanceof Error ? cause.message : 'Invalid input', cause });
    }
  }
}

/**
 * createContext's `info`, as tRPC's adapter fills it for one call. Its `url` is made when first read
 * (createContext rarely does; a URL costs microseconds), from what tRPC's adapter makes it of (createURL).
 */
class RequestInfo implements TRPCRequestInfo {
  readonly accept = null;
  readonly isBatchCall = false;
  readonly connectionParams = null;
  readonly calls: SingleCall[];
  readonly signal: AbortSignal;
  readonly #controller: AbortController;
  private parsedUrl: URL | undefined;

  constructor(readonly type: TRPCProcedureType | 'unknown', call: SingleCall, controller: AbortController, private readonly req: IncomingMessage) {
    this.calls = [call];
    this.#controller = controller;
    this.signal = controller.signal;
  }

  /** The controller of `signal` (see callControllerOf). */
  get controller(): AbortController {
    return this.#controller;
  }

  get url(): URL {
    return (this.parsedUrl ??= requestURL(this.req));
  }
}

/**
 * For createContext: the controller behind the signal a call served here gets (fired when the response closes
 * before it was written). The request carries that one call and nothing else aborts it, so the call may take it
 * as its own (`callController`, packages/api context.ts) instead of linking a second controller to it.
 * Undefined for requests tRPC's adapter serves.
 */
export function callControllerOf(info: TRPCRequestInfo | undefined): AbortController | undefined {
  return info instanceof RequestInfo ? info.controller : undefined;
}

/** The request's URL as tRPC's node adapter makes it (createURL); the fast path takes only hosts that parse. */
function requestURL(req: IncomingMessage): URL {
  const { headers } = req;
  const https = headers[':scheme'] === 'https' || (req.socket as { encrypted?: boolean } | null)?.encrypted === true;
  const host = headers.host ?? (headers[':authority'] as string | undefined) ?? 'localhost';
  return new URL(req.url ?? '', `${https ? 'https:' : 'http:'}//${host}`);
}

/** getRawInput as a function of its own (tRPC copies the options it is passed, so `this` would be lost). */
function inputOf(call: SingleCall): () => Promise<unknown> {
  return () => call.getRawInput();
}

const ACCEPTED_METHOD: Record<TRPCProcedureType, string> = { query: 'GET', mutation: 'POST', subscription: 'GET' };

const VARY = { vary: TRPC_VARY };

function send(res: ServerResponse, status: number, body: string): void {
  if (responseGone(res)) return; // the client is gone: nobody to answer (tRPC's pipe is aborted likewise)
  writeJson(res, status, body, VARY);
}

/** A Node request handler for tRPC: single calls served directly, the rest by tRPC's standard adapter. */
export function createFastTRPCHandler<TRouter extends AnyTRPCRouter>(opts: FastTRPCHandlerOptions<TRouter>): RequestListener {
  const { router, basePath, maxBodySize, maxBatchSize, createContext, onError } = opts;
  const fallback =
    opts.fallback ??
    createHTTPHandler<TRouter>({ router, basePath, maxBodySize, maxBatchSize, createContext, onError });
  const errors = trpcErrorResponses(router);
  const { config } = errors;
  const deserialize = (value: unknown): unknown => config.transformer.input.deserialize(value);
  // A flat map 'users.byId' → procedure, made without a prototype (tRPC's emptyObject()).
  const procedures = router._def.procedures as Record<string, AnyTRPCProcedure | undefined>;
  const lazy = router._def.lazy;
  /** tRPC parses `new URL(req.url, 'http://' + host)` and answers 400 when that throws: keep that to it. */
  let lastGoodHost: string | undefined;
  const hostParses = (host: string | undefined): boolean => {
    if (host === undefined || host === lastGoodHost) return true;
    if (!URL.canParse(`http://${host}`)) return false;
    lastGoodHost = host;
    return true;
  };

  /** Answers one call; never rejects (what escapes gets the adapter's last-resort answer). */
  async function serve(req: IncomingMessage, res: ServerResponse, call: SingleCall): Promise<void> {
    try {
      const { path, procedure } = call;
      const type = procedure ? procedure._def.type : 'unknown';
      // On Node 20 not Node's own: its signals were 5 % of a call's CPU (packages/concurrency abort-controller.ts).
      const controller = createAbortController();
      const { signal } = controller;
      // The client went away before the answer was written: the call's signal fires (tRPC's adapter does the same).
      res.once('close', () => {
        if (!res.writableEnded) controller.abort();
      });
      const info = new RequestInfo(type, call, controller, req);

      let ctx: inferRouterContext<TRouter> | undefined;
      let ctxError: TRPCError | undefined;
      try {
        // Ours is synchronous: awaited only if it is not, to spare each call a turn of the microtask queue.
        const made = createContext({ req, res, info });
        ctx = made instanceof Promise ? await made : made;
      } catch (cause) {
        ctxError = getTRPCErrorFromUnknown(cause);
      }

      let status = 200;
      let body: string;
      try {
        let error: TRPCError | undefined;
        let data: unknown;
        try {
          if (!procedure) throw new TRPCError({ code: 'NOT_FOUND', message: `No procedure found on path "${path}"` });
          if (req.method !== ACCEPTED_METHOD[procedure._def.type]) {
            throw new TRPCError({ code: 'METHOD_NOT_SUPPORTED', message: `Unsupported ${req.method ?? ''}-request to ${type} procedure at path "${path}"` });
          }
          if (ctxError) throw ctxError;
          data = await callTRPCProcedure({ router, path, getRawInput: inputOf(call), ctx, type: procedure._def.type, signal, batchIndex: 0 });
        } catch (cause) {
          error = getTRPCErrorFromUnknown(cause);
          onError?.({ error, path, input: call.result(), ctx, type, req });
        }
        if (isDataStream(data)) throw new TRPCError({ code: 'UNSUPPORTED_MEDIA_TYPE', message: STREAM_MESSAGE });
        if (error) {
          ({ status, body } = errors.answer(error, { type, path, input: call.result(), ctx }));
        } else {
          // What transformTRPCResponse makes of { result: { data } }, without its two object spreads
          // (tRPC's _objectSpread2 helper is slow: ownKeys + defineProperty per key).
          body = JSON.stringify({ result: { data: config.transformer.output.serialize(data) as unknown } });
        }
      } catch (cause) {
        // resolveResponse's outer catch: no path, no input.
        const error = getTRPCErrorFromUnknown(cause);
        onError?.({ error, path: undefined, input: undefined, ctx, type, req });
        ({ status, body } = errors.answer(error, { type, ctx }));
      }
      send(res, status, body);
    } catch (cause) {
      failed(req, res, cause);
    }
  }

  /** tRPC adapter's last resort (internal_exceptionHandler): a bare JSON error, no content-type. */
  function failed(req: IncomingMessage, res: ServerResponse, cause: unknown): void {
    const error = getTRPCErrorFromUnknown(cause);
    const { status, body } = errors.answer(error);
    onError?.({ req, error, type: 'unknown', path: undefined, input: undefined, ctx: undefined });
    if (res.headersSent) {
      res.destroy();
      return;
    }
    res.statusCode = status;
    res.end(body);
  }

  return function fastTRPC(req, res) {
    const { method, headers } = req;
    const url = req.url ?? '';
    if ((method !== 'GET' && method !== 'POST') || !url.startsWith(basePath)) {
      fallback(req, res);
      return;
    }
    const q = url.indexOf('?', basePath.length);
    const path = q === -1 ? url.slice(basePath.length) : url.slice(basePath.length, q);
    let queryText: string | undefined;
    // HTTP/2 has :authority where HTTP/1.1 has Host; tRPC's URL parsing takes either.
    let fast = PROCEDURE_PATH.test(path) && headers['trpc-accept'] === undefined && hostParses(headers.host ?? (headers[':authority'] as string | undefined));
    if (fast && method === 'GET') {
      const contentType = headers['content-type'];
      // A GET's input is JSON whatever the content-type says, except these two, which tRPC refuses (405).
      fast = contentType === undefined || !FORM_OR_OCTETS.test(contentType);
      if (q !== -1) {
        const input = queryInput(url, q + 1);
        if (input === null) fast = false;
        else queryText = input;
      }
    } else if (fast) {
      fast = q === -1 && isJson(headers['content-type']);
    }
    const accept = headers.accept;
    if (accept !== undefined && (accept.includes('text/event-stream') || accept.includes('application/jsonl'))) fast = false;
    const procedure = procedures[path];
    // Not loaded yet (lazy router), or a subscription (an event stream): tRPC's handler knows what to do.
    if (!fast || procedure?._def.type === 'subscription' || (procedure === undefined && Object.keys(lazy).length > 0)) {
      fallback(req, res);
      return;
    }
    const body = method === 'POST' ? new RequestBody(req, maxBodySize) : undefined;
    const call = new SingleCall(path, procedure ?? null, queryText, body, deserialize);
    void serve(req, res, call);
  };
}
