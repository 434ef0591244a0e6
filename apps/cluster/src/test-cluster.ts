/**
 * The cluster every test here stands on: a database cloned from the migrated template (one PostgreSQL: the
 * machine's via TEST_DATABASE_URL, or the embedded one of the global setup), a real nats-server with JetStream,
 * N built server instances (apps/server/dist, as `pnpm start` runs it) and HAProxy running deploy/haproxy.cfg in
 * front. Everything is stopped on dispose, each part even when another fails to stop.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { ActivityEvent } from '@asyncscope/api';
import { createApiClient, type ApiClient } from '@asyncscope/client';
import { createTestDatabase, type TestDatabase } from '@asyncscope/db/testing';
import { killAllNow } from '@asyncscope/harness/children';
import { missingBinaries, startHaproxy, startInstances, startNats, type Haproxy, type Instance, type Instances, type Nats } from '@asyncscope/harness/cluster';
import { EventSource } from 'eventsource';
import postgres from 'postgres';
import { inject } from 'vitest';
import { serverDir, untilUp } from './local';

// A test that times out leaves its `await using` undisposed until the file ends: whatever it started (in their own
// process groups) is killed when this test process exits, however it exits short of SIGKILL.
process.once('exit', killAllNow);

/** Why this suite cannot run on this machine (a binary missing), or false. */
export const skipReason: string | false = missingBinaries();
if (skipReason) process.stdout.write(`cluster tests skipped: ${skipReason}\n`);

export interface Cluster extends AsyncDisposable {
  db: TestDatabase;
  nats: Nats;
  instances: Instances;
  haproxy: Haproxy;
  /** A client through the load balancer. */
  api: ApiClient;
  /** A client of one instance, bypassing the balancer. */
  direct(instance: Instance): ApiClient;
  signal: AbortSignal;
}

export async function startCluster(n: number, env: Record<string, string> = {}): Promise<Cluster> {
  const controller = new AbortController();
  const { signal } = controller;
  const cleanups: (() => Promise<void>)[] = [];
  const dispose = async () => {
    controller.abort();
    const errors: unknown[] = [];
    for (const cleanup of cleanups.reverse()) await cleanup().catch((error: unknown) => errors.push(error));
    if (errors.length > 0) throw new AggregateError(errors, 'the cluster did not stop cleanly');
  };
  try {
    const db = await createTestDatabase(inject('pgAdminUrl'), inject('pgTemplate'), { poolMax: 2 });
    cleanups.push(() => db[Symbol.asyncDispose]());
    const nats = await startNats({ signal });
    cleanups.push(() => nats.stop());
    // A short stream name per cluster is not needed: each cluster has its own nats-server and store.
    const instances = await startInstances(n, { databaseUrl: db.url, eventsUrl: nats.url, serverDir: serverDir(), env: { LOG_LEVEL: 'warn', ...env }, signal });
    cleanups.push(() => instances.close());
    const haproxy = await startHaproxy({ backends: instances.list().map((i) => ({ name: i.id, url: i.url })), signal });
    cleanups.push(() => haproxy.stop());
    await untilUp(haproxy, instances.list().map((i) => i.id), signal);
    const api = createApiClient({ url: `${haproxy.url}/trpc`, token: instances.token, EventSource });
    return { db, nats, instances, haproxy, api, direct: (i) => i.api, signal, [Symbol.asyncDispose]: dispose };
  } catch (error) {
    await dispose().catch(() => undefined);
    throw error;
  }
}

/** A hop as the cluster's subscribers see it (`instance`: the id of the instance that produced it). */
export type Hop = ActivityEvent;

export interface Subscriber {
  /** Every event received, in order, each with when it arrived (Date.now()). */
  events: (Hop & { seenAt: number })[];
  /** Sum of `missed` over the batches. */
  missed(): number;
  /** The tracked id of the last batch (`<bootId>:<seq>`), for a resume. */
  lastEventId(): string | undefined;
  /** Events of one call. */
  of(callId: string): Hop[];
  close(): void;
}

/** Follows `activity.events` on one client (an instance, or the balancer), from now or after `lastEventId`. */
export function subscribe(api: ApiClient, options: { lastEventId?: string } = {}): Subscriber {
  const events: (Hop & { seenAt: number })[] = [];
  const byCall = new Map<string, Hop[]>();
  let missed = 0;
  let lastId: string | undefined;
  let failure: unknown;
  const sub = api.activity.events.subscribe(options.lastEventId === undefined ? {} : { lastEventId: options.lastEventId }, {
    onData: ({ id, data }) => {
      const seenAt = Date.now();
      lastId = id;
      missed += data.missed;
      for (const event of data.events) {
        events.push({ ...event, seenAt });
        let list = byCall.get(event.callId);
        if (!list) byCall.set(event.callId, (list = []));
        list.push(event);
      }
    },
    onError: (error) => { failure = error; },
  });
  return {
    events,
    missed: () => {
      if (failure instanceof Error) throw failure;
      if (failure !== undefined) throw new Error('the subscription failed');
      return missed;
    },
    lastEventId: () => lastId,
    of: (callId) => byCall.get(callId) ?? [],
    close: () => { sub.unsubscribe(); },
  };
}

/** Resolves once `watcher` receives events (a subscription starts from now: calls made before are not in it). */
export async function untilLive(cluster: Cluster, watcher: Subscriber): Promise<void> {
  const probe = `probe-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`;
  await until('the subscription is live', async () => {
    await cluster.api.users.list.query({ limit: 1 }, { context: { transport: 'single', callId: `${probe}-${Date.now()}` } });
    return watcher.events.some((e) => e.callId.startsWith(probe));
  }, cluster.signal);
}

/** Polls until `fn` returns true; fails naming `what` (and `detail()`) after `timeoutMs`. */
export async function until(what: string, fn: () => boolean | Promise<boolean>, signal: AbortSignal, timeoutMs = 15_000, detail: () => string = () => ''): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await fn()) return;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${detail() ? `: ${detail()}` : ''}`);
    await sleep(50, undefined, { signal });
  }
}

/**
 * The sessions of one instance in pg_stat_activity: its pool's (application_name = `applicationName`) and any
 * other it opens under that name with a suffix (`<name>-listen`), through a short-lived observer connection.
 */
export async function sessionsOf(url: string, applicationName: string): Promise<{ state: string; query: string }[]> {
  const sql = postgres(url, { max: 1, onnotice: () => undefined, idle_timeout: 1, connection: { application_name: 'asyncscope-cluster-observer' } });
  try {
    const rows = await sql<{ state: string | null; query: string }[]>`select state, query from pg_stat_activity where application_name = ${applicationName} or starts_with(application_name, ${`${applicationName}-`})`;
    return rows.map((r) => ({ state: r.state ?? 'unknown', query: r.query }));
  } finally {
    await sql.end({ timeout: 2 });
  }
}

export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))] ?? NaN;
}

/** A figure for the test log (CI keeps it): `cluster: <name>: <value>`. */
export function printFigure(name: string, value: string): void {
  process.stdout.write(`cluster figure: ${name}: ${value}\n`);
}
