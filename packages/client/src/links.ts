import type { AppRouter } from '@asyncscope/api';
import { createTRPCClient, httpBatchLink, httpLink, httpSubscriptionLink, splitLink, TRPCClientError, type Operation, type TRPCClient, type TRPCLink } from '@trpc/client';
import { observable } from '@trpc/server/observable';
import { CALL_ID_MAX_LENGTH, isCallId, newCallId, type CancelOutcome } from '@asyncscope/contract';
import { budgetMs, CancelBatcher, cancelByIdLink } from './cancel-by-id';
import { ticketedEventSource } from './ticketed-event-source';
import { webSocketLinks, type ConnectionState, type WebSocketConstructor } from './ws';
import type { CallContext } from './call-context';

export type { CallContext };

/**
 * How a client reaches the server:
 * - 'http' (default): calls with a signal one request each (an abort reaches the server), the rest batched
 *   (an abort only stops the wait), subscriptions over SSE;
 * - 'http-batch': every call batched, each named in x-call-ids; an abort sends `calls.cancel` for it;
 * - 'websocket': every call and subscription on one socket; an abort sends `calls.cancel` (on that socket).
 */
export type ApiTransport = 'http' | 'http-batch' | 'websocket';

export interface ApiClientOptions {
  /** The tRPC endpoint, e.g. http://127.0.0.1:3000/trpc */
  url: string;
  /** The bearer token, or a function that reads the current one. */
  token: string | (() => string);
  /** EventSource implementation for subscriptions where there is no global one (Node 20: the `eventsource` package). */
  EventSource?: Parameters<typeof httpSubscriptionLink>[0]['EventSource'];
  fetch?: typeof globalThis.fetch;
  transport?: ApiTransport;
  /** WebSocket implementation where there is no global one (Node 20: `import WebSocket from 'ws'`). */
  WebSocket?: WebSocketConstructor;
  /** Largest WebSocket frame the client sends (default 64 KB; keep it under the server's MAX_BODY_BYTES). */
  maxFrameBytes?: number;
  /** The socket's state ('websocket' only): connecting, open, idle (closed), and why it last failed. */
  onConnectionState?: (state: ConnectionState) => void;
  /** A `calls.cancel` that failed (the call itself has already failed with AbortError for its caller). */
  onCancelError?: (error: unknown, callIds: string[]) => void;
  /**
   * What the server answered, per call, to a `calls.cancel` the client sent for its aborted calls
   * (cancelled, already-settled, unknown, instance-gone), for a caller that shows it. Must not throw.
   */
  onCancelOutcome?: (outcomes: CancelOutcome[]) => void;
}

export type ApiClient = TRPCClient<AppRouter>;

export function transportOf(op: Pick<Operation, 'context' | 'signal'>): 'single' | 'batch' {
  const context = op.context as CallContext;
  return context.transport ?? (op.signal ? 'single' : 'batch');
}

/**
 * In a batch, tRPC aborts the shared HTTP request only once every call in it is aborted; until then an
 * aborted call would wait for the batch and even succeed. This link makes the caller stop waiting at once
 * (the server keeps working — that is what batching costs, and what the dashboard shows).
 */
export function stopWaitingOnAbortLink(): TRPCLink<AppRouter> {
  return () =>
    ({ op, next }) =>
      observable((observer) => {
        const subscription = next(op).subscribe(observer);
        const onAbort = (): void => {
          observer.error(TRPCClientError.from(new DOMException('The call was aborted; its batch goes on.', 'AbortError')));
          subscription.unsubscribe();
        };
        if (op.signal?.aborted) onAbort();
        else op.signal?.addEventListener('abort', onAbort, { once: true });
        return () => {
          op.signal?.removeEventListener('abort', onAbort);
          subscription.unsubscribe();
        };
      });
}

/** How long asking for a stream ticket may take before the (re)connect fails and is retried. */
const TICKET_TIMEOUT_MS = 10_000;

/**
 * A single-use ticket for one event stream (auth.ticket), asked for with the bearer token. An EventSource
 * cannot send headers, and the token itself must never travel in a URL (logs, proxies, history): the
 * ticket does, spent on arrival and expiring within seconds.
 */
