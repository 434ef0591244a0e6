/**
 * Two instances on one database and one real nats-server (EVENTS_URL): a subscriber on one sees the other's
 * hops with their instance ids and resumes on the other with the same id; a cancel sent to one stops the
 * other's statement; a cancel for the call of an instance that vanished says so; a broker that stops leaves
 * calls and /readyz alone, and the events resume after it with the gap reported as `missed`.
 */
import { ownerOfToken, type ActivityEvent } from '@asyncscope/api';
import { createApiClient, type ApiClient } from '@asyncscope/client';
import { connectBroker } from '@asyncscope/cluster';
import { startNatsServer, type TestNatsServer } from '@asyncscope/cluster/testing';
import { until } from '@asyncscope/concurrency/testing';
import { EventSource } from 'eventsource';
import pino from 'pino';
import postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestServer, TEST_TOKEN, type TestServer } from './test-server';

/** Another caller (another token): its call ids are its own, even when they spell the same as TEST_TOKEN's. */
const OTHER_TOKEN = 'other-token-0123456789abcdef';
const OWNER = ownerOfToken(TEST_TOKEN);

let nats: TestNatsServer;
let a: TestServer;
let b: TestServer;
let apiA: ApiClient;
let apiB: ApiClient;
let observer: postgres.Sql;

beforeAll(async () => {
  nats = await startNatsServer();
  const events = { url: nats.url, stream: 'TEST_HOPS', maxEvents: 100_000, maxAgeS: 3600 };
  a = await startTestServer({ instanceId: 'node-a', applicationName: 'test-server-a', events, extraApiTokens: [OTHER_TOKEN] });
  b = await startTestServer({ instanceId: 'node-b', applicationName: 'test-server-b', events, database: a.database, extraApiTokens: [OTHER_TOKEN] });
  apiA = createApiClient({ url: `${a.url}/trpc`, token: TEST_TOKEN, EventSource });
  apiB = createApiClient({ url: `${b.url}/trpc`, token: TEST_TOKEN, EventSource });
  observer = postgres(a.database.url, { max: 1, onnotice: () => undefined });
  await until('both linked', () => a.server.events?.broker.status().connected && b.server.events?.broker.status().connected, 15_000);
  await until('both following the stream', () => [a, b].every((t) => t.server.runtime.feed.bootId.startsWith('js-') && t.server.runtime.feed.bootId !== 'js-pending'), 15_000);
});

afterAll(async () => {
  await observer.end();
  await b.close();
  await a.close();
  await nats.dispose();
});

interface Subscription {
  events: ActivityEvent[];
  missed: number;
  lastId: string | undefined;
  stop(): void;
}

function subscribe(api: ApiClient, lastEventId?: string): Subscription {
  const s: Subscription = { events: [], missed: 0, lastId: undefined, stop: () => undefined };
  const sub = api.activity.events.subscribe(lastEventId === undefined ? {} : { lastEventId }, {
    onData: ({ id, data }) => {
      s.events.push(...data.events);
      s.missed += data.missed;
      s.lastId = id;
    },
    onError: (error) => {
      throw error;
    },
  });
  s.stop = () => {
    sub.unsubscribe();
  };
  return s;
}

const settled = (s: Subscription, callId: string) => s.events.some((e) => e.callId === callId && e.type === 'settled');

const sleepingPids = async (applicationName: string) =>
  (await observer<{ pid: number }[]>`select pid from pg_stat_activity where application_name = ${applicationName} and state = 'active' and query like '%pg_sleep%'`).map((r) => r.pid);

function cancelOn(t: TestServer, callIds: string[], token = TEST_TOKEN) {
  return fetch(`${t.url}/trpc/calls.cancel`, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: JSON.stringify({ callIds }),
    signal: AbortSignal.timeout(5000),
  }).then(async (res) => ((await res.json()) as { result?: { data: { results: unknown } } }).result?.data.results);
}

