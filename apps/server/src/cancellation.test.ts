/**
 * Cancellation end to end, hop by hop: typed client → HTTP → procedure → SQL statement inside Postgres,
 * against the real server and a real PostgreSQL. No mocks.
 */
import { apiErrorCode, createApiClient, type ApiClient } from '@asyncscope/client';
import type { ActivityEvent } from '@asyncscope/api';
import { EventSource } from 'eventsource';
import postgres from 'postgres';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { startTestServer, TEST_TOKEN, type TestServer } from './test-server';
import { until } from '@asyncscope/concurrency/testing';
import { seedUsers } from '@asyncscope/api/testing';
import { abortOnceRunning, cancellationProbe, expectAbortedByCaller, expectCancelledHopByHop, expectPoolReturned, expectRolledBack, expectStoppedAtBudget, failure } from './test/cancellation-probe';

let t: TestServer;
let api: ApiClient;
let observer: postgres.Sql;

beforeAll(async () => {
  t = await startTestServer({ poolMax: 4 });
  api = createApiClient({ url: `${t.url}/trpc`, token: TEST_TOKEN, EventSource });
  observer = postgres(t.database.url, { max: 1, onnotice: () => undefined });
});
afterAll(async () => {
  await observer.end();
  await t.close();
});
beforeEach(async () => {
  await t.database.sql`truncate users, lab_writes restart identity`;
  t.server.runtime.faults.clear();
});

// The same hop-by-hop checks run per transport in cancellation-transports.test.ts (HTTP/2, TLS).
const probe = cancellationProbe(() => t, () => observer);
const { sessions, running, hop } = probe;

describe('a client abort stops the work everywhere', () => {
  it('fires the server signal, cancels the statement inside Postgres (57014), and spares a concurrent canary', async () => {
    const controller = new AbortController();
    const call = failure(api.lab.sleep.query({ ms: 10_000 }, { signal: controller.signal, context: { callId: 'abort-1' } }));
    const canary = api.lab.sleep.query({ ms: 400 }, { context: { callId: 'canary-1', transport: 'single' } });
    await until('the statement runs', async () => (await running('pg_sleep')).length >= 2);
    const abortedAt = performance.now();
    controller.abort();
    expectAbortedByCaller(await call);
    await expectCancelledHopByHop(probe, 'abort-1', abortedAt);

    expect((await canary).sleptMs).toBeGreaterThanOrEqual(400); // the cancel hit the right statement
    expect(hop('canary-1', 'settled')?.code).toBe('OK');
  });

  it('rolls back a cancelled lab.slowWrite: no rows, no session idle in transaction', async () => {
    const error = await abortOnceRunning(probe, (signal) => api.lab.slowWrite.mutate({ label: 'cancelled-write', ms: 10_000 }, { signal, context: { callId: 'write-1' } }));
    expectAbortedByCaller(error);
    await expectRolledBack(probe, observer, 'write-1', 'cancelled-write');
  });

  it('never sends a statement that was still queued for a connection', async () => {
    // Four calls hold the pool's four connections; the fifth waits for one.
    const blockers = [1, 2, 3, 4].map((i) => api.lab.sleep.query({ ms: 600 }, { context: { callId: `blocker-${i}`, transport: 'single' } }));
    await until('the pool is busy', async () => (await running('pg_sleep')).length === 4);
    const controller = new AbortController();
    const call = failure(api.lab.slowWrite.mutate({ label: 'never-sent', ms: 0 }, { signal: controller.signal, context: { callId: 'queued-1' } }));
    await until('the call waits', () => Promise.resolve(t.server.database.client.statements().queued > 0 || undefined));
    controller.abort();
    expectAbortedByCaller(await call);
    await Promise.all(blockers);
    // It settles when its transaction's BEGIN (queued inside postgres.js, out of our reach) gets the connection a
    // blocker freed and its body refuses to run: a few ms after that blocker answered, so waited for.
    expect((await until('its settled hop', () => hop('queued-1', 'settled'))).code).toBe('CLIENT_CLOSED_REQUEST');
    expect(hop('queued-1', 'statement.started')).toBeUndefined();
    expect(await observer`select * from lab_writes where label = 'never-sent'`).toHaveLength(0);
  });

  it('200 concurrent calls, half cancelled at random moments: pool idle afterwards, nothing leaked', async () => {
    const resourcesBefore = process.getActiveResourcesInfo().filter((r) => r !== 'TTYWrap').length;
    const calls = Array.from({ length: 200 }, (_, i) => {
      const controller = new AbortController();
      const promise = failure(api.lab.sleep.query({ ms: 50 + (i % 7) * 40 }, { signal: controller.signal, context: { callId: `mass-${i}` } }));
      if (i % 2 === 0) setTimeout(() => { controller.abort(); }, Math.random() * 300);
      return promise;
    });
    const outcomes = await Promise.all(calls);
    const succeeded = outcomes.filter((o) => o === undefined).length;
    expect(succeeded).toBeGreaterThanOrEqual(100);
    // A call aborted before its request left the client never reaches the server; every other one settles.
    const received = Array.from({ length: 200 }, (_, i) => `mass-${i}`).filter((id) => hop(id, 'received'));
    expect(received.length).toBeGreaterThanOrEqual(100);
    await until('every received call settled on the server', () => Promise.resolve(received.every((id) => hop(id, 'settled')) || undefined));
    await expectPoolReturned(probe, t);
    const answered = performance.now();
    expect((await api.users.list.query()).total).toBe(0);
    // A leaked connection or a stuck queue would make this wait for the call timeout (30 s); a busy CI box
    // can still take a few hundred ms.
    expect(performance.now() - answered).toBeLessThan(1000);
    await until('timers and sockets released', () => Promise.resolve(process.getActiveResourcesInfo().filter((r) => r !== 'TTYWrap').length <= resourcesBefore + 2 || undefined), 3000);
  });
});

