/**
 * Whether the database answers, followed both ways, and a watchdog for a pool that stopped making progress.
 *
 * - A probe (`select 1` on a connection of its own, so a wedged pool cannot hide an answering database,
 *   nor a dead database hide behind pooled connections) runs every `probeIntervalMs` (2 s), every
 *   `recoverIntervalMs` (100 ms: a refused connection costs next to nothing) while the database is down,
 *   and at once when a statement lost its connection.
 * - Down: `isReady()` turns false and `downSignal` fires with a `DatabaseUnavailableError`, so calls
 *   waiting for the pool stop at once with a retryable error instead of waiting until their deadline.
 *   A refused or lost connection counts at once; a probe that only timed out (a busy machine) counts on
 *   the second in a row.
 * - Back up: ready again at the first probe that answers, and a fresh `downSignal`.
 * - Watchdog: a statement the pool believes is running, while Postgres shows its backend idle for longer
 *   than `stallMs`, was never delivered (a lost write). Its backend is terminated, so the driver sees the
 *   connection close, fails the statement with CONNECTION_CLOSED and replaces the connection.
 *
 * Hand-written because what it watches (our statements, by backend pid) is ours.
 */
import { setMaxListeners } from 'node:events';
import postgres from 'postgres';
import { DatabaseUnavailableError, isDatabaseUnavailable } from './errors';
import type { RunningStatement } from './scope';

export interface DbHealthOptions {
  /** Connection string of the database the pool uses. */
  url: string;
  /** The pool's application_name (the probe's own connection uses `<name>-health`). */
  applicationName: string;
  /** The pool's statements in flight. */
  runningStatements: () => Iterable<RunningStatement>;
  probeIntervalMs?: number;
  recoverIntervalMs?: number;
  probeTimeoutMs?: number;
  stallMs?: number;
  /** Told on every change: ready or not, and why not (for logs; may hold driver text). */
  onChange?: (ready: boolean, detail: string) => void;
  /** Told when the watchdog terminated backends whose statement never arrived. */
  onStalled?: (pids: number[]) => void;
}

export interface DbHealth {
  isReady(): boolean;
  /** Fires when the database goes down; a new one is made when it comes back. */
  readonly downSignal: AbortSignal;
  /** A statement lost its connection: probe now. */
  nudge(): void;
  /** Backends the watchdog terminated since start. */
  readonly stalledTerminated: number;
  /**
   * The pool's connections by state (pg_stat_activity), read on the health check's own connection: it
   * answers while every pool connection is busy, which is when it matters.
   */
  poolConnections(): Promise<PoolConnectionCount[]>;
  close(): Promise<void>;
}

export interface PoolConnectionCount { state: string; count: number }

interface ProbeRow {
  pid: number;
  state: string | null;
  idle_ms: number | null;
}

