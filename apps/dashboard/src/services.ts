/**
 * What lives for the whole page, outside React: the API clients (@asyncscope/client: the page's own,
 * over one WebSocket, and the lab's, one per transport), the stores, and the one activity stream.
 * Components reach them through ServicesContext. Everything that depends on the client package's
 * transport options is in `makeClient`, here.
 */
import type { ApiClient, ConnectionState } from '@asyncscope/client';
import type { CancelOutcome } from '@asyncscope/contract';
import { closeApiClient, createApiClient } from '@asyncscope/client';
import type { setFaultsInput } from '@asyncscope/contract';
import { createContext, useContext } from 'react';
import type { z } from 'zod';
import { ActivityFeed } from './activity/feed';
import { TokenStore } from './auth/token';
import { CallsStore } from './lab/calls-store';
import { LabFaults, NO_FAULT } from './lab/lab-faults';
import type { FetchUser, RunHandle } from './lab/runner';
import { pageProtocol, type ClientTransport, type LabTransport, type PageProtocol } from './lab/transport';
import { LabClients, nextSocketState, SocketStateStore, type MakeClient, type SocketEvent, type SocketState, type TransportClient } from './transport/clients';
import { UserStream } from './users/stream-store';

type SetFaultsInput = z.input<typeof setFaultsInput>;

export interface Services {
  tokens: TokenStore;
  /** The page's own client: activity stream, server panel, users, the lab's faults. */
  api: ApiClient;
  /** How the page's own calls travel, and the state of its socket. */
  pageTransport: ClientTransport;
  pageSocket: SocketStateStore;
  /** What the page was served over (decides whether HTTP/2 can be chosen). */
  page: PageProtocol;
  /** The lab's clients, one per transport. */
  labClients: LabClients;
  /** users.byId for a lab run over `transport`. */
  labFetch: (transport: LabTransport) => FetchUser;
  calls: CallsStore;
  feed: ActivityFeed;
  userStream: UserStream;
  /** The server-wide fault the lab set for its run, cleared when the run ends or the page goes away. */
  labFaults: LabFaults;
  /** The fetch lab's current run, if any (its cancel functions). */
  run: { current: RunHandle | null };
}

/** How the page's own traffic travels: one WebSocket for the activity stream, the server panel, users and faults. */
export const PAGE_TRANSPORT: ClientTransport = 'websocket';

/** The server closes a socket whose connectionParams token it refuses with this code. */
export const CLOSE_UNAUTHORIZED = 4401;

/** A client's connection report, as one SocketState step. */
export function socketEvent(report: ConnectionState): SocketEvent {
  const closeCode = report.lastClose?.code;
  switch (report.state) {
    case 'open':
      return { type: 'open' };
    case 'idle':
      return { type: 'closed', error: report.error, closeCode };
    case 'connecting':
      return { type: 'connecting', error: report.error, closeCode };
  }
}

/**
 * A client over `transport`, reporting its socket's state and the server's answers to the cancels it sends;
 * the one place that knows the client package's options.
 */
export function clientMaker(origin: string, tokens: TokenStore, now: () => number = Date.now, onCancelOutcome?: (outcomes: CancelOutcome[]) => void): MakeClient {
  return (transport, onState) => {
    let state: SocketState = { status: transport === 'websocket' ? 'connecting' : 'open', attempt: 0, error: null, since: now() };
    onState(state);
    const api = createApiClient({
      url: `${origin}/trpc`,
      token: () => tokens.get() ?? '',
      transport,
      onConnectionState: (report) => {
        state = nextSocketState(state, socketEvent(report), now());
        onState(state);
      },
      ...(onCancelOutcome ? { onCancelOutcome } : {}),
    });
    return { api, close: () => { void closeApiClient(api).catch(() => undefined); } };
  };
}

export function createServices(tokens: TokenStore, origin: string, location: Pick<Location, 'protocol'> = { protocol: new URL(origin).protocol }): Services {
  const calls = new CallsStore();
  // The lab's rows show what the server answered their cancel (cancelled, already settled, unknown, instance gone).
  const make = clientMaker(origin, tokens, Date.now, (outcomes) => { calls.applyCancelOutcomes(outcomes); });
  const pageSocket = new SocketStateStore();
  // The page's client, made when first asked for, and made anew for a new token (a socket is authenticated
  // once, when it opens). Everything below reads it at call time, through `api()`.
  let pageClient: TransportClient | null = null;
  const api = (): ApiClient => {
    pageClient ??= make(PAGE_TRANSPORT, (state) => { pageSocket.set(state); });
    return pageClient.api;
  };
  const labClients = new LabClients(make);
  let tokenInUse = tokens.get();
  tokens.subscribe(() => {
    const token = tokens.get();
    if (token === tokenInUse) return;
    tokenInUse = token;
    const old = pageClient;
    pageClient = null;
    old?.close();
    labClients.closeOthers(null);
    pageSocket.set({ status: 'idle', attempt: 0, error: null, since: Date.now() });
  });
  const labFetch = (transport: LabTransport): FetchUser => {
    const client = labClients.get(transport);
    return (id, opts) => client.users.byId.query({ id }, opts);
  };
  const labFaults = new LabFaults({
    set: (procedure, fault, signal) => api().lab.setFaults.mutate({ procedure, fault }, { signal }),
    list: () => api().lab.faults.query(),
    clearOnUnload: (procedure) => {
      // The page's last words (pagehide): started right here, not after the tRPC client's own awaits, which a
      // closing page may not live through; keepalive lets the request outlive the page. Nobody is left to
      // read an answer. (A tRPC call without batching is a POST of the input as JSON.)
      const input: SetFaultsInput = { procedure, fault: NO_FAULT };
      fetch(`${origin}/trpc/lab.setFaults`, {
        method: 'POST',
        keepalive: true,
        headers: { authorization: `Bearer ${tokens.get() ?? ''}`, 'content-type': 'application/json' },
        body: JSON.stringify(input),
      }).catch(() => undefined);
    },
  });
  const userStream = new UserStream((input, handlers) =>
    api().users.stream.subscribe(input, {
      onData: handlers.onData,
      onError: handlers.onError,
      onComplete: handlers.onComplete,
      onConnectionStateChange: handlers.onConnectionStateChange,
    }),
  );
  const feed = new ActivityFeed(
    (input, handlers) =>
      api().activity.events.subscribe(input, {
        onData: (message) => { handlers.onData(message.data); },
        onError: handlers.onError,
        onConnectionStateChange: handlers.onConnectionStateChange,
      }),
    (events, missed) => {
      calls.applyServerEvents(events, missed);
      userStream.applyServerEvents(events);
    },
  );
  const page = pageProtocol(location, typeof performance === 'undefined' ? undefined : performance);
  return {
    tokens,
    get api() {
      return api();
    },
    pageTransport: PAGE_TRANSPORT, pageSocket, page, labClients, labFetch, calls, feed, userStream, labFaults, run: { current: null } };
}

export const ServicesContext = createContext<Services | null>(null);

export function useServices(): Services {
  const services = useContext(ServicesContext);
  if (!services) throw new Error('useServices outside ServicesContext');
  return services;
}
