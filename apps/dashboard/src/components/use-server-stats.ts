import type { RouterOutputs } from '@asyncscope/api';
import { useQuery } from '@tanstack/react-query';
import { useEffect, useRef, useState } from 'react';
import { serverRestarted } from '../activity/feed';
import { errorCode } from '../users/form';
import { useServices } from '../services';
import { useTRPC } from '../trpc';

export type ServerStats = RouterOutputs['activity']['stats'];

export interface ServerStatsView {
  data: ServerStats | undefined;
  /** When the shown data arrived (0: never). */
  updatedAt: number;
  /** The server has not answered since then (network error), or null. */
  offlineSince: number | null;
  unauthorized: boolean;
  /** The server answers but its database does not (SERVICE_UNAVAILABLE). */
  dbUnavailable: boolean;
  errorMessage: string | null;
}

/**
 * activity.stats once a second. Also the dashboard's heartbeat: a network error means the server is away,
 * UNAUTHORIZED a wrong token, and a history that starts over means the server restarted (the activity
 * stream then re-reads the new server's events from its first).
 */
export function useServerStats(): ServerStatsView {
  const trpc = useTRPC();
  const { feed } = useServices();
  const query = useQuery(trpc.activity.stats.queryOptions(undefined, { refetchInterval: 1000, refetchIntervalInBackground: true, retry: false }));
  const [offlineSince, setOfflineSince] = useState<number | null>(null);
  const previousHistory = useRef<ServerStats['history'] | undefined>(undefined);

  const code = query.error ? errorCode(query.error) : undefined;
  const networkDown = query.isError && code === undefined;

  useEffect(() => {
    if (networkDown) setOfflineSince((since) => since ?? query.errorUpdatedAt);
    else if (query.isSuccess) setOfflineSince(null);
  }, [networkDown, query.isSuccess, query.errorUpdatedAt, query.dataUpdatedAt]);

  useEffect(() => {
    const history = query.data?.history;
    if (!history) return;
    if (serverRestarted(previousHistory.current, history)) feed.serverRestarted();
    previousHistory.current = history;
  }, [query.data, feed]);

  return {
    data: query.data,
    updatedAt: query.dataUpdatedAt,
    offlineSince,
    unauthorized: code === 'UNAUTHORIZED',
    dbUnavailable: code === 'SERVICE_UNAVAILABLE',
    errorMessage: query.error ? query.error.message : null,
  };
}
