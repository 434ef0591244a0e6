/**
 * The Runtime's cluster options on a real PostgreSQL, with two Runtimes on one database standing for two
 * instances: every hop names its instance; onHop sees every hop and cannot break a call; activity.events
 * follows runtime.feed (a ClusterFeed) by its ids; activity.stats lists the instances; calls.cancel routes
 * the ids this instance does not hold to remoteCancel and merges the answers, within its deadline.
 */
import { TRPCError } from '@trpc/server';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import type { CancelOutcome } from '@asyncscope/contract';
import { until } from '@asyncscope/concurrency/testing';
import { createTestDatabase, type TestDatabase } from '@asyncscope/db/testing';
import { ClusterFeed } from './activity/cluster-feed';
import type { ActivityEvent } from './activity/log';
import { createInnerContext } from './context';
import { createCaller } from './root';
import { REMOTE_CANCEL_MS, Runtime, type InstanceStats, type RuntimeOptions } from './runtime';
import { TEST_RUNTIME_OPTIONS } from './test-caller';

let t: TestDatabase;
const runtimes: Runtime[] = [];
beforeAll(async () => {
  t = await createTestDatabase(inject('pgAdminUrl'), inject('pgTemplate'), { poolMax: 4, applicationName: 'cluster-options-test' });
});
afterAll(async () => {
  for (const r of runtimes) await r.stop();
  await t[Symbol.asyncDispose]();
});

function runtime(options: Partial<RuntimeOptions> & { instanceId: string }): Runtime {
  const r = new Runtime(t, { ...TEST_RUNTIME_OPTIONS, ...options });
  runtimes.push(r);
  return r;
}
/** `owner`'s caller on `r`; with `callId`, its calls are named so, as a transport names them (CallMeta). */
const as = (r: Runtime, owner = 'alice', signal?: AbortSignal, callId?: string) =>
  createCaller(createInnerContext({ runtime: r, authorized: true, owner, callMeta: callId === undefined ? undefined : { callId } }), signal ? { signal } : {});
const codeOf = (error: unknown) => (error instanceof TRPCError ? error.code : String(error));
const hopsOf = (r: Runtime, callId: string): ActivityEvent[] => r.activity.read(0, 100_000).events.filter((e) => e.callId === callId);

describe('hops', () => {
  it('name their instance, go to onHop in order, and an onHop that throws breaks no call (it is counted)', async () => {
    const seen: ActivityEvent[] = [];
    let calls = 0;
    const r = runtime({
      instanceId: 'host-a:101',
      onHop: (event) => {
        seen.push(event);
        if (++calls % 2 === 0) throw new Error('publisher broke');
      },
    });
    await as(r, 'alice', undefined, 'hop-1').lab.sleep({ ms: 0 });
    const hops = hopsOf(r, 'hop-1');
    expect(hops.length).toBeGreaterThanOrEqual(4);
    expect(new Set(hops.map((e) => e.instance))).toEqual(new Set(['host-a:101']));
    expect(seen.filter((e) => e.callId === 'hop-1')).toEqual(hops);
    expect(hops.at(-1)).toMatchObject({ type: 'settled', code: 'OK' });
    expect(r.hopErrors).toBe(Math.floor(calls / 2));
    expect(r.hopErrors).toBeGreaterThan(0);
  });
});

