/**
 * The page's API clients, one per transport, and the state of their sockets. The page's own traffic
 * (activity stream, server panel, users, the lab's faults) rides one client — the WebSocket by default —
 * so it never waits behind the lab's calls; the lab's calls ride the transport the person chose, on a
 * client of its own, created when first needed and closed when the lab moves to another transport.
 */
import type { ApiClient } from '@asyncscope/client';
import { clientTransportOf, type ClientTransport, type LabTransport } from '../lab/transport';

export type SocketStatus = 'idle' | 'connecting' | 'open' | 'reconnecting' | 'closed';

/** What a client says about its connection (HTTP clients have none: always 'open'). */
export interface SocketState {
  status: SocketStatus;
  /** Reconnect attempts since the socket was last open. */
  attempt: number;
  /** Why the last connection failed or closed, if it did. */
  error: string | null;
  /** When this status began (epoch ms). */
  since: number;
  /** The close code the server gave last (4401: the token was refused). */
  closeCode?: number | undefined;
}

/** One step of a socket's life, as a client reports it. */
export interface SocketEvent {
  type: 'connecting' | 'open' | 'closed';
  error?: unknown;
  closeCode?: number | undefined;
}

export const INITIAL_SOCKET_STATE: SocketState = { status: 'idle', attempt: 0, error: null, since: 0 };

/** One client and the way to let go of it (closes its socket; HTTP clients have nothing to close). */
export interface TransportClient {
  api: ApiClient;
  close(): void;
}

export type MakeClient = (transport: ClientTransport, onState: (state: SocketState) => void) => TransportClient;

/** A socket's state, for useSyncExternalStore. */
export class SocketStateStore {
  #state: SocketState = INITIAL_SOCKET_STATE;
  readonly #listeners = new Set<() => void>();

  get = (): SocketState => this.#state;

  subscribe = (listener: () => void): (() => void) => {
    this.#listeners.add(listener);
    return () => { this.#listeners.delete(listener); };
  };

  set(next: SocketState): void {
    const prev = this.#state;
    if (prev.status === next.status && prev.attempt === next.attempt && prev.error === next.error && prev.closeCode === next.closeCode) return;
    this.#state = next;
    for (const listener of this.#listeners) listener();
  }
}

/**
 * Folds a sequence of raw socket events into a SocketState: 'connecting' after having been open (or
 * after a failure) is a reconnect, and counts its attempts.
 */
export function nextSocketState(prev: SocketState, event: SocketEvent, now: number): SocketState {
  const error = event.error === undefined || event.error === null ? null : event.error instanceof Error ? event.error.message : typeof event.error === 'string' ? event.error : 'connection lost';
  switch (event.type) {
    case 'open':
      return { status: 'open', attempt: 0, error: null, since: prev.status === 'open' ? prev.since : now };
    case 'closed':
      return { status: 'closed', attempt: prev.attempt, error: error ?? prev.error, since: now, closeCode: event.closeCode };
    case 'connecting': {
      const again = prev.status === 'open' || prev.status === 'reconnecting' || prev.status === 'closed' || error !== null;
      if (!again) return { status: 'connecting', attempt: 0, error: null, since: prev.status === 'connecting' ? prev.since : now };
      return {
        status: 'reconnecting',
        attempt: prev.status === 'reconnecting' ? prev.attempt + 1 : 1,
        error: error ?? prev.error,
        since: prev.status === 'reconnecting' ? prev.since : now,
        closeCode: event.closeCode ?? prev.closeCode,
      };
    }
  }
}

/**
 * The lab's clients by transport: the one asked for is created on first use; the others are closed when
 * the lab switches (so at most one lab socket is open). HTTP and HTTP/2 share one client: the browser
 * decides the protocol from the page's origin.
 */
export class LabClients {
  readonly #clients = new Map<ClientTransport, TransportClient>();
  readonly states = new Map<ClientTransport, SocketStateStore>();

  constructor(private readonly make: MakeClient, private readonly now: () => number = Date.now) {}

  /** The client for `transport`, created now if needed. */
  get(transport: LabTransport): ApiClient {
    const kind = clientTransportOf(transport);
    let client = this.#clients.get(kind);
    if (!client) {
      const store = this.stateOf(kind);
      client = this.make(kind, (state) => { store.set(state); });
      this.#clients.set(kind, client);
    }
    return client.api;
  }

  stateOf(kind: ClientTransport): SocketStateStore {
    let store = this.states.get(kind);
    if (!store) {
      store = new SocketStateStore();
      this.states.set(kind, store);
    }
    return store;
  }

  /** Which transports have a client now. */
  open(): ClientTransport[] {
    return [...this.#clients.keys()];
  }

  /** Closes every client but the one `keep` uses (null: all of them). */
  closeOthers(keep: LabTransport | null): void {
    const kept = keep === null ? null : clientTransportOf(keep);
    for (const [kind, client] of this.#clients) {
      if (kind === kept) continue;
      this.#clients.delete(kind);
      client.close();
      this.stateOf(kind).set({ ...INITIAL_SOCKET_STATE, since: this.now() });
    }
  }
}