describe('one event stream for the cluster', () => {
  it('a subscriber on A sees the hops of a call on B, then resumes on B with A’s id: no gap, no duplicate', async () => {
    const feedA = a.server.runtime.feed;
    const onA = subscribe(apiA, `${feedA.bootId}:${feedA.lastSeq}`);
    await apiB.users.list.query(undefined, { context: { callId: 'on-b-1', transport: 'single' } });
    await until('A sees B’s call settle', () => settled(onA, 'on-b-1'), 10_000);
    const hops = onA.events.filter((e) => e.callId === 'on-b-1');
    expect(hops.map((e) => e.type)).toEqual(expect.arrayContaining(['received', 'started', 'statement.started', 'settled']));
    expect(hops.every((e) => e.instance === 'node-b')).toBe(true);
    const resumeFrom = onA.lastId;
    expect(resumeFrom).toMatch(/^js-[0-9a-z]+:\d+$/);
    onA.stop();
    const lastSeenOnA = onA.events.at(-1)?.seq ?? 0;

    // Meanwhile, calls on both instances; then the subscriber comes back, to B.
    await apiB.users.list.query(undefined, { context: { callId: 'on-b-2', transport: 'single' } });
    await apiA.users.list.query(undefined, { context: { callId: 'on-a-3', transport: 'single' } });
    const upTo = await until('B’s feed has both', () => {
      const held = b.server.runtime.feed.read(0, 100_000).events;
      return ['on-b-2', 'on-a-3'].every((id) => held.some((e) => e.callId === id && e.type === 'settled')) && b.server.runtime.feed.lastSeq;
    }, 10_000);
    const onB = subscribe(apiB, resumeFrom);
    await until('B replays up to there', () => (onB.events.at(-1)?.seq ?? 0) >= upTo, 10_000);
    onB.stop();
    const seqs = onB.events.map((e) => e.seq);
    expect(seqs[0]).toBe(lastSeenOnA + 1);
    expect(seqs.every((seq, i) => i === 0 || seq === (seqs[i - 1] ?? 0) + 1)).toBe(true);
    expect(onB.missed).toBe(0);
    // Exactly what A holds after that id: the same events, same ids, same instances.
    const onAFeed = a.server.runtime.feed.read(lastSeenOnA, 100_000).events.filter((e) => e.seq <= upTo);
    expect(onB.events.filter((e) => e.seq <= upTo).map((e) => `${e.seq}/${e.callId}/${e.type}/${e.instance}`)).toEqual(
      onAFeed.map((e) => `${e.seq}/${e.callId}/${e.type}/${e.instance}`),
    );
    expect(new Set(onB.events.filter((e) => e.callId === 'on-a-3').map((e) => e.instance))).toEqual(new Set(['node-a']));
    // Each instance lists the other, with its gauges.
    const stats = await apiA.activity.stats.query();
    expect(stats.instance).toBe('node-a');
    expect(stats.events).toMatchObject({ mode: 'broker', connected: true });
    await until('A lists B', async () => (await apiA.activity.stats.query()).instances.some((i) => i.instance === 'node-b' && i.state === 'up'), 5_000);
  });

  it('a cancel sent to A stops B’s statement and answers cancelled', async () => {
    const call = apiB.lab.sleep.query({ ms: 15_000 }, { context: { callId: 'sleep-on-b', transport: 'single' } }).then(
      () => 'finished',
      (error: unknown) => (error as { data?: { code?: string } }).data?.code ?? String(error),
    );
    const [pid] = await until('B’s statement running', async () => {
      const pids = await sleepingPids('test-server-b');
      return pids.length === 1 && pids;
    }, 10_000);
    await until('A knows the owner', () => a.server.events?.feed.instanceOf(OWNER, 'sleep-on-b') === 'node-b', 5_000);
    const t0 = performance.now();
    expect(await cancelOn(a, ['sleep-on-b'])).toEqual([{ callId: 'sleep-on-b', status: 'cancelled' }]);
    const ms = performance.now() - t0;
    expect(await call).toBe('CLIENT_CLOSED_REQUEST');
    await until('its statement gone', async () => !(await sleepingPids('test-server-b')).includes(pid ?? -1), 2_000);
    await until('its hops say so', () => {
      const hops = b.server.runtime.activity.read(0, 100_000).events.filter((e) => e.callId === 'sleep-on-b');
      return hops.some((e) => e.type === 'signal.fired' && e.reason === 'cancelled') && hops.some((e) => e.type === 'statement.ended' && e.sqlstate === '57014');
    });
    // Asked again: the owner answers from its registry.
    expect(await cancelOn(a, ['sleep-on-b', 'nobody-has-this'])).toEqual([
      { callId: 'sleep-on-b', status: 'already-settled' },
      { callId: 'nobody-has-this', status: 'unknown' },
    ]);
    console.log(`FIGURES cross-instance cancel answered in ${ms.toFixed(1)} ms`);
  });

  it('owners are per caller: another caller’s call with the same id elsewhere does not redirect the cancel', async () => {
    const apiOtherA = createApiClient({ url: `${a.url}/trpc`, token: OTHER_TOKEN, EventSource });
    const outcome = (p: Promise<unknown>) => p.then(() => 'finished', (error: unknown) => (error as { data?: { code?: string } }).data?.code ?? String(error));
    const mine = outcome(apiB.lab.sleep.query({ ms: 15_000 }, { context: { callId: 'same-id', transport: 'single' } }));
    await until('A knows mine is on B', () => a.server.events?.feed.instanceOf(OWNER, 'same-id') === 'node-b', 10_000);
    // Then the other caller's call with that id, on A itself: its hops are the newest for 'same-id'.
    const theirs = outcome(apiOtherA.lab.sleep.query({ ms: 15_000 }, { context: { callId: 'same-id', transport: 'single' } }));
    await until('A has seen theirs', () => a.server.events?.feed.instanceOf(ownerOfToken(OTHER_TOKEN), 'same-id') === 'node-a', 10_000);
    expect(await cancelOn(a, ['same-id'])).toEqual([{ callId: 'same-id', status: 'cancelled' }]);
    expect(await mine).toBe('CLIENT_CLOSED_REQUEST');
    expect(await cancelOn(a, ['same-id'], OTHER_TOKEN)).toEqual([{ callId: 'same-id', status: 'cancelled' }]);
    expect(await theirs).toBe('CLIENT_CLOSED_REQUEST');
  });

  it('a cancel sent to a non-owner before the call’s hops can have reached it still stops the call', async () => {
    const outcome = (p: Promise<unknown>) => p.then(() => 'finished', (error: unknown) => (error as { data?: { code?: string } }).data?.code ?? String(error));
    // Back to back: the call to B, the cancel to A at once (A cannot know the owner yet).
    const call = outcome(apiB.lab.sleep.query({ ms: 15_000 }, { context: { callId: 'race-1', transport: 'single' } }));
    const answer = await cancelOn(a, ['race-1']);
    expect([[{ callId: 'race-1', status: 'cancelled' }], [{ callId: 'race-1', status: 'unknown' }]]).toContainEqual(answer);
    const t0 = performance.now();
    expect(await call).toBe('CLIENT_CLOSED_REQUEST');
    expect(performance.now() - t0).toBeLessThan(5_000);
    // The cancel first, then the call within a second: remembered by B's registry as an early cancel.
    expect(await cancelOn(a, ['race-2'])).toEqual([{ callId: 'race-2', status: 'unknown' }]);
    const t1 = performance.now();
    expect(await outcome(apiB.lab.sleep.query({ ms: 15_000 }, { context: { callId: 'race-2', transport: 'single' } }))).toBe('CLIENT_CLOSED_REQUEST');
    expect(performance.now() - t1).toBeLessThan(5_000);
    await until('no statement of theirs left', async () => (await sleepingPids('test-server-b')).length === 0, 3_000);
  });
});

