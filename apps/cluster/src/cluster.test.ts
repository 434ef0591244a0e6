/**
 * Three instances behind HAProxy, one PostgreSQL, one nats-server: one system. Calls through the balancer
 * spread over every instance, and whatever instance a dashboard is connected to sees all of them; a cancel
 * reaches the call's owner wherever it lands; a fault set through one instance holds on all.
 */
import { apiErrorCode } from '@asyncscope/client';
import type { CancelOutcome } from '@asyncscope/contract';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { percentile, printFigure, sessionsOf, skipReason, startCluster, subscribe, until, untilLive, type Cluster } from './test-cluster';

describe.skipIf(skipReason !== false)('three instances behind HAProxy', () => {
  let cluster: Cluster;
  beforeAll(async () => { cluster = await startCluster(3); }, 90_000);
  afterAll(async () => { await cluster[Symbol.asyncDispose](); });

  const nth = (i: number) => {
    const instance = cluster.instances.list()[i];
    if (!instance) throw new Error(`no instance ${i}`);
    return instance;
  };

  it('spreads 200 calls over all instances, and a subscriber on one instance receives the hops of all 200', async () => {
    const { signal } = cluster;
    const watcher = subscribe(cluster.direct(nth(0)));
    try {
      await untilLive(cluster, watcher);
      const ids = Array.from({ length: 200 }, (_, i) => `spread-${i}`);
      // 20 at a time: each a new request through the balancer (leastconn spreads connections).
      for (let i = 0; i < ids.length; i += 20) {
        await Promise.all(ids.slice(i, i + 20).map((callId) => cluster.api.users.list.query({ limit: 1 }, { context: { transport: 'single', callId } })));
      }
      await until('every call settled, as seen on one instance', () => ids.every((id) => watcher.of(id).some((h) => h.type === 'settled')), signal, 15_000, () => `${ids.filter((id) => !watcher.of(id).some((h) => h.type === 'settled')).length} not seen`);
      const owners = new Map<string, number>();
      for (const id of ids) {
        const instances = new Set(watcher.of(id).map((h) => h.instance));
        // A call's hops all come from the one instance that served it.
        expect(instances.size).toBe(1);
        const [owner] = instances;
        owners.set(String(owner), (owners.get(String(owner)) ?? 0) + 1);
      }
      expect([...owners.keys()].sort()).toEqual(cluster.instances.list().map((i) => i.id).sort());
      printFigure('200 calls by instance', [...owners].map(([id, n]) => `${id} ${n}`).join(', '));
      expect(watcher.missed()).toBe(0);

      // Fan-out latency: from a hop's `at` (its instance's clock, the same machine's) to its arrival at a
      // subscriber connected to another instance.
      const remote = watcher.events.filter((e) => ids.includes(e.callId) && e.instance !== nth(0).id).map((e) => e.seenAt - e.at);
      printFigure('event fan-out latency (hop at → subscriber on another instance)', `p50 ${percentile(remote, 50)} ms, p99 ${percentile(remote, 99)} ms (${remote.length} events)`);
    } finally {
      watcher.close();
    }
  });

  it('stops the right statements when cancels go to arbitrary instances', async () => {
    const { signal } = cluster;
    const watcher = subscribe(cluster.direct(nth(1)));
    try {
      await untilLive(cluster, watcher);
      const ids = Array.from({ length: 24 }, (_, i) => `sleeper-${i}`);
      const outcomes = ids.map((callId) =>
        cluster.api.lab.sleep.query({ ms: 20_000 }, { context: { transport: 'single', callId } }).then(
          () => 'finished',
          (error: unknown) => ({ code: apiErrorCode(error), at: performance.now() }),
        ),
      );
      await until('every sleeper runs its statement', () => ids.every((id) => watcher.of(id).some((h) => h.type === 'statement.started')), signal, 20_000, () =>
        ids.filter((id) => !watcher.of(id).some((h) => h.type === 'statement.started')).map((id) => `${id}: ${watcher.of(id).map((h) => h.type).join(' ')}`).join('; '));
      const ownerOf = (id: string) => watcher.of(id)[0]?.instance;
      const running = async () => {
        const all = await Promise.all(cluster.instances.list().map((i) => sessionsOf(cluster.db.url, i.applicationName)));
        return all.flat().filter((s) => s.state === 'active' && s.query.includes('pg_sleep')).length;
      };
      expect(await running()).toBe(ids.length);

      // Each cancel to an instance that does not own the call (the next one after its owner).
      const list = cluster.instances.list();
      const sentAt = new Map<string, number>();
      const answeredAt = new Map<string, number>();
      // One at a time: the latency of one cancel, not of a burst's queue.
      const results: (CancelOutcome | undefined)[] = [];
      for (const [k, callId] of ids.entries()) results.push(await (async () => {
        const owner = list.findIndex((i) => i.id === ownerOf(callId));
        const via = list[(owner + 1 + (k % 2)) % list.length] ?? list[0];
        if (!via) throw new Error('no instance');
        sentAt.set(callId, performance.now());
        const answer = (await cluster.direct(via).calls.cancel.mutate({ callIds: [callId] })).results[0];
        answeredAt.set(callId, performance.now());
        return answer;
      })());
      expect(results.map((r) => r?.status)).toEqual(ids.map(() => 'cancelled'));
      const settled = await Promise.all(outcomes);
      for (const outcome of settled) expect(outcome).toMatchObject({ code: 'CLIENT_CLOSED_REQUEST' });
      const latencies = settled.map((o, k) => (typeof o === 'string' ? NaN : o.at - (sentAt.get(ids[k] ?? '') ?? NaN)));
      const answered = ids.map((id) => (answeredAt.get(id) ?? NaN) - (sentAt.get(id) ?? NaN));
      printFigure('cross-instance cancel answered (sent to a non-owner → its answer)', `p50 ${Math.round(percentile(answered, 50))} ms, p99 ${Math.round(percentile(answered, 99))} ms`);
      printFigure('cross-instance cancel latency (cancel sent to a non-owner → the call ended at its client)', `p50 ${Math.round(percentile(latencies, 50))} ms, p99 ${Math.round(percentile(latencies, 99))} ms (${latencies.length} calls)`);
      await until('no sleeper statement left in Postgres', async () => (await running()) === 0, signal, 5000);
    } finally {
      watcher.close();
    }
  });

  it('applies a fault set through one instance to calls on every instance', async () => {
    const { signal } = cluster;
    await cluster.direct(nth(1)).lab.setFaults.mutate({ procedure: 'users.list', fault: { latencyMs: 0, errorRate: 1 } });
    try {
      for (const instance of cluster.instances.list()) {
        await until(`${instance.id} fails users.list`, async () => {
          const code = await cluster.direct(instance).users.list.query({ limit: 1 }, { context: { transport: 'single' } }).then(() => 'ok', (error: unknown) => apiErrorCode(error));
          return code === 'SERVICE_UNAVAILABLE';
        }, signal, 5000);
      }
    } finally {
      await cluster.direct(nth(2)).lab.setFaults.mutate({ procedure: 'users.list', fault: { latencyMs: 0, errorRate: 0 } });
    }
    for (const instance of cluster.instances.list()) {
      await until(`${instance.id} serves users.list again`, async () => {
        const code = await cluster.direct(instance).users.list.query({ limit: 1 }, { context: { transport: 'single' } }).then(() => 'ok', (error: unknown) => apiErrorCode(error));
        return code === 'ok';
      }, signal, 5000);
    }
  });

  it('resumes across instances: disconnected from A, reconnected to B with lastEventId, exactly the events in between', async () => {
    const { signal } = cluster;
    const reference = subscribe(cluster.direct(nth(2)));
    const a = subscribe(cluster.direct(nth(0)));
    let b: ReturnType<typeof subscribe> | undefined;
    try {
      const call = (callId: string) => cluster.api.users.list.query({ limit: 1 }, { context: { transport: 'single', callId } });
      await untilLive(cluster, reference);
      await untilLive(cluster, a);
      await Promise.all(Array.from({ length: 20 }, (_, i) => call(`before-${i}`)));
      await until('A saw the first calls', () => Array.from({ length: 20 }, (_, i) => `before-${i}`).every((id) => a.of(id).some((h) => h.type === 'settled')), signal);
      a.close();
      const lastId = a.lastEventId();
      if (lastId === undefined) throw new Error('A received no batch');
      const lastSeq = Number(lastId.split(':').at(-1));
      // Events made while disconnected. A call's answer can reach its client before its last hops have gone
      // through the broker: wait until the reference has them all, so `upTo` covers them.
      const between = Array.from({ length: 20 }, (_, i) => `between-${i}`);
      await Promise.all(between.map((id) => call(id)));
      await until('the reference saw the calls in between settle', () => between.every((id) => reference.of(id).some((h) => h.type === 'settled')), signal);
      b = subscribe(cluster.direct(nth(1)), { lastEventId: lastId });
      const sub = b;
      await until('B caught up with the reference', () => {
        const last = reference.events.at(-1)?.seq ?? 0;
        return sub.events.some((e) => e.seq >= last);
      }, signal);
      const upTo = reference.events.at(-1)?.seq ?? 0;
      const key = (e: { seq: number; callId: string; type: string; instance: string }) => `${e.seq}|${e.callId}|${e.type}|${e.instance}`;
      const expected = reference.events.filter((e) => e.seq > lastSeq && e.seq <= upTo).map(key);
      const got = sub.events.filter((e) => e.seq <= upTo).map(key);
      expect(got).toEqual(expected);
      expect(sub.events.every((e) => e.seq > lastSeq)).toBe(true);
      expect(sub.missed()).toBe(0);
      // The calls made in between are all there.
      expect(between.filter((id) => !sub.of(id).some((h) => h.type === 'settled'))).toEqual([]);
    } finally {
      a.close();
      b?.close();
      reference.close();
    }
  });
});
