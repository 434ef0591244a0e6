/**
 * The WebSocket transport of the client: every call and subscription on one socket (tRPC's createWSClient
 * and wsLink), with what it lacks added around it:
 * - each tick's calls written at the end of that tick, not a zero timer later (ws-flush.ts);
 * - auth in tRPC's connectionParams message (never in the URL);
 * - each call's id and remaining budget in two extra `params` fields, `callId` and `deadlineMs`, added by
 *   the encoder when the message is written, so a resend after a reconnect carries what is left;
 * - aborts reach the server by `calls.cancel` (cancelByIdLink), since wsLink never tells it;
 * - a call in flight when the socket drops fails at once with a typed, retryable error (ConnectionLostError).
 */
import type { AppRouter } from '@asyncscope/api';
import { createWSClient, jsonEncoder, TRPCClientError, wsLink, type TRPCLink } from '@trpc/client';
import { observable } from '@trpc/server/observable';
import { budgetMs } from './cancel-by-id';
import type { CallContext } from './call-context';
import { sendAtEndOfTick } from './ws-flush';

/** The connection of a WebSocket client, as a dashboard shows it. */
export interface ConnectionState {
  state: 'idle' | 'connecting' | 'open';
  /** Why the last connection failed or closed, if it did. */
  error: Error | null;
  /** The close code and reason the server gave last (e.g. 4401 unauthorized, 1001 server shutting down). */
  lastClose?: { code: number; reason: string } | undefined;
}

/**
 * A call was in flight when the socket closed: it may or may not have run. Retryable (isRetryableCallError)
 * unless the close code says it would fail again (FINAL_CLOSE_CODES).
 */
export class ConnectionLostError extends Error {
  override readonly name = 'ConnectionLostError';
  constructor(readonly closeCode?: number, options?: { cause?: unknown }) {
    super(`The WebSocket closed${closeCode === undefined ? '' : ` (code ${closeCode})`} while the call was in flight; it may or may not have run. Retry it (with the same idempotencyKey for a write).`, options);
  }
}

/** Close codes after which the same call would fail again: auth (4401, 4408), bad data or policy (1007, 1008), too big (1009). */
export const FINAL_CLOSE_CODES: ReadonlySet<number> = new Set([4401, 4408, 1007, 1008, 1009]);

const isCloseEvent = (value: object): value is { code: number } =>
  typeof (value as { code?: unknown }).code === 'number' && ((value as { type?: unknown }).type === 'close' || typeof (value as { wasClean?: unknown }).wasClean === 'boolean');

/** The errors and events an error was caused by, outermost first (bounded: a cause chain may loop). */
function causes(error: unknown): object[] {
  const chain: object[] = [];
  for (let e = error; typeof e === 'object' && e !== null && chain.length < 10 && !chain.includes(e); e = (e as { cause?: unknown }).cause) chain.push(e);
  return chain;
}

/** The close code of the socket closure that caused `error` (a ConnectionLostError, or a CloseEvent in its causes). */
export function closeCodeOf(error: unknown): number | undefined {
  for (const e of causes(error)) {
    if (e instanceof ConnectionLostError && e.closeCode !== undefined) return e.closeCode;
    if (isCloseEvent(e)) return e.code;
  }
  return undefined;
}

/**
 * Whether `error` came from the socket going away (tRPC's TRPCWebSocketClosedError, or the socket's close
 * or error event, which wsClient passes as the cause of the calls it fails) rather than from an answer.
 */
function isSocketClosure(error: unknown): boolean {
  return causes(error).some(
    (e) => (e as { name?: unknown }).name === 'TRPCWebSocketClosedError' || isCloseEvent(e) || ((e as { type?: unknown }).type === 'error' && 'target' in e && !(e instanceof Error)),
  );
}

/** Anything with the browser WebSocket's shape: the global one, or the `ws` package's on Node 20. */
export type WebSocketConstructor = new (url: string, protocols?: string | string[]) => unknown;

export interface WebSocketTransportOptions {
  /** http(s)://host/trpc: the socket goes to ws(s)://host/trpc. */
  url: string;
  token: () => string;
  WebSocket?: WebSocketConstructor | undefined;
  /** Largest frame to send (the server closes the socket, 1009, beyond its MAX_BODY_BYTES). */
  maxFrameBytes?: number | undefined;
  onConnectionState?: ((state: ConnectionState) => void) | undefined;
  /** A call message (its callId) was written to the socket. */
  onSent?: ((callId: string) => void) | undefined;
}

/** Reconnect delays: 100 ms doubling up to 5 s, each with jitter (half to all of it) so clients spread out. */
export function reconnectDelayMs(attempt: number): number {
  const ceiling = Math.min(5000, 100 * 2 ** attempt);
  return Math.round(ceiling / 2 + (Math.random() * ceiling) / 2);
}

export function webSocketUrl(httpUrl: string): string {
  const url = new URL(httpUrl);
  url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
  return url.toString().replace(/\/$/, '');
}

interface OutgoingMessage {
  id?: unknown;
  params?: Record<string, unknown>;
}

const utf8 = new TextEncoder();

/**
 * The WebSocket class with one change: wsClient sends every call queued in a tick as one JSON array frame
 * (1,000 calls of a cancel-all: one frame over the server's limit, which closes the socket). Bigger frames
 * are split into several arrays, each under `maxFrameBytes`; the server takes each message alone anyway.
 */
