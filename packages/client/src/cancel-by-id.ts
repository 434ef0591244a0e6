/**
 * Cancel by call id, for transports where aborting a call's request cannot reach the server on its own:
 * a WebSocket (tRPC's wsLink never tells the server a query was aborted) and a batch (one request for
 * several calls). Every call gets a call id (the caller's, or a fresh one); when its signal fires the
 * caller stops waiting at once and the server is asked to stop it with `calls.cancel`.
 */
import type { AppRouter } from '@asyncscope/api';
import { MAX_CANCEL_IDS, newCallId } from '@asyncscope/contract';
import { TRPCClientError, type TRPCLink } from '@trpc/client';
import { observable } from '@trpc/server/observable';
import type { CallContext } from './call-context';

/** Sends one `calls.cancel` for the given ids; its failure is the caller's to swallow or report. */
export type SendCancel = (callIds: string[]) => Promise<unknown>;

const CANCEL_PATH = 'calls.cancel';

/**
 * Collects the ids aborted within one tick and sends them in as few `calls.cancel` as fit (a cancel-all
 * of 1,000 rows is one call, not 1,000). A failed cancel is reported, never thrown: the caller has
 * already stopped waiting, and the call will end at its deadline anyway.
 */
export class CancelBatcher {
  #pending: string[] = [];
  #scheduled = false;
  #send: SendCancel | undefined;
  #closed = false;
  /** Calls in flight by id, and whether their transport has sent them (see `track`). */
  readonly #calls = new Map<string, SentRecord>();
  constructor(private readonly onError: (error: unknown, callIds: string[]) => void = () => undefined) {}

  /** Set once the client exists (the cancel goes through the same client, on the same transport). */
  connect(send: SendCancel): void {
    this.#send = send;
  }

  /**
   * A call in flight, not sent yet. Its transport calls `markSent` when it writes the call: only a sent
   * call may be cancelled, since the server remembers a cancel for an id it has not seen (an "early
   * cancel", ~10 s) and would kill a later call that legitimately reuses the id.
   */
  track(callId: string): SentRecord {
    const record: SentRecord = { sent: false };
    this.#calls.set(callId, record);
    return record;
  }

  /** The transport wrote this call (WebSocket encoder, batch dispatch). */
  markSent(callId: string): void {
    const record = this.#calls.get(callId);
    if (record) record.sent = true;
  }

  /** The call is over; forgets it (unless a newer call took the id). */
  untrack(callId: string, record: SentRecord): void {
    if (this.#calls.get(callId) === record) this.#calls.delete(callId);
  }

  /** The client was closed: nothing more is sent (its calls died with it), and failures go unreported. */
  close(): void {
    this.#closed = true;
    this.#pending = [];
    this.#calls.clear();
  }

  add(callId: string): void {
    if (this.#closed) return;
    this.#pending.push(callId);
    if (this.#scheduled) return;
    this.#scheduled = true;
    setTimeout(() => { this.#flush(); }, 0);
  }

  #flush(): void {
    this.#scheduled = false;
    const ids = this.#pending;
    this.#pending = [];
    const send = this.#send;
    if (!send || this.#closed) return;
    for (let i = 0; i < ids.length; i += MAX_CANCEL_IDS) {
      const chunk = ids.slice(i, i + MAX_CANCEL_IDS);
      send(chunk).then(undefined, (error: unknown) => { if (!this.#closed) this.onError(error, chunk); });
    }
  }
}

export interface SentRecord {
  sent: boolean;
}

/** The budget the server is told for a call due at `deadlineAt` (at least 1 ms: 0 would read as none left to start). */
export function budgetMs(deadlineAt: number, now: number = Date.now()): number {
  return Math.max(1, Math.round(deadlineAt - now));
}

/** The error a caller gets at once when it aborts a call; the server is being told to stop it. */
export function abortedCallError(callId: string): TRPCClientError<AppRouter> {
  return TRPCClientError.from(new DOMException(`The call ${callId} was aborted; the server was asked to stop it (calls.cancel).`, 'AbortError'));
}

/** The error of a call whose deadline passed on the client's watch: shaped like the server's TIMEOUT. */
export function deadlineError(callId: string): TRPCClientError<AppRouter> {
  return TRPCClientError.from({
    error: { code: -32008, message: `The call ${callId} ran out of its budget (deadlineAt); the server was asked to stop it (calls.cancel).`, data: { code: 'TIMEOUT', httpStatus: 408 } },
  });
}

/**
 * Names every call (context.callId) and turns an abort into an immediate AbortError for the caller plus
 * a `calls.cancel` for the server — only if the transport has sent the call (`CancelBatcher.track`); one
 * aborted before it was sent just fails. Subscriptions are left to their transport (wsLink sends
 * subscription.stop; SSE closes the stream), and the cancel's own call is never cancelled by id.
 * With `watchDeadlines` a call whose `deadlineAt` passes fails with TIMEOUT and is cancelled the same way
 * (if sent): for batches, which carry one budget for all their calls, and the WebSocket, where a call
 * waiting for the socket to (re)open has told the server nothing yet and would otherwise wait forever.
 * `sentGraceMs` (WebSocket): a call that was sent carries its own budget, and the server's TIMEOUT is the
 * answer to wait for; the watch stops it only that much later (a socket dead without a close).
 */
export function cancelByIdLink(batcher: CancelBatcher, options: { watchDeadlines?: boolean; sentGraceMs?: number } = {}): TRPCLink<AppRouter> {
  return () =>
    ({ op, next }) =>
      observable((observer) => {
        const context = op.context as CallContext;
        if (op.path === CANCEL_PATH || op.type === 'subscription') return next(op).subscribe(observer);
        const callId = context.callId ?? newCallId();
        let done = false;
        const record = batcher.track(callId);
        // Set once subscribed; an abort can only land after that (the listener is removed on teardown).
        const held: { subscription?: { unsubscribe(): void } } = {};
        let timer: ReturnType<typeof setTimeout> | undefined;
        const stop = (error: TRPCClientError<AppRouter>): void => {
          if (done) return;
          done = true;
          clearTimeout(timer);
          // Read before unsubscribing: the teardown forgets the call.
          const sent = record.sent;
          observer.error(error);
          held.subscription?.unsubscribe();
          if (sent) batcher.add(callId);
        };
        const onAbort = (): void => { stop(abortedCallError(callId)); };
        if (op.signal?.aborted) {
          onAbort();
          batcher.untrack(callId, record);
          return () => undefined;
        }
        // Listening before the links behind us do: wsLink completes an aborted call silently, and the
        // server must still be told.
        op.signal?.addEventListener('abort', onAbort, { once: true });
        if (options.watchDeadlines && context.deadlineAt !== undefined) {
          const grace = options.sentGraceMs ?? 0;
          const onDeadline = (): void => {
            if (record.sent && grace > 0) timer = setTimeout(() => { stop(deadlineError(callId)); }, grace);
            else stop(deadlineError(callId));
          };
          timer = setTimeout(onDeadline, Math.max(0, context.deadlineAt - Date.now()));
        }
        // A copy: the caller's context object may serve several calls.
        held.subscription = next({ ...op, context: { ...op.context, callId } }).subscribe({
          next: (value) => { observer.next(value); },
          error: (error) => { done = true; clearTimeout(timer); observer.error(error); },
          complete: () => { done = true; clearTimeout(timer); observer.complete(); },
        });
        return () => {
          clearTimeout(timer);
          op.signal?.removeEventListener('abort', onAbort);
          held.subscription?.unsubscribe();
          batcher.untrack(callId, record);
        };
      });
}