describe('the broker down', () => {
  it('calls go on, /readyz stays ready, stats say so; after it, events resume with the gap as missed', async () => {
    const onA = subscribe(apiA);
    await apiB.users.list.query(undefined, { context: { callId: 'before-stop', transport: 'single' } });
    await until('seen', () => settled(onA, 'before-stop'), 10_000);
    const resumeId = onA.lastId ?? '';
    const resumeSeq = Number(resumeId.split(':')[1]);
    const droppedBefore = (a.server.events?.broker.status().dropped ?? 0) + (b.server.events?.broker.status().dropped ?? 0);
    await nats.stop();
    await until('both see it down', () => !a.server.events?.broker.status().connected && !b.server.events?.broker.status().connected, 10_000);
    for (let i = 0; i < 5; i++) {
      await apiA.users.list.query(undefined, { context: { callId: `down-a-${i}`, transport: 'single' } });
      await apiB.users.list.query(undefined, { context: { callId: `down-b-${i}`, transport: 'single' } });
    }
    expect((await fetch(`${a.url}/readyz`)).status).toBe(200);
    expect((await fetch(`${b.url}/readyz`)).status).toBe(200);
    const stats = await apiA.activity.stats.query();
    expect(stats.events.connected).toBe(false);
    expect(stats.events.dropped).toBeGreaterThan(0);
    const dropped = (a.server.events?.broker.status().dropped ?? 0) + (b.server.events?.broker.status().dropped ?? 0) - droppedBefore;
    expect(dropped).toBeGreaterThanOrEqual(10); // at least 'received' and 'settled' of each call

    // An instance that starts while the broker is down starts and serves all the same; credentials in
    // EVENTS_URL never reach its log.
    const lines: string[] = [];
    const t0 = performance.now();
    const c = await startTestServer({
      instanceId: 'node-c',
      applicationName: 'test-server-c',
      database: a.database,
      events: { url: nats.url.replace('nats://', 'nats://operator:s3cret-pass@'), stream: 'TEST_HOPS', maxEvents: 100_000, maxAgeS: 3600 },
      log: pino({ level: 'info' }, { write: (line: string) => lines.push(line) }),
    });
    const startMs = performance.now() - t0;
    try {
      expect(startMs).toBeLessThan(5_000);
      expect((await fetch(`${c.url}/readyz`)).status).toBe(200);
      const apiC = createApiClient({ url: `${c.url}/trpc`, token: TEST_TOKEN, EventSource });
      await apiC.users.list.query(undefined, { context: { callId: 'on-c-down', transport: 'single' } });
      // A client resuming with A's id on C, which has not learned its stream yet: it waits for it, then resumes.
      const onC = subscribe(apiC, resumeId);
      await until('C says the broker is unreachable', () => lines.some((l) => l.includes('"level":40') && l.includes('events broker unreachable')), 5_000);
      await restartAndCheck(onA, dropped + (c.server.events?.broker.status().dropped ?? 0));
      await until('C linked', () => c.server.events?.broker.status().connected, 10_000);
      await until('C follows the stream', () => c.server.runtime.feed.read(0, 100_000).events.some((e) => e.callId === 'after-restart'), 10_000);
      await until('the subscriber on C gets the call after the restart', () => settled(onC, 'after-restart'), 10_000);
      onC.stop();
      const seqsOnC = onC.events.map((e) => e.seq);
      expect(seqsOnC.filter((seq) => seq <= resumeSeq)).toEqual([]);
      expect(new Set(seqsOnC).size).toBe(seqsOnC.length);
      expect(lines.some((l) => l.includes('"level":30') && l.includes('events broker connected'))).toBe(true);
      expect(lines.join('\n')).not.toContain('s3cret-pass');
      expect(lines.join('\n')).toContain(`nats://127.0.0.1:${nats.port}`);
      // Its own stop closes the connection too, with the broker up: not an outage to warn about.
      const warnsBefore = lines.filter((l) => l.includes('events broker unreachable')).length;
      await c.close();
      expect(lines.filter((l) => l.includes('events broker unreachable')).length).toBe(warnsBefore);
    } finally {
      await c.close();
    }
    onA.stop();
  }, 60_000);
});

