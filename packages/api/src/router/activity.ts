import { deadline } from '@asyncscope/concurrency';
import { tracked, TRPCError, type TRPCRouterRecord } from '@trpc/server';
import { activityEventsInput } from '@asyncscope/contract';
import type { Context } from '../context';
import { authorizedProcedure, protectedProcedure, validInput } from '../trpc';

export interface PoolConnections { state: string; count: number }

/** The pool's connections by state (pg_stat_activity), or undefined when the database does not answer within 1 s. */
async function poolConnections(runtime: Context['runtime'], signal: AbortSignal | undefined): Promise<PoolConnections[] | undefined> {
  const scope = deadline(1000, { signal });
  try {
    // Outside the pool when the server offers it: through the pool, this read waits behind the calls it reports.
    if (runtime.readPoolConnections) return await runtime.readPoolConnections();
    // Bound to the deadline's scope: it cancels the statement (and a cancel that fails is handled there).
    const rows = await runtime.db.bind({ signal: scope.signal }).sql<PoolConnections[]>`
      select coalesce(state, 'unknown') as state, count(*)::int as count
      from pg_stat_activity
      where application_name = ${runtime.db.config.applicationName} and pid <> pg_backend_pid()
      group by 1 order by 1`;
    return [...rows];
  } catch {
    return undefined;
  } finally {
    scope.dispose();
  }
}

/** How long `stats` waits for a fresh read of the pool before it answers with the last one it has. */
const POOL_READ_WAIT_MS = 150;

interface PoolRead {
  rows: PoolConnections[] | undefined;
  at: number;
}
interface PoolReader {
  last: PoolRead | undefined;
  reading: Promise<PoolRead> | undefined;
}
const poolReaders = new WeakMap<object, PoolReader>();

/**
 * The pool's connections by state, without starving the server panel: its query waits for a pool
 * connection like any other, so while every connection is busy (a lab run of 1,000 calls) it can take its
 * whole second. One read at a time per runtime; an answer waits for it at most POOL_READ_WAIT_MS, then
 * takes the last read (its age goes out as poolConnectionsAgeMs) — the gauges themselves are always now.
 */
async function recentPoolConnections(runtime: Context['runtime']): Promise<PoolRead | undefined> {
  let reader = poolReaders.get(runtime);
  if (!reader) {
    reader = { last: undefined, reading: undefined };
    poolReaders.set(runtime, reader);
  }
  const r = reader;
  r.reading ??= poolConnections(runtime, undefined)
    .then((rows) => {
      const read = { rows, at: Date.now() };
      if (rows) r.last = read;
      return read;
    })
    .finally(() => { r.reading = undefined; });
  let timer: NodeJS.Timeout | undefined;
  const waited = new Promise<undefined>((resolve) => { timer = setTimeout(resolve, POOL_READ_WAIT_MS, undefined); });
  try {
    return (await Promise.race([r.reading, waited])) ?? r.last;
  } finally {
    clearTimeout(timer);
  }
}

export const activityRouter = {
  /**
   * Every call's hops, live, over SSE. Batches are `tracked` by their last sequence number, so a client
   * that reconnects resumes from where it was, without gaps while the server's ring still holds them
   * (`missed` counts what it no longer does). It reads `runtime.feed`: this process's log, or with several
   * instances the broker's stream, whose ids mean the same on every instance (resume on any of them).
   */
  events: protectedProcedure.input(validInput(activityEventsInput)).subscription(async function* ({ ctx, input, signal }) {
    const log = ctx.runtime.feed;
    const done = signal ?? new AbortController().signal;
    // An instance that has not learned its stream yet would read every resumed id as from another id space
    // (start over: duplicates), so it waits — as long as the subscriber does — for its real one.
    await log.whenBound?.(done);
    if (done.aborted) return;
    const [boot, seq] = input.lastEventId?.includes(':') ? input.lastEventId.split(':') : [log.bootId, input.lastEventId];
    let start: number;
    if (seq == null) start = input.replay ? 0 : log.lastSeq;
    else start = boot === log.bootId ? Number(seq) : 0; // a resume from before a restart replays what this boot has
    if (start > log.lastSeq && !(log.mayLag && boot === log.bootId)) {
      // This boot has not sent that id: with its boot id, the id is wrong (it would wait for events that never
      // come); a bare number may be from before a restart (the dashboard resumes so), so it replays this boot's.
      if (boot === log.bootId && input.lastEventId?.includes(':')) {
        throw new TRPCError({ code: 'BAD_REQUEST', message: `lastEventId ${input.lastEventId} is ahead of this server's events (the newest is ${log.bootId}:${log.lastSeq}).` });
      }
      start = 0;
    }
    for await (const batch of log.follow(start, done, 50)) {
      yield tracked(`${log.bootId}:${batch.lastSeq}`, { bootId: log.bootId, events: batch.events, missed: batch.missed });
    }
  }),

  /**
   * Gauges now, and per-second history for charts. The process's own gauges answer even when the database
   * does not: the pool's connections by state are read within 1 s, or left empty (`database.ready` says why);
   * while the pool is busy the answer does not wait for that read (see recentPoolConnections).
   */
  stats: authorizedProcedure.query(async ({ ctx }) => {
    const { runtime } = ctx;
    const ready = ctx.isDatabaseReady();
    const read = ready ? await recentPoolConnections(runtime) : { rows: [], at: Date.now() };
    const pool = read?.rows;
    return {
      database: { ready, poolConnectionsRead: pool !== undefined, poolConnectionsAgeMs: read && pool !== undefined ? Date.now() - read.at : null },
      inFlight: runtime.admission.inFlight,
      queued: runtime.admission.queued,
      shed: runtime.admission.shed,
      maxInFlight: runtime.admission.maxInFlight,
      maxQueue: runtime.admission.maxQueue,
      poolMax: runtime.db.config.poolMax,
      statements: { ...runtime.db.statements() },
      pool: [...(pool ?? [])],
      cpu: { threads: runtime.cpu.threads, queued: runtime.cpu.queued },
      history: runtime.stats.history(),
      instance: runtime.instanceId,
      // Admission limits are per instance: each reports its own, this one first.
      instances: [runtime.instanceStats(), ...runtime.clusterInstances()],
      events: runtime.eventsStatus(),
    };
  }),
} satisfies TRPCRouterRecord;
