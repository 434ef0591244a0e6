import { deadline } from '@asyncscope/concurrency';
import { runInQueryScope } from '@asyncscope/db';
import { tracked, TRPCError, type TRPCRouterRecord } from '@trpc/server';
import { activityEventsInput } from '@asyncscope/contract';
import type { Context } from '../context';
import { authorizedProcedure, protectedProcedure, validInput } from '../trpc';

export interface PoolConnections { state: string; count: number }

/** The pool's connections by state (pg_stat_activity), or undefined when the database does not answer within 1 s. */
async function poolConnections(runtime: Context['runtime'], signal: AbortSignal | undefined): Promise<PoolConnections[] | undefined> {
  const scope = deadline(1000, { signal });
  try {
    // In a query scope: the deadline cancels the statement (and a cancel that fails is handled there).
    const rows = await runInQueryScope({ signal: scope.signal }, () => runtime.db.sql<PoolConnections[]>`
      select coalesce(state, 'unknown') as state, count(*)::int as count
      from pg_stat_activity
      where application_name = ${runtime.db.config.applicationName} and pid <> pg_backend_pid()
      group by 1 order by 1`);
    return [...rows];
  } catch {
    return undefined;
  } finally {
    scope.dispose();
  }
}

export const activityRouter = {
  /**
   * Every call's hops, live, over SSE. Batches are `tracked` by their last sequence number, so a client
   * that reconnects resumes from where it was, without gaps while the server's ring still holds them
   * (`missed` counts what it no longer does).
   */
  events: protectedProcedure.input(validInput(activityEventsInput)).subscription(async function* ({ ctx, input, signal }) {
    const log = ctx.runtime.activity;
    const [boot, seq] = input.lastEventId?.includes(':') ? input.lastEventId.split(':') : [log.bootId, input.lastEventId];
    let start: number;
    if (seq == null) start = input.replay ? 0 : log.lastSeq;
    else start = boot === log.bootId ? Number(seq) : 0; // a resume from before a restart replays what this boot has
    if (start > log.lastSeq) {
      // This boot has not sent that id: with its boot id, the id is wrong (it would wait for events that never
      // come); a bare number may be from before a restart (the dashboard resumes so), so it replays this boot's.
      if (boot === log.bootId && input.lastEventId?.includes(':')) {
        throw new TRPCError({ code: 'BAD_REQUEST', message: `lastEventId ${input.lastEventId} is ahead of this server's events (the newest is ${log.bootId}:${log.lastSeq}).` });
      }
      start = 0;
    }
    const done = signal ?? new AbortController().signal;
    for await (const batch of log.follow(start, done, 50)) {
      yield tracked(`${log.bootId}:${batch.lastSeq}`, { bootId: log.bootId, events: batch.events, missed: batch.missed });
    }
  }),

  /**
   * Gauges now, and per-second history for charts. The process's own gauges answer even when the database
   * does not: the pool's connections by state are read within 1 s, or left empty (`database.ready` says why).
   */
  stats: authorizedProcedure.query(async ({ ctx, signal }) => {
    const { runtime } = ctx;
    const ready = ctx.isDatabaseReady();
    const pool = ready ? await poolConnections(runtime, signal) : [];
    return {
      database: { ready, poolConnectionsRead: pool !== undefined },
      inFlight: runtime.admission.inFlight,
      queued: runtime.admission.queued,
      shed: runtime.admission.shed,
      maxInFlight: runtime.admission.maxInFlight,
      maxQueue: runtime.admission.maxQueue,
      poolMax: runtime.db.config.max,
      statements: { ...runtime.db.statements() },
      pool: [...(pool ?? [])],
      cpu: { threads: runtime.cpu.threads, queued: runtime.cpu.queued },
      history: runtime.stats.history(),
    };
  }),
} satisfies TRPCRouterRecord;