export async function fetchStreamTicket(url: string, token: string, options: { fetch?: typeof globalThis.fetch; signal?: AbortSignal } = {}): Promise<string> {
  const doFetch = options.fetch ?? globalThis.fetch;
  const timeout = AbortSignal.timeout(TICKET_TIMEOUT_MS);
  const res = await doFetch(`${url}/auth.ticket`, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    signal: options.signal ? AbortSignal.any([options.signal, timeout]) : timeout,
  });
  const body = (await res.json()) as { result?: { data?: { ticket?: unknown } }; error?: unknown };
  const ticket = body.result?.data?.ticket;
  if (res.ok && typeof ticket === 'string') return ticket;
  // The server's error, as tRPC clients see errors (code, message, httpStatus).
  throw body.error ? TRPCClientError.from(body as Parameters<typeof TRPCClientError.from>[0]) : new TRPCClientError(`Could not get a stream ticket (HTTP ${res.status}).`);
}

/**
 * The one client configuration shared by the dashboard and programs: subscriptions over SSE, calls that
 * can be cancelled over `httpLink` (one request each, so an abort reaches the server), the rest batched.
 */
/**
 * A batch carries one budget (x-deadline-ms) for all its calls: the longest one left, when every call has a
 * deadline. Shorter ones are each stopped at theirs by the client (cancelByIdLink's watch, calls.cancel).
 */
function batchDeadline(opList: readonly Pick<Operation, 'context'>[]): Record<string, string> {
  let latest = -Infinity;
  for (const op of opList) {
    const at = (op.context as CallContext).deadlineAt;
    if (at === undefined) return {};
    latest = Math.max(latest, at);
  }
  return { 'x-deadline-ms': String(budgetMs(latest)) };
}

/**
 * The x-call-ids of a batch being dispatched; marks its calls sent (cancel by id is safe from now on).
 * tRPC 11.22 still sends a call aborted before its batch left (its dataLoader never skips one): such a
 * call goes under a throwaway id, since its own may already be reused by a new call in the same batch,
 * and (`cancels`, http-batch) is cancelled by that id when the batch really leaves.
 */
function batchCallIds(opList: readonly Pick<Operation, 'context' | 'signal'>[], cancels: CancelBatcher | undefined): string {
  const allDropped = opList.every((op) => op.signal?.aborted);
  return opList
    .map((op) => {
      const callId = (op.context as CallContext).callId ?? '';
      if (op.signal?.aborted) {
        const throwaway = newCallId('dropped');
        // A batch of dropped calls only is never sent (its fetch is aborted): nothing to cancel.
        if (!allDropped) cancels?.add(throwaway);
        return throwaway;
      }
      if (callId) cancels?.markSent(callId);
      return callId;
    })
    .join(',');
}

/**
 * A call on a closed client (closeApiClient): in flight when it closed, or made after. Not retryable on
 * that client; `data.code` is CLIENT_CLOSED_REQUEST, the cause a ClientClosedError.
 */
export class ClientClosedError extends Error {
  override readonly name = 'ClientClosedError';
  constructor() {
    super('The client was closed (closeApiClient); make a new one to call again.');
  }
}

function clientClosedError(): TRPCClientError<AppRouter> {
  const cause = new ClientClosedError();
  return TRPCClientError.from({ error: { code: -32099, message: cause.message, data: { code: 'CLIENT_CLOSED_REQUEST', httpStatus: 499 } } }, { cause });
}

/** A context.callId the server would refuse (and that would shift x-call-ids, or fail a whole calls.cancel). */
function invalidCallIdError(callId: unknown): TRPCClientError<AppRouter> {
  const message = `Invalid context.callId ${JSON.stringify(String(callId)).slice(0, 80)}: a call id is 1 to ${CALL_ID_MAX_LENGTH} letters, digits or _ . : ~ # -`;
  return TRPCClientError.from({ error: { code: -32600, message, data: { code: 'BAD_REQUEST', httpStatus: 400 } } });
}

/** How long past deadlineAt a sent WebSocket call waits for the server's TIMEOUT before the client's watch ends it. */
const WS_SENT_DEADLINE_GRACE_MS = 1000;

const closers = new WeakMap<object, () => Promise<void>>();

/**
 * Closes the client for good: calls in flight fail at once with a ClientClosedError (no calls.cancel:
 * over the WebSocket, its closing stops them on the server), the socket closes, and any later call fails
 * the same way without opening anything. Over HTTP, requests in flight are aborted.
 */
