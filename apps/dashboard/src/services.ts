/**
 * What lives for the whole page, outside React: the API client (shared links from @asyncscope/client),
 * the stores, and the one activity stream. Components reach them through ServicesContext.
 */
import type { ApiClient } from '@asyncscope/client';
import { createApiClient } from '@asyncscope/client';
import { createContext, useContext } from 'react';
import { ActivityFeed } from './activity/feed';
import { TokenStore } from './auth/token';
import { CallsStore } from './lab/calls-store';
import type { RunHandle } from './lab/runner';
import { UserStream } from './users/stream-store';

export interface Services {
  tokens: TokenStore;
  api: ApiClient;
  calls: CallsStore;
  feed: ActivityFeed;
  userStream: UserStream;
  /** The fetch lab's current run, if any (its cancel functions). */
  run: { current: RunHandle | null };
}

export function createServices(tokens: TokenStore, origin: string): Services {
  const api = createApiClient({ url: `${origin}/trpc`, token: () => tokens.get() ?? '' });
  const calls = new CallsStore();
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
  return { tokens, api, calls, feed, userStream, run: { current: null } };
}

export const ServicesContext = createContext<Services | null>(null);

export function useServices(): Services {
  const services = useContext(ServicesContext);
  if (!services) throw new Error('useServices outside ServicesContext');
  return services;
}