describe('activity.events reads runtime.feed', () => {
  const feed = new ClusterFeed('js-m1abc');
  const hop = (seq: number, instance: string): ActivityEvent => ({ seq, at: seq, callId: `f${seq}`, path: 'users.byId', instance, type: 'started' });
  let r: Runtime;
  beforeAll(() => {
    r = runtime({ instanceId: 'host-b:202', feed });
    feed.ingest(Array.from({ length: 20 }, (_, i) => hop(i + 1, i % 2 ? 'host-a:101' : 'host-c:303')));
  });

  /** The first batch the subscription yields, then it is closed. */
  async function firstBatch(input: { lastEventId?: string; replay?: boolean }) {
    const controller = new AbortController();
    try {
      const iterable = await as(r, 'alice', controller.signal).activity.events(input);
      for await (const tracked of iterable) return tracked;
      return undefined;
    } finally {
      controller.abort();
    }
  }

  it('resumes by the feed’s ids, whichever instance sent them', async () => {
    const batch = await firstBatch({ lastEventId: 'js-m1abc:12' });
    const [id, data] = batch as unknown as [string, { bootId: string; events: ActivityEvent[]; missed: number }];
    expect(id).toBe('js-m1abc:20');
    expect(data.bootId).toBe('js-m1abc');
    expect(data.events.map((e) => e.seq)).toEqual([13, 14, 15, 16, 17, 18, 19, 20]);
    expect(data.missed).toBe(0);
    // This process's own log is not what it follows.
    expect(r.feed).toBe(feed);
  });

  it('starts over for an id of another stream', async () => {
    const batch = await firstBatch({ lastEventId: 'js-older:5' });
    const [, data] = batch as unknown as [string, { events: ActivityEvent[] }];
    expect(data.events[0]?.seq).toBe(1);
  });

  it('waits for an id this instance has not caught up to (another instance read further), then goes on from it', async () => {
    // The client left an instance that had read up to 22; this one holds 20 so far.
    const next = firstBatch({ lastEventId: 'js-m1abc:22' });
    await new Promise((resolve) => setTimeout(resolve, 50));
    feed.ingest([hop(21, 'host-a:101'), hop(22, 'host-c:303'), hop(23, 'host-a:101')]);
    const [id, data] = (await next) as unknown as [string, { events: ActivityEvent[]; missed: number }];
    expect(data.events.map((e) => e.seq)).toEqual([23]);
    expect(data.missed).toBe(0);
    expect(id).toBe('js-m1abc:23');
  });
});

describe('activity.stats', () => {
  it('lists this instance first (its own gauges), then the cluster’s, and how events travel', async () => {
    const other: InstanceStats = { instance: 'host-z:9', state: 'gone', ageMs: 4000, inFlight: 0, queued: 0, shed: 2, maxInFlight: 50, maxQueue: 10, poolMax: 3, poolBusy: 0, eventLoopDelayMs: 1.5 };
    const local = runtime({ instanceId: 'solo:1' });
    const clustered = runtime({
      instanceId: 'host-y:8',
      clusterInstances: () => [other],
      eventsStatus: () => ({ mode: 'broker', connected: false, published: 10, dropped: 3 }),
    });

    const solo = await as(local).activity.stats();
    expect(solo.instance).toBe('solo:1');
    expect(solo.instances).toEqual([{ instance: 'solo:1', state: 'up', ageMs: 0, inFlight: 0, queued: 0, shed: 0, maxInFlight: 100, maxQueue: 1000, poolMax: 4, poolBusy: 0, eventLoopDelayMs: 0 }]);
    expect(solo.events).toEqual({ mode: 'local', connected: true, published: 0, dropped: 0 });

    // A statement running in the pool shows as busy.
    const sleeping = as(clustered, 'alice', undefined, 'busy-1').lab.sleep({ ms: 1500 });
    await until('the statement runs', () => hopsOf(clustered, 'busy-1').some((e) => e.type === 'statement.started'));
    const stats = await as(clustered).activity.stats();
    expect(stats.instance).toBe('host-y:8');
    expect(stats.instances.map((i) => i.instance)).toEqual(['host-y:8', 'host-z:9']);
    expect(stats.instances[0]).toMatchObject({ state: 'up', inFlight: 1, poolBusy: 1, poolMax: 4 });
    expect(stats.instances[1]).toEqual(other);
    expect(stats.events).toEqual({ mode: 'broker', connected: false, published: 10, dropped: 3 });
    await sleeping;
  });
});