describe('deadlines', () => {
  it('stops a call at its 300 ms budget with TIMEOUT, and its statement is gone', async () => {
    await expectStoppedAtBudget(probe, 'budget-1', (deadlineAt) => api.lab.sleep.query({ ms: 2000 }, { context: { callId: 'budget-1', transport: 'single', deadlineAt } }));
    expect(hop('budget-1', 'statement.ended')?.sqlstate).toBe('57014');
    expect(await running('pg_sleep')).toEqual([]);
  });
});

describe('streaming', () => {
  it('a client that stops reading ends the server generator and its query', async () => {
    await seedUsers(t.database.sql, 5000);
    const from = t.server.runtime.activity.lastSeq;
    const pages: number[] = [];
    await new Promise<void>((resolve, reject) => {
      const subscription = api.users.stream.subscribe({ pageSize: 100 }, {
        context: { callId: 'stream-1' },
        onData: (page) => {
          pages.push(page.data.sent);
          if (pages.length === 3) {
            subscription.unsubscribe();
            resolve();
          }
        },
        onError: reject,
      });
    });
    expect(pages).toEqual([100, 200, 300]);
    const settled = await until('the generator finally ran', () => streamSettled(from));
    expect(settled).toMatchObject({ type: 'settled', code: 'CLIENT_CLOSED_REQUEST' });
    await until('no stream query left', async () => (await sessions()).every((s) => s.state === 'idle'));
  });

  it('streams every user of a table in pages, resuming after the last id', async () => {
    await seedUsers(t.database.sql, 1234);
    const ids: number[] = [];
    const states: string[] = [];
    await new Promise<void>((resolve, reject) => {
      // Done at the last id, not at a `sent` count: a reconnect resumes after the last id delivered (no gap, no
      // duplicate, checked below) but counts `sent` afresh. If it does not finish, say where it stood.
      const stuck = setTimeout(() => {
        subscription.unsubscribe();
        void sessions().then(
          (s) => { reject(new Error(`stream stuck after ${ids.length} users (last id ${ids.at(-1) ?? 'none'}); connection states ${states.join(' > ')}; sessions ${JSON.stringify(s)}`)); },
          reject,
        );
      }, 20_000);
      const subscription = api.users.stream.subscribe({ pageSize: 500, lastEventId: '100' }, {
        onConnectionStateChange: (state) => { states.push(state.state + (state.error ? ` (${state.error.message})` : '')); },
        onData: (page) => {
          ids.push(...page.data.items.map((u) => u.id));
          if (ids.at(-1) === 1234) {
            clearTimeout(stuck);
            subscription.unsubscribe();
            resolve();
          }
        },
        onError: (error) => { clearTimeout(stuck); reject(error); },
      });
    });
    expect(ids).toHaveLength(1134);
    expect(ids[0]).toBe(101);
    expect(ids.at(-1)).toBe(1234);
    expect(new Set(ids).size).toBe(1134);
  });
});