/** Starts the broker again: the subscriber on A gets the next call, and gap markers for exactly `dropped` hops. */
async function restartAndCheck(onA: Subscription, dropped: number): Promise<void> {
  await nats.start();
  await until('both back', () => a.server.events?.broker.status().connected && b.server.events?.broker.status().connected, 15_000);
  await apiB.users.list.query(undefined, { context: { callId: 'after-restart', transport: 'single' } });
  await until('the subscriber on A gets the call after the restart', () => settled(onA, 'after-restart'), 15_000);
  await until('and every gap marker', () => onA.missed === dropped, { timeoutMs: 5_000, context: () => JSON.stringify({ missed: onA.missed, dropped }) });
  expect(onA.events.some((e) => e.callId.startsWith('down-') || e.callId === 'on-c-down')).toBe(false);
  const seqs = onA.events.map((e) => e.seq);
  expect(new Set(seqs).size).toBe(seqs.length);
}

describe('an owner that does not answer', () => {
  it('while presence still lists it up, is unknown — not instance-gone (a blip of its link is not a death)', async () => {
    // A real cluster member, up in presence, whose hops name a call of ours, but that serves no cancels.
    const mute = connectBroker({ url: nats.url, instanceId: 'node-mute', stream: 'TEST_HOPS', subjectPrefix: 'asyncscope', maxEvents: 100_000, maxAgeMs: 3_600_000, maxBuffered: 100 });
    try {
      await until('linked', () => mute.status().connected, 10_000);
      const hop: ActivityEvent = { seq: 1, at: Date.now(), callId: 'muted-call', path: 'lab.sleep', instance: 'node-mute', type: 'received', budgetMs: 15_000 };
      mute.publish({ ...hop, owner: OWNER });
      await until('A knows the owner', () => a.server.events?.feed.instanceOf(OWNER, 'muted-call') === 'node-mute', 5_000);
      await until('A lists it up', () => {
        mute.announce({});
        return a.server.events?.broker.instances().some((p) => p.instance === 'node-mute' && p.state === 'up');
      }, 5_000);
      expect(await cancelOn(a, ['muted-call'])).toEqual([{ callId: 'muted-call', status: 'unknown' }]);
      // Gone from presence too: now it is instance-gone.
      await mute.withdraw(AbortSignal.timeout(2_000));
      await until('A lists it gone', () => a.server.events?.broker.instances().every((p) => p.instance !== 'node-mute' || p.state === 'gone'), 5_000);
      expect(await cancelOn(a, ['muted-call'])).toEqual([{ callId: 'muted-call', status: 'instance-gone' }]);
    } finally {
      await mute.close(AbortSignal.timeout(2_000));
    }
  });
});

