/**
 * What lives for the whole page, outside React: the API client (shared links from @asyncscope/client),
 * the stores, and the one activity stream. Components reach them through ServicesContext.
 */
import type { ApiClient } from '@asyncscope/client';
import { createApiClient } from '@asyncscope/client';
import type { setFaultsInput } from '@asyncscope/contract';
import { createContext, useContext } from 'react';
import type { z } from 'zod';
import { ActivityFeed } from './activity/feed';
import { TokenStore } from './auth/token';
import { CallsStore } from './lab/calls-store';
import { LabFaults, NO_FAULT } from './lab/lab-faults';
import type { RunHandle } from './lab/runner';
import { UserStream } from './users/stream-store';

type SetFaultsInput = z.input<typeof setFaultsInput>;

export interface Services {
  tokens: TokenStore;
  api: ApiClient;
  calls: CallsStore;
  feed: ActivityFeed;
  userStream: UserStream;
  /** The server-wide fault the lab set for its run, cleared when the run ends or the page goes away. */
  labFaults: LabFaults;
  /** The fetch lab's current run, if any (its cancel functions). */
  run: { current: RunHandle | null };
}

export function createServices(tokens: TokenStore, origin: string): Services {
  const api = createApiClient({ url: `${origin}/trpc`, token: () => tokens.get() ?? '' });
  const calls = new CallsStore();
  const labFaults = new LabFaults({
    set: (procedure, fault) => api.lab.setFaults.mutate({ procedure, fault }),
    list: () => api.lab.faults.query(),
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
    api.users.stream.subscribe(input, {
      onData: handlers.onData,
      onError: handlers.onError,
      onComplete: handlers.onComplete,
      onConnectionStateChange: handlers.onConnectionStateChange,
    }),
  );
  const feed = new ActivityFeed(
    (input, handlers) =>
      api.activity.events.subscribe(input, {
        onData: (message) => { handlers.onData(message.data); },
        onError: handlers.onError,
        onConnectionStateChange: handlers.onConnectionStateChange,
      }),
    (events, missed) => {
      calls.applyServerEvents(events, missed);
      userStream.applyServerEvents(events);
    },
  );
  return { tokens, api, calls, feed, userStream, labFaults, run: { current: null } };
}

export const ServicesContext = createContext<Services | null>(null);

export function useServices(): Services {
  const services = useContext(ServicesContext);
  if (!services) throw new Error('useServices outside ServicesContext');
  return services;
}