function streamSettled(after: number): ActivityEvent | undefined {
  return t.server.runtime.activity.read(after, 100_000).events.find((e) => e.path === 'users.stream' && e.type === 'settled');
}

describe('client links', () => {
  it('an abort of a batched call does not reach the server; an abort of a single call does', async () => {
    const from = t.server.runtime.activity.lastSeq;
    const batched = new AbortController();
    const single = new AbortController();
    // Two calls in one batch (same tick): aborting one of them cannot abort the shared HTTP request.
    const a = failure(api.lab.sleep.query({ ms: 700 }, { signal: batched.signal, context: { transport: 'batch', callId: 'batched-a' } }));
    const b = api.lab.sleep.query({ ms: 700 }, { context: { transport: 'batch', callId: 'batched-b' } });
    const c = failure(api.lab.sleep.query({ ms: 700 }, { signal: single.signal, context: { callId: 'single-1' } }));
    await until('all three run', async () => (await running('pg_sleep')).length === 3);
    const abortedAt = performance.now();
    batched.abort();
    single.abort();
    // The caller of the batched call stops waiting at once (stopWaitingOnAbortLink)...
    expectAbortedByCaller(await a);
    expect(performance.now() - abortedAt).toBeLessThan(200);
    await c;
    await until('single call stopped', () => Promise.resolve(hop('single-1', 'settled')));
    expect(hop('single-1', 'settled')?.code).toBe('CLIENT_CLOSED_REQUEST');
    // ...but the server keeps working for it: both batched statements still run.
    expect((await running('pg_sleep')).length).toBe(2);
    await b;
    // Each call of the batch is named by the id its caller gave (x-call-ids).
    const batchSettled = () => t.server.runtime.activity.read(from, 100_000).events.filter((e) => e.type === 'settled' && e.callId.startsWith('batched-'));
    await until('the batch finishes its work', () => Promise.resolve(batchSettled().length === 2 || undefined));
    expect(batchSettled().map((e) => [e.callId, e.type === 'settled' ? e.code : '']).sort()).toEqual([['batched-a', 'OK'], ['batched-b', 'OK']]);
  });
});

describe('load shedding', () => {
  it('refuses calls beyond the in-flight limit and queue quickly with TOO_MANY_REQUESTS; the rest succeed', async () => {
    await using small = await startTestServer({ maxInFlight: 4, maxQueue: 4 });
    const client = createApiClient({ url: `${small.url}/trpc`, token: TEST_TOKEN });
    const started = performance.now();
    const calls = Array.from({ length: 20 }, (_, i) => {
      const s = performance.now();
      return client.lab.sleep.query({ ms: 300 }, { context: { callId: `shed-${i}`, transport: 'single' } }).then(
        () => ({ ok: true, code: undefined as string | undefined, ms: performance.now() - s }),
        (e: unknown) => ({ ok: false, code: apiErrorCode(e), ms: performance.now() - s }),
      );
    });
    const results = await Promise.all(calls);
    const shed = results.filter((r) => !r.ok);
    const admitted = results.filter((r) => r.ok);
    expect(admitted).toHaveLength(8); // 4 running + 4 queued
    expect(shed).toHaveLength(12);
    for (const r of shed) expect(r.code).toBe('TOO_MANY_REQUESTS');
    // Refused at once: faster than any admitted call, which spends 300 ms inside Postgres.
    expect(Math.max(...shed.map((r) => r.ms))).toBeLessThan(Math.min(...admitted.map((r) => r.ms)));
    expect(small.server.runtime.admission.shed).toBe(12);
    expect(performance.now() - started).toBeLessThan(3000);
  });
});