export function startDbHealth(options: DbHealthOptions, initiallyReady = true): DbHealth {
  const probeIntervalMs = options.probeIntervalMs ?? 2000;
  const recoverIntervalMs = options.recoverIntervalMs ?? 100;
  const probeTimeoutMs = options.probeTimeoutMs ?? 1000;
  const stallMs = options.stallMs ?? 3000;

  let ready = initiallyReady;
  // Every call in flight listens to it: thousands at once are expected.
  const newDown = (): AbortController => {
    const controller = new AbortController();
    setMaxListeners(0, controller.signal);
    return controller;
  };
  let down = newDown();
  if (!ready) down.abort(new DatabaseUnavailableError('not checked yet'));
  let timeouts = 0;
  let stalledTerminated = 0;
  let closed = false;
  let probing: Promise<void> | undefined;
  let timer: NodeJS.Timeout | undefined;

  const newClient = () =>
    postgres(options.url, {
      max: 1,
      connect_timeout: Math.max(1, Math.ceil(probeTimeoutMs / 1000)),
      idle_timeout: 0,
      max_lifetime: null,
      onnotice: () => undefined,
      connection: { application_name: `${options.applicationName}-health`.slice(0, 63) },
    });
  let client = newClient();

  const setReady = (value: boolean, detail: string): void => {
    if (value === ready) return;
    ready = value;
    if (value) down = newDown();
    else down.abort(new DatabaseUnavailableError(detail));
    options.onChange?.(value, detail);
  };

  /** `work` on the probe connection, bounded in time; a probe that hangs gets a new connection. */
  const bounded = async <T>(work: (sql: postgres.Sql) => Promise<T>): Promise<T> => {
    let timeout: NodeJS.Timeout | undefined;
    let settled = false;
    const attempt = work(client).finally(() => { settled = true; });
    const timedOut = new Promise<never>((_, reject) => {
      timeout = setTimeout(() => {
        // After a long event-loop turn (a burst on a busy machine) timers run before the answer that is
        // already waiting on the socket is read: look once more after the poll phase before calling it late.
        setImmediate(() => { if (!settled) reject(new Error(`no answer within ${probeTimeoutMs} ms`)); });
      }, probeTimeoutMs);
    });
    try {
      return await Promise.race([attempt, timedOut]);
    } catch (error) {
      attempt.catch(() => undefined);
      if (!isDatabaseUnavailable(error)) {
        // It hangs: drop this connection (its statement with it) rather than queue behind it.
        const stuck = client;
        client = newClient();
        await stuck.end({ timeout: 0 }).catch(() => undefined);
      }
      throw error;
    } finally {
      clearTimeout(timeout);
    }
  };

  const watchdog = async (): Promise<void> => {
    const now = performance.now();
    const suspects = new Set<number>();
    for (const statement of options.runningStatements()) {
      if (statement.pid !== null && now - statement.since > stallMs) suspects.add(statement.pid);
    }
    if (suspects.size === 0) return;
    const rows = await bounded((sql) => sql<ProbeRow[]>`
      select pid, state, (extract(epoch from now() - state_change) * 1000)::int as idle_ms
      from pg_stat_activity where pid = any(${[...suspects]}::int[])`);
    // Idle (in a transaction or not) while we wait for its answer: the statement never reached it.
    const stalled = rows.filter((r) => (r.state === 'idle' || r.state === 'idle in transaction') && (r.idle_ms ?? 0) > stallMs).map((r) => r.pid);
    if (stalled.length === 0) return;
    await bounded((sql) => sql`select pg_terminate_backend(pid) from unnest(${stalled}::int[]) as pid`);
    stalledTerminated += stalled.length;
    options.onStalled?.(stalled);
  };

  const probe = async (): Promise<void> => {
    try {
      await bounded((sql) => sql`select 1`);
    } catch (error) {
      const lost = isDatabaseUnavailable(error);
      if (!lost) timeouts++;
      if (lost || timeouts >= 2) setReady(false, error instanceof Error ? error.message : String(error));
      return;
    }
    timeouts = 0;
    setReady(true, 'the database answers');
    // The next round looks again; a watchdog that could not look is no reason to call the database down.
    await watchdog().catch(() => undefined);
  };

  const schedule = (): void => {
    if (closed) return;
    clearTimeout(timer);
    timer = setTimeout(run, ready ? probeIntervalMs : recoverIntervalMs);
    timer.unref();
  };
  const run = (): void => {
    if (closed || probing) return;
    probing = probe().finally(() => {
      probing = undefined;
      schedule();
    });
  };
  schedule();

  return {
    isReady: () => ready,
    get downSignal() {
      return down.signal;
    },
    nudge: () => {
      if (!probing) {
        clearTimeout(timer);
        run();
      }
    },
    get stalledTerminated() {
      return stalledTerminated;
    },
    poolConnections: async () => [
      ...(await bounded((sql) => sql<PoolConnectionCount[]>`
        select coalesce(state, 'unknown') as state, count(*)::int as count
        from pg_stat_activity where application_name = ${options.applicationName}
        group by 1 order by 1`)),
    ],
    async close() {
      closed = true;
      clearTimeout(timer);
      await probing;
      await client.end({ timeout: 0 });
    },
  };
}
