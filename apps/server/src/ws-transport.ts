/**
 * The WebSocket transport: every query, mutation and subscription of a client on one socket at /trpc,
 * served by tRPC's own connection handler (getWSConnectionHandler) with one listener of ours in front of
 * its 'message' listener. Wrap, don't fork: tRPC still parses, routes and answers every message. Ours adds
 * what tRPC's adapter lacks (field-notes, "Transports and faults"):
 *
 * - auth before anything: the first message must be tRPC's connectionParams with a valid token (never in
 *   the URL), checked here before tRPC sees a byte; then sockets per token are limited;
 * - per call, a context of its own (`ctx.callMeta`, handed to tRPC through our patch's `callContext` hook:
 *   patches/README.md, @trpc/server row 3): the call's id and remaining budget (`params.callId`,
 *   `params.deadlineMs`: the only protocol extension), a signal that fires when the socket goes (tRPC aborts
 *   only subscriptions then), and the socket's in-flight slots;
 * - frames are checked first (JSON, ids, methods, call ids): bad ones get a typed error frame, and a
 *   client that keeps sending garbage is closed; none reach tRPC or disturb other sockets;
 * - a slow reader: when more than `maxBufferedBytes` wait to be written, the socket is closed (its calls,
 *   streams included, stop) instead of buffering without bound.
 *
 * Cancel one call: the client sends `calls.cancel` (an ordinary mutation) naming its call id.
 */
import { setMaxListeners } from 'node:events';
import type { IncomingMessage, Server } from 'node:http';
import type { Http2SecureServer } from 'node:http2';
import type { Duplex } from 'node:stream';
import { appRouter, createCredentials, createInnerContext, ShutdownError, unauthorizedMessage, type CallMeta, type CallSlots, type Context, type Runtime } from '@asyncscope/api';
import { CALL_ID_RULE, isCallId } from '@asyncscope/contract';
import { TRPCError } from '@trpc/server';
import { getWSConnectionHandler } from '@trpc/server/adapters/ws';
import type { Logger } from 'pino';
import { WebSocketServer, type RawData, type WebSocket } from 'ws';
import { trpcErrorResponses } from './trpc-error-response';

export interface WebSocketTransportOptions {
  runtime: Runtime;
  /** Every accepted token (API_TOKEN first, then EXTRA_API_TOKENS): each its own caller. */
  apiTokens: readonly string[];
  /** Largest message accepted (MAX_BODY_BYTES); a bigger one closes the socket with 1009. */
  maxPayload: number;
  /** Queries and mutations one socket may have in flight, and streams it may have open (each); beyond, TOO_MANY_REQUESTS for that one. */
  maxCallsPerSocket: number;
  /** Sockets one token may have open; beyond, the new one is closed with 4429. */
  maxSocketsPerToken: number;
  /** The connectionParams message must arrive this soon after the socket opens (4408 beyond). */
  authTimeoutMs?: number | undefined;
  /** Bytes waiting to be written to a socket before it counts as a slow reader and is closed (4413). */
  maxBufferedBytes?: number | undefined;
  log: Logger;
  isDatabaseReady: () => boolean;
}

export interface WebSocketTransport {
  /** Open (authenticated or not) sockets. */
  sockets: () => number;
  /** Queries and mutations in flight on the sockets. */
  callsInFlight: () => number;
  /**
   * Graceful shutdown, first step: no new sockets, and a new call on an open one is refused with a
   * retryable SERVICE_UNAVAILABLE; calls in flight go on. Resolves when none is left.
   */
  drain: () => Promise<void>;
  /** Tells clients to reconnect elsewhere and closes every socket (1001): what still runs on them stops. */
  close: () => void;
}

/** Close codes, each with a reason a person can read (README "WebSocket transport"). */
export const WS_CLOSE = {
  goingAway: 1001,
  badData: 1007,
  policy: 1008,
  tooBig: 1009,
  unauthorized: 4401,
  authTimeout: 4408,
  slowReader: 4413,
  tooManySockets: 4429,
} as const;

const METHODS = new Set(['query', 'mutation', 'subscription', 'subscription.stop']);
const MAX_ID_LENGTH = 128;
/** Bad frames in a row before the socket is closed: a confused client is told why, a flood is cut off. */
const MAX_STRIKES = 20;
const MAX_DEADLINE_MS = 3_600_000;
/** `{"id":<id>,` and an optional `"jsonrpc":"2.0",` at the start of a frame tRPC writes. */
const STREAM_FRAME_HEAD = /^\{"id":("(?:[^"\\]|\\.){0,300}"|-?\d{1,20}),(?:"jsonrpc":"2\.0",)?/;
/** Sockets from one address still to present a token: each holds a timer and a buffer until it does. */
const MAX_PENDING_AUTH_PER_ADDRESS = 32;

