/**
 * What a transport knows about one call that tRPC has no field for. Over HTTP each request has its own
 * context (x-request-id, x-deadline-ms); over a WebSocket one context serves every call of the socket, so
 * the transport gives each call a context of its own carrying its CallMeta (`Context.callMeta`, through our
 * @trpc/server patch's `callContext` hook: patches/README.md), and the call's scope reads it there.
 */

/** Calls one carrier (a socket) may have in flight. */
export interface CallSlots {
  /** False when the carrier is at its limit: the call is refused with TOO_MANY_REQUESTS. */
  tryAcquire(): boolean;
  release(): void;
}

export interface CallMeta {
  /** The call's id, as its client named it. */
  callId?: string | undefined;
  /** Time budget the client has left for this call, in ms. */
  clientBudgetMs?: number | undefined;
  /** Fires when the carrier goes away (the socket closed): the call stops. */
  signal?: AbortSignal | undefined;
  slots?: CallSlots | undefined;
}