describe('CPU work off the event loop', () => {
  it('runs in a worker, and a cancel terminates the worker job', async () => {
    const ok = await api.lab.cpu.query({ rounds: 1000 });
    expect(ok.digest).toMatch(/^[0-9a-f]{64}$/);

    const controller = new AbortController();
    const call = failure(api.lab.cpu.query({ rounds: 50_000_000 }, { signal: controller.signal, context: { callId: 'cpu-1' } }));
    await until('the worker runs', () => Promise.resolve(t.server.runtime.cpu.threads > 0 || undefined));
    // The event loop stays free while the worker computes.
    const tick = performance.now();
    await new Promise((r) => setTimeout(r, 10));
    expect(performance.now() - tick).toBeLessThan(200); // a blocked loop would take the whole hash (seconds)
    controller.abort();
    await call;
    const settled = await until('settled', () => hop('cpu-1', 'settled'), 2000);
    expect(settled.code).toBe('CLIENT_CLOSED_REQUEST');
    expect(settled.ms).toBeLessThan(2000);
  });
});

describe('activity.events', () => {
  it('streams hops live and resumes from lastEventId without gaps', async () => {
    const from = t.server.runtime.activity.lastSeq;
    const seen: ActivityEvent[] = [];
    await api.users.list.query(undefined, { context: { callId: 'watched-1', transport: 'single' } });
    await new Promise<void>((resolve, reject) => {
      const sub = api.activity.events.subscribe({ lastEventId: String(from) }, {
        onData: ({ data }) => {
          seen.push(...data.events);
          if (seen.some((e) => e.callId === 'watched-1' && e.type === 'settled')) {
            sub.unsubscribe();
            resolve();
          }
        },
        onError: reject,
      });
    });
    const hops = seen.filter((e) => e.callId === 'watched-1').map((e) => e.type);
    expect(hops[0]).toBe('received');
    expect(hops).toContain('started');
    expect(hops).toContain('statement.started');
    expect(hops.at(-1)).toBe('settled');
    const seqs = seen.map((e) => e.seq);
    expect(seqs[0]).toBe(from + 1);
    expect(seqs.every((s, i) => i === 0 || s === (seqs[i - 1] ?? 0) + 1)).toBe(true);
  });

  it('replays from the start of this boot when resumed with an id from an earlier boot', async () => {
    const seen: ActivityEvent[] = [];
    await new Promise<void>((resolve, reject) => {
      const sub = api.activity.events.subscribe({ lastEventId: 'an-earlier-boot:999999999' }, {
        onData: ({ data }) => {
          seen.push(...data.events);
          sub.unsubscribe();
          resolve();
        },
        onError: reject,
      });
    });
    expect(seen[0]?.seq).toBeLessThanOrEqual(Math.max(1, t.server.runtime.activity.lastSeq - t.server.runtime.activity.capacity + 1));
  });

  it('reports stats: in-flight, pool connections by state, per-second history', async () => {
    const stats = await api.activity.stats.query();
    expect(stats.maxInFlight).toBe(100);
    expect(stats.pool.every((p) => typeof p.state === 'string' && p.count > 0)).toBe(true);
    expect(Array.isArray(stats.history)).toBe(true);
  });
});

describe('faults', () => {
  it('injects latency inside Postgres and errors on ordinary procedures', async () => {
    await api.lab.setFaults.mutate({ procedure: 'users.list', fault: { latencyMs: 300, errorRate: 0 } });
    const started = performance.now();
    await api.users.list.query(undefined, { context: { transport: 'single' } });
    expect(performance.now() - started).toBeGreaterThanOrEqual(290);

    const controller = new AbortController();
    const call = failure(api.users.list.query(undefined, { signal: controller.signal, context: { callId: 'fault-cancel' } }));
    await until('latency runs in Postgres', async () => (await running('pg_sleep')).length > 0);
    controller.abort();
    await call;
    expect((await until('cancelled', () => hop('fault-cancel', 'statement.ended'))).sqlstate).toBe('57014');

    await api.lab.setFaults.mutate({ procedure: 'users.list', fault: { latencyMs: 0, errorRate: 1 } });
    const error = await failure(api.users.list.query());
    expect(apiErrorCode(error)).toBe('SERVICE_UNAVAILABLE');
    expect((error as Error).message).toContain('Injected fault');
  });
});