type Json = Record<string, unknown>;
type TrpcListener = (data: RawData, isBinary: boolean) => void;

/**
 * The CallMeta of a socket's messages that tRPC has been handed and has not started yet, by message id, in
 * order should a client reuse an id; tRPC's handling takes each (callContext) within microtasks.
 */
class PendingMeta {
  readonly #byId = new Map<string | number, CallMeta[]>();
  #size = 0;

  get size(): number {
    return this.#size;
  }

  put(id: string | number, meta: CallMeta): void {
    const queue = this.#byId.get(id);
    if (queue) queue.push(meta);
    else this.#byId.set(id, [meta]);
    this.#size++;
  }

  take(id: string | number): CallMeta | undefined {
    const queue = this.#byId.get(id);
    const meta = queue?.shift();
    if (meta === undefined) return undefined;
    this.#size--;
    if (queue?.length === 0) this.#byId.delete(id);
    return meta;
  }
}

function refuseUpgrade(socket: Duplex, status: number, message: string): void {
  const body = JSON.stringify({ error: { message } });
  socket.end(`HTTP/1.1 ${status} ${status === 404 ? 'Not Found' : status === 401 ? 'Unauthorized' : status === 429 ? 'Too Many Requests' : status === 503 ? 'Service Unavailable' : 'Bad Request'}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`);
}

/**
 * Queries and mutations a socket has in flight, against its limit (openCallScope acquires, the call's
 * dispose releases), counted for draining as well. Streams are limited separately (the socket's stream
 * map): a graceful shutdown waits for calls, while streams end when the socket closes and resume on the
 * client's next server.
 */
class SocketSlots implements CallSlots {
  inFlight = 0;
  constructor(private readonly limit: number, private readonly calls: CallCounter) {}
  tryAcquire(): boolean {
    if (this.inFlight >= this.limit) return false;
    this.inFlight++;
    this.calls.add(1);
    return true;
  }
  release(): void {
    this.inFlight--;
    this.calls.add(-1);
  }
}