export async function closeApiClient(client: ApiClient): Promise<void> {
  await closers.get(client)?.();
}

/** Whether a client was closed, and what to do to each call in flight when it is (a Set: no listener limit). */
export class ClientLife {
  closed = false;
  readonly calls = new Set<() => void>();
  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const onClose of [...this.calls]) onClose();
    this.calls.clear();
  }
}

/**
 * The calls following each caller's signal: ONE 'abort' listener per signal, however many calls share it. A
 * listener per call would be removed with the call too, but Node warns (MaxListenersExceededWarning) once an
 * AbortSignal has more than 10: a program running 11 calls under one signal (a run, a shutdown) got a
 * "possible memory leak" warning for a pattern that leaks nothing.
 */
const followers = new WeakMap<AbortSignal, { calls: Set<() => void>; fanOut: () => void }>();

function followAbort(signal: AbortSignal, onAbort: () => void): void {
  let entry = followers.get(signal);
  if (!entry) {
    const calls = new Set<() => void>();
    const fanOut = (): void => {
      followers.delete(signal);
      for (const call of calls) call();
    };
    entry = { calls, fanOut };
    followers.set(signal, entry);
    signal.addEventListener('abort', fanOut, { once: true });
  }
  entry.calls.add(onAbort);
}

function unfollowAbort(signal: AbortSignal, onAbort: () => void): void {
  const entry = followers.get(signal);
  if (!entry) return;
  entry.calls.delete(onAbort);
  // The last call gone: a long-lived signal keeps no listener of ours.
  if (entry.calls.size === 0) {
    followers.delete(signal);
    signal.removeEventListener('abort', entry.fanOut);
  }
}

/**
 * The first link. Gives each call a signal of its own, linked to the caller's only while the call lasts.
 * tRPC 11.22's httpLink and httpBatchLink (`raceAbortSignals`) add an 'abort' listener to the op's signal
 * and never remove it, so a program passing one long-lived signal to many calls (a run, a page, a shutdown
 * signal) would collect one listener per call, for as long as that signal lives. With this link in front,
 * what the links behind us add lands on a signal that is dropped with the call.
 * Also: refuses a context.callId that is not a call id, on every transport; and, once `closed` is closed
 * (closeApiClient), fails the calls in flight and every later one with ClientClosedError.
 */
export function callSignalLink(closed?: ClientLife): TRPCLink<AppRouter> {
  return () =>
    ({ op, next }) =>
      observable((observer) => {
        const callId = (op.context as CallContext).callId;
        if (callId !== undefined && !isCallId(callId)) {
          observer.error(invalidCallIdError(callId));
          return () => undefined;
        }
        if (closed?.closed) {
          observer.error(clientClosedError());
          return () => undefined;
        }
        const outer = op.signal;
        const own = outer ? new AbortController() : undefined;
        const onAbort = (): void => { own?.abort(outer?.reason); };
        if (outer?.aborted) onAbort();
        else if (outer) followAbort(outer, onAbort);
        // Without a caller's signal the op keeps none: transportOf reads its absence (batch over 'http').
        const subscription = next(own ? { ...op, signal: own.signal } : op).subscribe(observer);
        const onClose = (): void => {
          // The caller first, before the links behind us see anything: no AbortError, no calls.cancel.
          if (op.type === 'subscription') observer.complete();
          else observer.error(clientClosedError());
          subscription.unsubscribe();
          own?.abort(new ClientClosedError());
        };
        closed?.calls.add(onClose);
        return () => {
          if (outer) unfollowAbort(outer, onAbort);
          closed?.calls.delete(onClose);
          subscription.unsubscribe();
        };
      });
}

/** Why a subscription cannot start: there is no EventSource to carry it (Node 20 has no global one). */
export const MISSING_EVENT_SOURCE =
  "No EventSource here (Node 20 has none), so subscriptions over HTTP cannot start: pass one, e.g. `import { EventSource } from 'eventsource'` and createApiClient({ …, EventSource }), or use transport: 'websocket'.";

/**
 * Subscriptions over HTTP need an EventSource. Without one, tRPC's link would fail inside the stream and
 * report an empty error to onError, or nothing at all without onError; this makes `subscribe()` throw at
 * once, naming what to pass. First in the chain, so it throws before any link has taken hold of anything.
 */