describe('an instance that vanished', () => {
  it('a cancel for a call it was running answers instance-gone', async () => {
    // In-process, B's link to the cluster dies (as with SIGKILL, nobody answers for B any more) while its call
    // still runs here; the real SIGKILL is in the cluster integration test (apps/cluster).
    const call = apiB.lab.sleep.query({ ms: 15_000 }, { context: { callId: 'orphan', transport: 'single' } }).catch(() => 'stopped');
    await until('running', async () => (await sleepingPids('test-server-b')).length === 1, 10_000);
    await until('A knows the owner', () => a.server.events?.feed.instanceOf(OWNER, 'orphan') === 'node-b', 5_000);
    await b.server.events?.broker.close();
    // Gone once presence agrees (a graceful close says goodbye at once; a kill takes 3 s of silence).
    await until('A lists B gone', async () => (await apiA.activity.stats.query()).instances.every((i) => i.instance !== 'node-b' || i.state === 'gone'), 5_000);
    expect(await cancelOn(a, ['orphan'])).toEqual([{ callId: 'orphan', status: 'instance-gone' }]);
    // Another caller asking for the same id learns nothing of it: not its call.
    expect(await cancelOn(a, ['orphan'], OTHER_TOKEN)).toEqual([{ callId: 'orphan', status: 'unknown' }]);
    // Stop it here for the cleanup (B's own registry still has it).
    expect(await cancelOn(b, ['orphan'])).toEqual([{ callId: 'orphan', status: 'cancelled' }]);
    await call;
  });
});