export function withFrameLimit(Base: WebSocketConstructor, maxFrameBytes: number): WebSocketConstructor {
  const Sending = Base as new (url: string, protocols?: string | string[]) => { send(data: unknown): void };
  const bytes = (text: string): number => (text.length * 3 <= maxFrameBytes ? text.length : utf8.encode(text).length);
  return class extends Sending {
    override send(data: unknown): void {
      if (typeof data !== 'string' || !data.startsWith('[') || bytes(data) <= maxFrameBytes) {
        super.send(data);
        return;
      }
      let chunk: string[] = [];
      let size = 2;
      for (const message of JSON.parse(data) as unknown[]) {
        const text = JSON.stringify(message);
        const n = bytes(text) + 1;
        if (chunk.length > 0 && size + n > maxFrameBytes) {
          super.send(`[${chunk.join(',')}]`);
          chunk = [];
          size = 2;
        }
        chunk.push(text);
        size += n;
      }
      if (chunk.length > 0) super.send(`[${chunk.join(',')}]`);
    }
  };
}

export interface CallMetaOfOp {
  callId?: string | undefined;
  deadlineAt?: number | undefined;
}

/**
 * tRPC's JSON encoder plus our two `params` fields for each call message whose op id is in `metaById`.
 * The budget is computed at encoding time, so a message resent after a reconnect carries what is left.
 */
export function callMetaEncoder(metaById: ReadonlyMap<number | string, CallMetaOfOp>, now: () => number = Date.now, onSent: (callId: string) => void = () => undefined) {
  const add = (m: OutgoingMessage): OutgoingMessage => {
    const meta = m.params && (typeof m.id === 'number' || typeof m.id === 'string') ? metaById.get(m.id) : undefined;
    if (!meta) return m;
    const params: Record<string, unknown> = { ...m.params };
    if (meta.callId !== undefined) {
      params.callId = meta.callId;
      // Encoded means written to the socket: from now on the server may know the id (cancel by id is safe).
      onSent(meta.callId);
    }
    if (meta.deadlineAt !== undefined) params.deadlineMs = budgetMs(meta.deadlineAt, now());
    return { ...m, params };
  };
  return {
    encode: (data: unknown): string => jsonEncoder.encode(Array.isArray(data) ? data.map((m) => add(m as OutgoingMessage)) : add(data as OutgoingMessage)) as string,
    decode: (data: string | ArrayBuffer | Uint8Array): unknown => jsonEncoder.decode(data),
  };
}

export interface WebSocketLinks {
  links: TRPCLink<AppRouter>[];
  close(): Promise<void>;
}

/** Builds the wsLink chain; `before` links (cancel by id) go in front of the one that records call meta. */
export function webSocketLinks(options: WebSocketTransportOptions, before: TRPCLink<AppRouter>[]): WebSocketLinks {
  const WebSocketImpl = options.WebSocket ?? (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket;
  if (!WebSocketImpl) throw new Error("No WebSocket here (Node 20): pass one, e.g. `import WebSocket from 'ws'` and createApiClient({ …, WebSocket }).");
  /** Per op id, what the encoder adds to the call's message. */
  const metaById = new Map<number | string, CallMetaOfOp>();
  let state: ConnectionState = { state: 'connecting', error: null };
  const publish = (next: ConnectionState): void => {
    state = next;
    options.onConnectionState?.(state);
  };

  const client = createWSClient({
    url: webSocketUrl(options.url),
    connectionParams: () => ({ token: options.token() }),
    WebSocket: withFrameLimit(WebSocketImpl, options.maxFrameBytes ?? 64 * 1024) as typeof WebSocket,
    retryDelayMs: reconnectDelayMs,
    // Detects a dead connection (no pong) instead of waiting on it forever.
    keepAlive: { enabled: true, intervalMs: 10_000, pongTimeoutMs: 5_000 },
    // wsClient fails the calls in flight before it calls onClose: their close code comes from their error's cause.
    onClose: (cause) => {
      const reason = (cause as { reason?: unknown } | undefined)?.reason;
      if (cause?.code !== undefined) state = { ...state, lastClose: { code: cause.code, reason: typeof reason === 'string' ? reason : '' } };
    },
    experimental_encoder: callMetaEncoder(metaById, Date.now, options.onSent),
  });
  // Each tick's calls leave at its end, not after a zero timer (ws-flush.ts: ≥ 1 ms per call on Node).
  sendAtEndOfTick(client);
  const stateSubscription = client.connectionState.subscribe({
    next: (s) => {
      publish({ state: s.state === 'pending' ? 'open' : s.state, error: s.error, lastClose: state.lastClose });
    },
  });

  /** Records each call's id and deadline for the encoder, and types a connection loss. */
  const metaLink: TRPCLink<AppRouter> = () =>
    ({ op, next }) =>
      observable((observer) => {
        const context = op.context as CallContext;
        metaById.set(op.id, { callId: context.callId, deadlineAt: context.deadlineAt });
        const subscription = next(op).subscribe({
          next: (value) => { observer.next(value); },
          complete: () => { observer.complete(); },
          error: (error) => {
            // Only the socket going away is a lost connection (with the code it closed with); anything else is as it came.
            if (op.type !== 'subscription' && isSocketClosure(error)) {
              const lost = new ConnectionLostError(closeCodeOf(error), { cause: error });
              observer.error(new TRPCClientError<AppRouter>(lost.message, { cause: lost }));
            } else observer.error(error);
          },
        });
        return () => {
          metaById.delete(op.id);
          subscription.unsubscribe();
        };
      });

  return {
    links: [...before, metaLink, wsLink<AppRouter>({ client })],
    close: async () => {
      stateSubscription.unsubscribe();
      const closing = client.close();
      // tRPC's close waits for a socket still connecting to open first; closing it now ends that wait.
      client.connection?.ws.close();
      await closing;
      publish({ state: 'idle', error: null, lastClose: state.lastClose });
    },
  };
}