function requireEventSourceLink(): TRPCLink<AppRouter> {
  return () =>
    ({ op, next }) => {
      if (op.type === 'subscription') throw new TypeError(MISSING_EVENT_SOURCE);
      return next(op);
    };
}

export function createApiClient(options: ApiClientOptions): ApiClient {
  const token = typeof options.token === 'function' ? options.token : () => options.token as string;
  const authorization = () => ({ authorization: `Bearer ${token()}` });
  const transport = options.transport ?? 'http';
  const cancels = new CancelBatcher(options.onCancelError);
  const life = new ClientLife();
  let client: ApiClient;
  let closeSocket: () => Promise<void> = () => Promise.resolve();
  if (transport === 'websocket') {
    const ws = webSocketLinks(
      { url: options.url, token, WebSocket: options.WebSocket, maxFrameBytes: options.maxFrameBytes, onConnectionState: options.onConnectionState, onSent: (callId) => { cancels.markSent(callId); } },
      // The deadline watch: a call waiting for the socket to come back must still end at its deadlineAt;
      // a sent one gets the server's own TIMEOUT first (it has params.deadlineMs), the watch a second later.
      [cancelByIdLink(cancels, { watchDeadlines: true, sentGraceMs: WS_SENT_DEADLINE_GRACE_MS })],
    );
    client = createTRPCClient<AppRouter>({ links: [callSignalLink(life), ...ws.links] });
    closeSocket = () => ws.close();
  } else {
    const hasEventSource = (options.EventSource ?? (globalThis as { EventSource?: unknown }).EventSource) !== undefined;
    client = createTRPCClient<AppRouter>({
      links: [...(hasEventSource ? [] : [requireEventSourceLink()]), callSignalLink(life), httpLinks(options, token, authorization, transport, cancels)],
    });
  }
  closers.set(client, async () => {
    // In this order: no cancel queued, then every call failed and unsubscribed (nothing left for the
    // socket's close to wait for, or to reopen it), then the socket closed.
    cancels.close();
    life.close();
    await closeSocket();
  });
  const { onCancelOutcome } = options;
  cancels.connect((callIds) => client.calls.cancel.mutate({ callIds }).then((answer) => { onCancelOutcome?.(answer.results); }));
  return client;
}

function httpLinks(options: ApiClientOptions, token: () => string, authorization: () => Record<string, string>, transport: 'http' | 'http-batch', cancels: CancelBatcher): TRPCLink<AppRouter> {
  const ticket = (signal?: AbortSignal) => fetchStreamTicket(options.url, token(), { ...(options.fetch ? { fetch: options.fetch } : {}), ...(signal ? { signal } : {}) });
  // Its own reconnects get a fresh ticket too (a native EventSource would retry with the spent one).
  const EventSource = ticketedEventSource(options.EventSource ?? globalThis.EventSource, ticket);
  return splitLink({
        condition: (op) => op.type === 'subscription',
        true: httpSubscriptionLink({
          url: options.url,
          // Called for every stream tRPC opens: a fresh ticket each time.
          connectionParams: async () => ({ ticket: await ticket() }),
          EventSource,
        }),
        false: splitLink({
          condition: (op) => transport === 'http-batch' || transportOf(op) === 'batch',
          true: [
            // Named calls, cancelled by id: the batch's request goes on for the others.
            transport === 'http-batch' ? cancelByIdLink(cancels, { watchDeadlines: true }) : stopWaitingOnAbortLink(),
            httpBatchLink({
              url: options.url,
              maxItems: 25,
              ...(options.fetch ? { fetch: options.fetch } : {}),
              // The server names each call of the batch by its position in x-call-ids.
              headers: ({ opList }) => ({
                ...authorization(),
                'x-call-ids': batchCallIds(opList, transport === 'http-batch' ? cancels : undefined),
                ...(transport === 'http-batch' ? batchDeadline(opList) : {}),
              }),
            }),
          ],
          false: httpLink({
            url: options.url,
            ...(options.fetch ? { fetch: options.fetch } : {}),
            headers: ({ op }) => {
              const context = op.context as CallContext;
              const headers: Record<string, string> = authorization();
              if (context.callId) headers['x-request-id'] = context.callId;
              if (context.deadlineAt !== undefined) headers['x-deadline-ms'] = String(budgetMs(context.deadlineAt));
              return headers;
            },
          }),
        }),
      });
}
