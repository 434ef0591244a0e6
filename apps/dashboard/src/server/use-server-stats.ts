import type { RouterOutputs } from '@asyncscope/api';
import { apiErrorCode } from '@asyncscope/client';
import { useEffect, useMemo, useRef, useState } from 'react';
import { serverRestarted } from '../activity/feed';
import { useServices } from '../services';
import { pollOverlapping } from './stats-poller';

export type ServerStats = RouterOutputs['activity']['stats'];

export interface ServerStatsView {
  data: ServerStats | undefined;
  /** When the shown data arrived (0: never). */
  updatedAt: number;
  /** How long the server took to answer it. */
  latencyMs: number;
  /** The server has not answered since then (network error), or null. */
  offlineSince: number | null;
  unauthorized: boolean;
  /** The server answers but its database does not (SERVICE_UNAVAILABLE). */
  dbUnavailable: boolean;
  errorMessage: string | null;
}

/** How often the panel asks (twice a second: it must show news at least once a second); answers may overlap. */
export const STATS_POLL_MS = 500;
/** Asks still unanswered beyond which a tick is skipped (the server is away, or very slow). */
const MAX_PENDING = 3;

interface Polled {
  data: ServerStats | undefined;
  updatedAt: number;
  /** How long the shown answer took. */
  latencyMs: number;
  error: unknown;
  errorAt: number;
}

/**
 * activity.stats twice a second. Also the dashboard's heartbeat: a network error means the server is away,
 * UNAUTHORIZED a wrong token, and a history that starts over means the server restarted (the activity
 * stream then re-reads the new server's events from its first).
 *
 * A tick does not wait for the previous answer (up to MAX_PENDING in flight, on the page's WebSocket): an
 * answer can take up to a second while every pool connection is busy (the pool's breakdown is read from
 * Postgres, within 1 s), and the panel must still update every second. The newest ask that answered wins.
 */
export function useServerStats(): ServerStatsView {
  const { api, feed } = useServices();
  const [polled, setPolled] = useState<Polled>({ data: undefined, updatedAt: 0, latencyMs: 0, error: null, errorAt: 0 });
  const previousHistory = useRef<ServerStats['history'] | undefined>(undefined);

  useEffect(() => {
    const stop = new AbortController();
    pollOverlapping({
      ask: (signal) => api.activity.stats.query(undefined, { signal }),
      intervalMs: STATS_POLL_MS,
      maxPending: MAX_PENDING,
      signal: stop.signal,
      onAnswer: (data, latencyMs) => { setPolled({ data, updatedAt: Date.now(), latencyMs, error: null, errorAt: 0 }); },
      onError: (error) => { setPolled((p) => ({ ...p, error, errorAt: p.error ? p.errorAt : Date.now() })); },
    });
    // Unmounted, or a new client (a new token): the asks still in flight are dropped, not left to answer nobody.
    return () => { stop.abort(); };
  }, [api]);

  const code = polled.error ? apiErrorCode(polled.error) : undefined;
  const networkDown = polled.error !== null && code === undefined;
  const offlineSince = networkDown ? polled.errorAt : null;

  useEffect(() => {
    const history = polled.data?.history;
    if (!history) return;
    if (serverRestarted(previousHistory.current, history, polled.data?.events.mode)) feed.serverRestarted();
    previousHistory.current = history;
  }, [polled.data, feed]);

  return {
    data: polled.data,
    updatedAt: polled.updatedAt,
    latencyMs: polled.latencyMs,
    offlineSince,
    unauthorized: code === 'UNAUTHORIZED',
    dbUnavailable: code === 'SERVICE_UNAVAILABLE',
    errorMessage: polled.error ? (polled.error instanceof Error ? polled.error.message : 'request failed') : null,
  };
}

/** What the lab's rows need to know of the cluster: how many instances, and which are gone. */
export interface ClusterInfo {
  size: number;
  gone: ReadonlySet<string>;
}

/** The cluster from the stats, the same object while its size and gone instances stay the same (rows compare it by identity). */
export function useClusterInfo(data: ServerStats | undefined): ClusterInfo {
  const size = data?.instances.length ?? 1;
  const goneKey = data?.instances.filter((i) => i.state === 'gone').map((i) => i.instance).join('\n') ?? '';
  return useMemo(() => ({ size, gone: new Set(goneKey === '' ? [] : goneKey.split('\n')) }), [size, goneKey]);
}