describe('calls.cancel across instances', () => {
  it('routes the ids this instance does not hold to remoteCancel and merges the answers in the order asked', async () => {
    // B is the other instance; A's remoteCancel reaches B's registry, as the broker's request/reply does.
    const b = runtime({ instanceId: 'b' });
    const asked: { owner: string; callIds: string[] }[] = [];
    const a = runtime({
      instanceId: 'a',
      remoteCancel: async (owner, callIds, signal) => {
        asked.push({ owner, callIds });
        const results = await b.cancelCalls(owner, callIds, signal);
        // B knows nothing of 'on-dead-instance': the router would answer that its owner is gone.
        return results.map((o): CancelOutcome => (o.callId === 'on-dead-instance' ? { callId: o.callId, status: 'instance-gone' } : o));
      },
    });
    const onA = as(a, 'alice', undefined, 'on-a').lab.sleep({ ms: 20_000 }).catch(codeOf);
    const onB = as(b, 'alice', undefined, 'on-b').lab.sleep({ ms: 20_000 }).catch(codeOf);
    const bobsOnB = as(b, 'bob', undefined, 'bobs').lab.sleep({ ms: 300 }).catch(codeOf);
    await until('both statements run', () => hopsOf(a, 'on-a').some((e) => e.type === 'statement.started') && hopsOf(b, 'on-b').some((e) => e.type === 'statement.started'));

    const started = performance.now();
    const { results } = await as(a).calls.cancel({ callIds: ['on-b', 'nowhere', 'on-a', 'on-dead-instance', 'bobs'] });
    expect(results).toEqual([
      { callId: 'on-b', status: 'cancelled' },
      { callId: 'nowhere', status: 'unknown' },
      { callId: 'on-a', status: 'cancelled' },
      { callId: 'on-dead-instance', status: 'instance-gone' },
      { callId: 'bobs', status: 'unknown' }, // bob's call: alice's cancel reaches only alice's calls, on any instance
    ]);
    expect(asked).toEqual([{ owner: 'alice', callIds: ['on-b', 'nowhere', 'on-dead-instance', 'bobs'] }]);
    expect(await onA).toBe('CLIENT_CLOSED_REQUEST');
    expect(await onB).toBe('CLIENT_CLOSED_REQUEST');
    expect(performance.now() - started).toBeLessThan(3000);
    expect(await bobsOnB).toEqual({ sleptMs: expect.any(Number) as number });
  });

  it('asks no one when every id is known here', async () => {
    let asked = 0;
    const a = runtime({ instanceId: 'a2', remoteCancel: () => { asked++; return Promise.resolve([]); } });
    await as(a, 'alice', undefined, 'done-here').lab.sleep({ ms: 0 });
    expect((await as(a).calls.cancel({ callIds: ['done-here'] })).results).toEqual([{ callId: 'done-here', status: 'already-settled' }]);
    expect(asked).toBe(0);
  });

  it('leaves the ids unknown when remoteCancel rejects, and within its deadline when it never answers', async () => {
    const failing = runtime({ instanceId: 'a3', remoteCancel: () => Promise.reject(new Error('broker down')) });
    expect((await as(failing).calls.cancel({ callIds: ['x1', 'x2'] })).results).toEqual([
      { callId: 'x1', status: 'unknown' },
      { callId: 'x2', status: 'unknown' },
    ]);

    let given: AbortSignal | undefined;
    // Ignores its signal and never settles: the deadline alone must end the wait.
    const hanging = runtime({ instanceId: 'a4', remoteCancel: (_owner, _ids, signal) => { given = signal; return new Promise<CancelOutcome[]>(() => undefined); } });
    const started = performance.now();
    const { results } = await as(hanging).calls.cancel({ callIds: ['y1'] });
    const took = performance.now() - started;
    expect(results).toEqual([{ callId: 'y1', status: 'unknown' }]);
    expect(took).toBeGreaterThanOrEqual(REMOTE_CANCEL_MS - 50);
    expect(took).toBeLessThan(REMOTE_CANCEL_MS + 1000);
    expect(given?.aborted).toBe(true);
  });
});