/** Queries and mutations in flight on every socket, and who waits for them to reach zero. */
class CallCounter {
  n = 0;
  #waiters: (() => void)[] = [];
  add(delta: number): void {
    this.n += delta;
    // On the next turn: a call's slot is released in its scope's `finally`, a few microtasks before tRPC
    // writes its answer; closing the socket at once would drop that answer.
    if (this.n === 0 && this.#waiters.length > 0) {
      const waiters = this.#waiters.splice(0);
      setImmediate(() => { for (const resolve of waiters) resolve(); });
    }
  }
  drained(): Promise<void> {
    return this.n === 0 ? Promise.resolve() : new Promise((resolve) => { this.#waiters.push(resolve); });
  }
}

export function attachWebSocketTransport(server: Server | Http2SecureServer, options: WebSocketTransportOptions): WebSocketTransport {
  const { log } = options;
  const credentials = createCredentials(options.apiTokens);
  // Our own refusals, shaped by the router's errorFormatter like every other error.
  const errors = trpcErrorResponses(appRouter);
  const maxCalls = options.maxCallsPerSocket;
  const maxSockets = options.maxSocketsPerToken;
  const authTimeoutMs = options.authTimeoutMs ?? 10_000;
  const maxBuffered = options.maxBufferedBytes ?? 4 * 1024 * 1024;
  const owners = new WeakMap<WebSocket, string>();
  /** Per socket, the CallMeta of each checked message tRPC has not started yet. */
  const pendingMeta = new WeakMap<WebSocket, PendingMeta>();
  const socketsOf = new Map<string, number>();
  /** Open sockets, each with its way to close it and stop its calls. */
  const open = new Map<WebSocket, (code: number, reason: string, cause?: unknown) => void>();
  let closing = false;
  const calls = new CallCounter();
  /** Sockets per remote address that have not presented a token yet. */
  const pendingAuth = new Map<string, number>();
  const countPending = (address: string, delta: number): void => {
    const n = (pendingAuth.get(address) ?? 0) + delta;
    if (n <= 0) pendingAuth.delete(address);
    else pendingAuth.set(address, n);
  };

  const wss = new WebSocketServer({ noServer: true, maxPayload: options.maxPayload, clientTracking: false, perMessageDeflate: false });
  /**
   * Our @trpc/server patch (row 3) asks for each call's context here, after tRPC parsed the message and made
   * the connection's context: the CallMeta our check gave the message (taken, so none is kept).
   */
  const callContext = (ctx: Context, msg: { id?: unknown }, client: WebSocket): Context => {
    const callMeta = pendingMeta.get(client)?.take(msg.id as string | number);
    return callMeta ? { ...ctx, callMeta } : ctx;
  };
  const patchedOptions = { callContext }; // tRPC's option types do not know the hook
  const handler = getWSConnectionHandler({
    ...patchedOptions,
    router: appRouter,
    wss,
    // tRPC's heartbeat: a peer that vanished without a FIN (no PONG) is dropped, and its calls stop.
    keepAlive: { enabled: true, pingMs: 30_000, pongWaitMs: 10_000 },
    // Runs once the connectionParams message passed our check (so the owner is known).
    createContext: ({ req, res }) =>
      createInnerContext({
        runtime: options.runtime,
        authorized: owners.has(res as WebSocket),
        owner: owners.get(res as WebSocket),
        // Fair admission takes turns between remote addresses, as over HTTP.
        clientKey: req.socket.remoteAddress,
        log,
        isDatabaseReady: options.isDatabaseReady,
      }),
    onError: ({ error, path }) => {
      if (error.code === 'INTERNAL_SERVER_ERROR') log.error({ path, err: error.cause ?? error, transport: 'ws' }, 'procedure failed');
      else log.debug({ path, code: error.code, transport: 'ws' }, 'procedure refused');
    },
  });

  const onUpgrade = (req: IncomingMessage, socket: Duplex, head: Buffer): void => {
    const url = req.url ?? '/';
    const q = url.indexOf('?');
    const path = q === -1 ? url : url.slice(0, q);
    if (path !== '/trpc' && path !== '/trpc/') {
      refuseUpgrade(socket, 404, `No WebSocket at ${path}; the API's is /trpc?connectionParams=1.`);
      return;
    }
    // Credentials in a URL end up in logs and histories: the token goes in the first message.
    if (q === -1 || url.slice(q + 1) !== 'connectionParams=1') {
      refuseUpgrade(socket, 400, 'Connect to /trpc?connectionParams=1 and send the token in the first message: {"method":"connectionParams","data":{"token":"…"}}. Nothing else goes in the URL.');
      return;
    }
    if (closing) {
      refuseUpgrade(socket, 503, 'The server is shutting down.');
      return;
    }
    // Strangers cost a timer and a buffer each until they authenticate (or time out): a bounded number per address.
    if ((pendingAuth.get(req.socket.remoteAddress ?? '') ?? 0) >= MAX_PENDING_AUTH_PER_ADDRESS) {
      refuseUpgrade(socket, 429, `Too many WebSockets from this address waiting to authenticate (${MAX_PENDING_AUTH_PER_ADDRESS}).`);
      return;
    }
    socket.on('error', () => undefined); // a reset before the handshake ends must not crash the process
    wss.handleUpgrade(req, socket, head, (ws) => { accept(ws, req); });
  };
  server.on('upgrade', onUpgrade);

  function accept(ws: WebSocket, req: IncomingMessage): void {
    const carrier = new AbortController();
    // Each call and each stream in flight listens to it (up to maxCalls of each): not a leak.
    setMaxListeners(2 * maxCalls + 16, carrier.signal);
    const slots = new SocketSlots(maxCalls, calls);
    /** Subscriptions by message id: subscription.stop must stop the stream's scope too (its SQL included). */
    const streams = new Map<string | number, { controller: AbortController; detach: () => void }>();
    let owner: string | undefined;
    let strikes = 0;
    let terminateTimer: NodeJS.Timeout | undefined;

    // The calls stop as soon as we decide to close, not when the peer acknowledges (a slow reader may never).
    const shut = (code: number, reason: string, cause: unknown = new Error(reason)): void => {
      if (!carrier.signal.aborted) carrier.abort(cause);
      if (ws.readyState === ws.OPEN || ws.readyState === ws.CONNECTING) ws.close(code, reason);
      terminateTimer ??= setTimeout(() => { ws.terminate(); }, 1000).unref();
    };
    open.set(ws, shut);

    const metas = new PendingMeta();
    pendingMeta.set(ws, metas);
    const stopped = (): boolean => carrier.signal.aborted;
    const rawSend = ws.send.bind(ws) as (data: unknown, ...rest: unknown[]) => void;
    // tRPC answers through ws.send: check the backlog after each frame (a slow reader), and note the end of
    // a stream (its 'stopped' or error frame) to drop its controller.
    const send = (data: unknown, ...rest: unknown[]): void => {
      if (carrier.signal.aborted) return;
      rawSend(data, ...rest);
      if (!replying && streams.size > 0 && typeof data === 'string') forgetEndedStream(data);
      if (ws.bufferedAmount > maxBuffered) {
        log.warn({ bufferedAmount: ws.bufferedAmount, transport: 'ws' }, 'closing a WebSocket whose client reads too slowly');
        shut(WS_CLOSE.slowReader, 'client reads too slowly');
      }
    };
    // Made as a local, then stored: a function literal assigned straight to a property is pretenured by V8
    // (eslint.config.js), and this one holds the socket.
    (ws as unknown as { send: typeof send }).send = send;
    /**
     * tRPC ends a stream with `{"id":…,"result":{"type":"stopped"}}` or `{"id":…,"error":…}` (its respond()
     * writes the keys in that order, jsonrpc only when the client sent one). Read the top-level keys by
     * position, never by searching the frame: a page of users or a call id may contain any text.
     */
    const forgetEndedStream = (frame: string): void => {
      const head = STREAM_FRAME_HEAD.exec(frame);
      if (!head?.[1]) return;
      let id: unknown;
      try {
        id = JSON.parse(head[1]);
      } catch {
        return;
      }
      if ((typeof id !== 'string' && typeof id !== 'number') || !streams.has(id)) return;
      const rest = frame.slice(head[0].length);
      if (rest.startsWith('"error":') || rest.startsWith('"result":{"type":"stopped"')) {
        streams.get(id)?.detach();
        streams.delete(id);
      }
    };
    // Our own refusals end no stream (a refused duplicate id must not forget the running one).
    let replying = false;
    const reply = (id: string | number | null, error: TRPCError): void => {
      replying = true;
      try {
        ws.send(errors.frame(id, error));
      } finally {
        replying = false;
      }
    };
    const strike = (id: string | number | null, error: TRPCError): void => {
      reply(id, error);
      if (++strikes >= MAX_STRIKES) shut(WS_CLOSE.policy, `too many malformed messages (${MAX_STRIKES})`);
    };

    ws.on('error', (error) => {
      // ws closes the socket itself (1009 for a message over maxPayload, 1002 for a bad frame); log only.
      log.debug({ err: error, transport: 'ws' }, 'WebSocket error');
    });
    handler(ws, req);
    // tRPC registered its listener synchronously (the fence test checks): take it out, put ours in front.
    const trpcListeners = ws.listeners('message') as TrpcListener[];
    ws.removeAllListeners('message');

    const authTimer = setTimeout(() => { shut(WS_CLOSE.authTimeout, 'no connectionParams message with a token in time'); }, authTimeoutMs).unref();
    const openedAt = performance.now();
    const remoteAddress = req.socket.remoteAddress; // gone once the socket is destroyed
    let pending = true;
    countPending(remoteAddress ?? '', 1);
    const authDone = (): void => {
      if (!pending) return;
      pending = false;
      countPending(remoteAddress ?? '', -1);
    };
    ws.once('close', (code: number, reason: Buffer) => {
      // The socket's access line: how long it lived and how it ended (never its token).
      log.info({ transport: 'ws', remoteAddress, code, reason: reason.toString(), ms: Math.round(performance.now() - openedAt), authenticated: owner !== undefined }, 'websocket closed');
      clearTimeout(authTimer);
      authDone();
      clearTimeout(terminateTimer);
      if (!carrier.signal.aborted) carrier.abort(new Error('the WebSocket closed'));
      for (const stream of streams.values()) stream.controller.abort(carrier.signal.reason);
      streams.clear();
      open.delete(ws);
      if (owner !== undefined) {
        const n = (socketsOf.get(owner) ?? 1) - 1;
        if (n <= 0) socketsOf.delete(owner);
        else socketsOf.set(owner, n);
      }
    });

    const pass = (data: RawData, isBinary: boolean): void => {
      for (const listener of trpcListeners) listener.call(ws, data, isBinary);
    };

    const authenticate = (data: RawData, isBinary: boolean): void => {
      clearTimeout(authTimer);
      authDone();
      let message: unknown;
      try {
        message = isBinary ? undefined : JSON.parse(rawText(data));
      } catch {
        message = undefined;
      }
      const m = message as Json | null | undefined;
      const params = m?.method === 'connectionParams' ? (m.data as Json | null | undefined) : undefined;
      const who = typeof params === 'object' && params !== null ? credentials.ownerOfToken(params.token) : undefined;
      if (who === undefined) {
        const hint = m?.method === 'connectionParams' ? 'wrong or missing token' : 'the first message must be {"method":"connectionParams","data":{"token":"…"}}';
        reply(null, new TRPCError({ code: 'UNAUTHORIZED', message: unauthorizedMessage(hint) }));
        shut(WS_CLOSE.unauthorized, 'unauthorized');
        return;
      }
      const count = socketsOf.get(who) ?? 0;
      if (count >= maxSockets) {
        reply(null, new TRPCError({ code: 'TOO_MANY_REQUESTS', message: `This token has ${maxSockets} WebSockets open, as many as it may.` }));
        shut(WS_CLOSE.tooManySockets, 'too many sockets for this token');
        return;
      }
      owner = who;
      socketsOf.set(who, count + 1);
      owners.set(ws, who);
      pass(data, false);
    };

    /** Checks one message; returns the CallMeta to run it with, or undefined after answering an error. */
    const check = (raw: unknown): { message: Json; meta: CallMeta | undefined } | undefined => {
      if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
        strike(null, new TRPCError({ code: 'BAD_REQUEST', message: 'A message must be a JSON object {id, method, params}.' }));
        return undefined;
      }
      const message = raw as Json;
      const { id, method } = message;
      if (method === 'connectionParams') {
        strike(null, new TRPCError({ code: 'BAD_REQUEST', message: 'This socket is already authenticated: connectionParams comes once, first.' }));
        return undefined;
      }
      const validId = (typeof id === 'number' && Number.isSafeInteger(id)) || (typeof id === 'string' && id.length > 0 && id.length <= MAX_ID_LENGTH);
      if (!validId) {
        strike(null, new TRPCError({ code: 'BAD_REQUEST', message: `A message id must be an integer or a string of 1 to ${MAX_ID_LENGTH} characters.` }));
        return undefined;
      }
      if (typeof method !== 'string' || !METHODS.has(method)) {
        const named = typeof method === 'string' ? JSON.stringify(method.slice(0, 64)) : 'none';
        strike(id, new TRPCError({ code: 'BAD_REQUEST', message: `Unknown method ${named}: one of query, mutation, subscription, subscription.stop.` }));
        return undefined;
      }
      // What tRPC's own parser (parseTRPCMessage) refuses is refused here: a message that passes this check
      // reaches tRPC's handling, which takes the CallMeta kept for it (callContext).
      if (message.jsonrpc !== undefined && message.jsonrpc !== '2.0') {
        strike(id, new TRPCError({ code: 'BAD_REQUEST', message: 'jsonrpc must be "2.0", or left out.' }));
        return undefined;
      }
      if (method === 'subscription.stop') {
        streams.get(id)?.controller.abort(new Error('subscription.stop'));
        streams.get(id)?.detach();
        streams.delete(id);
        return { message, meta: undefined };
      }
      const params = message.params as Json | null | undefined;
      if (typeof params !== 'object' || params === null || typeof params.path !== 'string') {
        strike(id, new TRPCError({ code: 'BAD_REQUEST', message: 'A call needs params: {path, input}.' }));
        return undefined;
      }
      if (params.lastEventId !== undefined && typeof params.lastEventId !== 'string') {
        strike(id, new TRPCError({ code: 'BAD_REQUEST', message: 'params.lastEventId must be a string (the id of the last event received).' }));
        return undefined;
      }
      const { callId, deadlineMs } = params;
      if (callId !== undefined && !isCallId(callId)) {
        strike(id, new TRPCError({ code: 'BAD_REQUEST', message: `params.callId must be ${CALL_ID_RULE}.` }));
        return undefined;
      }
      if (deadlineMs !== undefined && !(typeof deadlineMs === 'number' && Number.isInteger(deadlineMs) && deadlineMs >= 0 && deadlineMs <= MAX_DEADLINE_MS)) {
        strike(id, new TRPCError({ code: 'BAD_REQUEST', message: `params.deadlineMs must be a whole number of ms, 0 to ${MAX_DEADLINE_MS}.` }));
        return undefined;
      }
      // tRPC takes each message's CallMeta a few microtasks after it is passed on; only one huge batch can
      // have more waiting, and its calls beyond the socket's limit would be refused when they start anyway.
      if (metas.size >= 2 * maxCalls) {
        reply(id, new TRPCError({ code: 'TOO_MANY_REQUESTS', message: `This socket has ${metas.size} calls waiting to start; send at most ${maxCalls} at once.` }));
        return undefined;
      }
      let signal = carrier.signal;
      if (method === 'subscription') {
        if (streams.size >= maxCalls) {
          reply(id, new TRPCError({ code: 'TOO_MANY_REQUESTS', message: `This socket has ${maxCalls} streams open, as many as it may; stop one first.` }));
          return undefined;
        }
        if (streams.has(id)) {
          strike(id, new TRPCError({ code: 'BAD_REQUEST', message: `A subscription with id ${JSON.stringify(id)} is already running on this socket.` }));
          return undefined;
        }
        // Its own signal, so that subscription.stop stops the stream's work at once, not at its next page.
        const controller = new AbortController();
        const onCarrier = (): void => { controller.abort(carrier.signal.reason); };
        carrier.signal.addEventListener('abort', onCarrier, { once: true });
        streams.set(id, { controller, detach: () => { carrier.signal.removeEventListener('abort', onCarrier); } });
        signal = controller.signal;
      }
      // calls.cancel still goes through: a caller must be able to stop what it started, draining or not.
      if (closing && method !== 'subscription' && params.path !== 'calls.cancel') {
        // Draining: what runs may finish, nothing new starts here (the client retries on the next server).
        reply(id, new TRPCError({ code: 'SERVICE_UNAVAILABLE', message: 'The server is shutting down; the call was not started. Retry.' }));
        return undefined;
      }
      return { message, meta: { callId, clientBudgetMs: deadlineMs === undefined ? undefined : Math.max(1, deadlineMs), signal, slots: method === 'subscription' ? undefined : slots } };
    };

    ws.on('message', (data: RawData, isBinary: boolean) => {
      if (carrier.signal.aborted) return;
      if (owner === undefined) {
        authenticate(data, isBinary);
        return;
      }
      if (isBinary) {
        strike(null, new TRPCError({ code: 'UNPROCESSABLE_CONTENT', message: 'Binary frames are not accepted: send JSON text frames.' }));
        return;
      }
      const text = rawText(data);
      if (text === 'PING' || text === 'PONG') {
        pass(data, false);
        return;
      }
      let parsed: unknown;
      try {
        parsed = JSON.parse(text);
      } catch (error) {
        strike(null, new TRPCError({ code: 'PARSE_ERROR', message: `The message is not valid JSON: ${(error as Error).message}.` }));
        return;
      }
      const list = Array.isArray(parsed) ? parsed : [parsed];
      if (list.length === 0) {
        strike(null, new TRPCError({ code: 'BAD_REQUEST', message: 'An empty batch.' }));
        return;
      }
      const single = list.length === 1 && !Array.isArray(parsed);
      for (const raw of list) {
        if (stopped()) return; // a strike closed it
        const checked = check(raw);
        if (!checked) continue;
        strikes = 0;
        // One message at a time, each with its own CallMeta, which tRPC's handling of it asks for by id
        // (callContext, above) once its connection's context is ready.
        const frame = single ? data : Buffer.from(JSON.stringify(checked.message));
        if (checked.meta) metas.put(checked.message.id as string | number, checked.meta);
        pass(frame, false);
      }
    });
  }

  return {
    sockets: () => open.size,
    callsInFlight: () => calls.n,
    drain: () => {
      closing = true;
      return calls.drained();
    },
    close: () => {
      closing = true;
      server.off('upgrade', onUpgrade);
      const reconnect = JSON.stringify({ id: null, method: 'reconnect' });
      for (const [ws, shut] of open) {
        // tRPC's own notification: its client reconnects (with backoff, to this server's successor).
        if (ws.readyState === ws.OPEN) ws.send(reconnect);
        // What still runs on it stops (its signal fires with ShutdownError); the client sees the socket close
        // (ConnectionLostError, retryable) and reconnects, streams resuming from their last id.
        shut(WS_CLOSE.goingAway, 'server shutting down', new ShutdownError());
      }
    },
  };
}

function rawText(data: RawData): string {
  if (Buffer.isBuffer(data)) return data.toString('utf8');
  if (Array.isArray(data)) return Buffer.concat(data).toString('utf8');
  return Buffer.from(data).toString('utf8');
}
