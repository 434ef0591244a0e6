/**
 * Lab faults as rows: two Runtimes (two instances, each its own pool) on one real test database. What one
 * sets, the other applies within a bounded time (NOTIFY); the setter applies it before it answers; a lost
 * LISTEN connection comes back and catches up.
 */
import { createServer, connect, type Server, type Socket } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { createDbClient, type DbClient } from '@asyncscope/db';
import { createTestDatabase, type TestDatabase } from '@asyncscope/db/testing';
import { TRPCError } from '@trpc/server';
import { afterAll, beforeAll, beforeEach, describe, expect, inject, it } from 'vitest';
import { createInnerContext } from '../context';
import { createCaller } from '../root';
import { Runtime } from '../runtime';
import { TEST_RUNTIME_OPTIONS } from '../test-caller';

interface Instance {
  db: DbClient;
  runtime: Runtime;
  caller: ReturnType<typeof createCaller>;
  name: string;
}

let t: TestDatabase;
let second: DbClient;
let a: Instance;
let b: Instance;

function instance(db: DbClient, name: string, lab = true): Instance {
  const runtime = new Runtime(db, { ...TEST_RUNTIME_OPTIONS, lab }).start();
  return { db, runtime, name, caller: createCaller(createInnerContext({ runtime, authorized: true })) };
}

/** Polls (every ms) until `check` holds; the time it took, in ms. Fails after `limitMs`. */
async function within(limitMs: number, what: string, check: () => boolean): Promise<number> {
  const started = performance.now();
  while (!check()) {
    if (performance.now() - started > limitMs) throw new Error(`${what}: not within ${limitMs} ms`);
    await sleep(1);
  }
  return performance.now() - started;
}

const rows = async (): Promise<number> => (await t.sql<{ n: number }[]>`select count(*)::int as n from lab_faults`)[0]?.n ?? -1;

/** The backend of an instance's LISTEN connection (application_name `<pool's>-listen`). */
async function listenBackends(name: string): Promise<number[]> {
  const found = await t.sql<{ pid: number }[]>`
    select pid from pg_stat_activity
    where datname = current_database() and application_name = ${`${name}-listen`} and query ilike 'listen%'`;
  return found.map((row) => row.pid);
}

const loaded = AbortSignal.timeout(10_000);

beforeAll(async () => {
  t = await createTestDatabase(inject('pgAdminUrl'), inject('pgTemplate'), { applicationName: 'faults-a' });
  second = createDbClient({ url: t.url, poolMax: 5, statementTimeoutMs: 30_000, applicationName: 'faults-b' });
  // Every test database starts with no faults: the template's table is empty.
  expect(await rows()).toBe(0);
  a = instance(t, 'faults-a');
  b = instance(second, 'faults-b');
  await Promise.all([a.runtime.faultStore.whenLoaded(loaded), b.runtime.faultStore.whenLoaded(loaded)]);
  // Listening (not only loaded), so the latencies below measure NOTIFY, not the first LISTEN.
  await within(5_000, 'both listening', () => a.runtime.faultStore.counters.listens > 0 && b.runtime.faultStore.counters.listens > 0);
});

afterAll(async () => {
  await a.runtime.stop();
  await b.runtime.stop();
  await second.close(1);
  await t[Symbol.asyncDispose]();
});

beforeEach(async () => {
  await a.caller.lab.clearFaults();
  await within(1_000, 'cleared everywhere', () => Object.keys(b.runtime.faults.all()).length === 0);
});

describe('lab faults shared through Postgres', () => {
  it('start empty', () => {
    expect(a.runtime.faults.all()).toEqual({});
    expect(b.runtime.faults.all()).toEqual({});
  });

  it('a fault set through one instance applies at once there and within 1 s on the other; a clear likewise', async () => {
    const fault = { latencyMs: 0, errorRate: 1 };
    expect(await a.caller.lab.setFaults({ procedure: 'users.list', fault })).toEqual({ 'users.list': fault });
    // The setter: its very next call sees it, no waiting.
    expect(a.runtime.faults.get('users.list')).toEqual(fault);
    const setMs = await within(1_000, 'set seen by the other instance', () => b.runtime.faults.get('users.list') !== undefined);
    expect(b.runtime.faults.get('users.list')).toEqual(fault);
    // The other instance's call path applies it.
    const error: unknown = await b.caller.users.list({ limit: 1 }).catch((e: unknown) => e);
    expect((error as TRPCError).code).toBe('SERVICE_UNAVAILABLE');
    expect((error as TRPCError).message).toMatch(/Injected fault/);
    expect(await b.caller.lab.faults()).toEqual({ 'users.list': fault });

    expect(await b.caller.lab.clearFaults()).toEqual({});
    expect(b.runtime.faults.all()).toEqual({});
    const clearMs = await within(1_000, 'clear seen by the other instance', () => a.runtime.faults.get('users.list') === undefined);
    expect(await a.caller.users.list({ limit: 1 })).toMatchObject({ items: [] });
    console.log(`lab faults across instances: set seen after ${setMs.toFixed(1)} ms, clear after ${clearMs.toFixed(1)} ms`);
  });

  it('a fault of latency 0 and error rate 0 removes the row', async () => {
    await a.caller.lab.setFaults({ procedure: 'users.byId', fault: { latencyMs: 30, errorRate: 0 } });
    expect(await rows()).toBe(1);
    expect(await a.caller.lab.setFaults({ procedure: 'users.byId', fault: { latencyMs: 0, errorRate: 0 } })).toEqual({});
    expect(await rows()).toBe(0);
    await within(1_000, 'removal seen', () => b.runtime.faults.get('users.byId') === undefined);
  });

  it('a storm of notifications costs a few reloads, not one each, and ends on the last state', async () => {
    const before = { ...b.runtime.faultStore.counters };
    const started = performance.now();
    const storm = 300;
    // Each its own transaction (Postgres folds identical notifications within one).
    await Promise.all(Array.from({ length: storm }, () => t.sql`select pg_notify('asyncscope_lab_faults', '')`));
    await a.caller.lab.setFaults({ procedure: 'lab.sleep', fault: { latencyMs: 5, errorRate: 0 } });
    await within(1_000, 'the last change seen', () => b.runtime.faults.get('lab.sleep') !== undefined);
    await within(1_000, 'every notification received', () => b.runtime.faultStore.counters.notifies - before.notifies >= storm + 1);
    await sleep(100); // any reload still due
    const elapsedMs = performance.now() - started;
    const loads = b.runtime.faultStore.counters.loads - before.loads;
    console.log(`lab faults: ${storm + 1} notifications in ${elapsedMs.toFixed(0)} ms → ${loads} reloads`);
    expect(loads).toBeGreaterThanOrEqual(1);
    // At most one reload per 25 ms (MIN_RELOAD_GAP_MS), however many notifications came meanwhile.
    expect(loads).toBeLessThanOrEqual(Math.ceil(elapsedMs / 25) + 1);
    expect(loads).toBeLessThan(storm / 3);
  });

  it('a LISTEN connection that is killed comes back: it catches up on what it missed, and later changes still arrive', async () => {
    const backends = await listenBackends('faults-b');
    expect(backends, 'the LISTEN backend of instance b').toHaveLength(1);
    const pid = backends[0] ?? 0;
    const listens = b.runtime.faultStore.counters.listens;
    // A change b is never told about (no NOTIFY), as if it came while b was away: only the reload on re-LISTEN finds it.
    await t.sql`insert into lab_faults (procedure, latency_ms, error_rate) values ('users.create', 0, 0.5)`;
    await sleep(50);
    expect(b.runtime.faults.get('users.create')).toBeUndefined();
    const [killed] = await t.sql<{ ok: boolean }[]>`select pg_terminate_backend(${pid}) as ok`;
    expect(killed?.ok).toBe(true);

    const backMs = await within(5_000, 'LISTEN again', () => b.runtime.faultStore.counters.listens > listens);
    await within(1_000, 'the missed change loaded', () => b.runtime.faults.get('users.create') !== undefined);
    expect(b.runtime.faults.get('users.create')).toEqual({ latencyMs: 0, errorRate: 0.5 });
    const [again] = await listenBackends('faults-b');
    expect(again).toBeDefined();
    expect(again).not.toBe(pid);

    await a.caller.lab.setFaults({ procedure: 'users.delete', fault: { latencyMs: 0, errorRate: 0.25 } });
    const ms = await within(1_000, 'a later change seen', () => b.runtime.faults.get('users.delete') !== undefined);
    console.log(`lab faults: LISTEN back ${backMs.toFixed(0)} ms after its backend was killed; a later change seen after ${ms.toFixed(1)} ms`);
  });

  it('refuses bad input and writes no row', async () => {
    const bad = [
      { procedure: 'users.nope', fault: { latencyMs: 0, errorRate: 1 } },
      { procedure: 'users.list', fault: { latencyMs: -1, errorRate: 0 } },
      { procedure: 'users.list', fault: { latencyMs: 0, errorRate: 1.5 } },
      { procedure: 'users.list', fault: { latencyMs: 0, errorRate: 0, extra: 1 } },
    ];
    for (const input of bad) {
      const error: unknown = await a.caller.lab.setFaults(input as never).catch((e: unknown) => e);
      expect((error as TRPCError).code, JSON.stringify(input)).toBe('BAD_REQUEST');
    }
    expect(await rows()).toBe(0);
    expect(a.runtime.faults.all()).toEqual({});
  });

  it('with the lab off: FORBIDDEN, no row written, and the rows others set do not apply', async () => {
    const off = instance(t, 'faults-off', false);
    try {
      const caller = off.caller;
      for (const call of [() => caller.lab.setFaults({ procedure: 'users.list', fault: { latencyMs: 0, errorRate: 1 } }), () => caller.lab.clearFaults(), () => caller.lab.faults()]) {
        const error: unknown = await call().catch((e: unknown) => e);
        expect((error as TRPCError).code).toBe('FORBIDDEN');
      }
      expect(await rows()).toBe(0);
      await a.caller.lab.setFaults({ procedure: 'users.list', fault: { latencyMs: 0, errorRate: 1 } });
      expect(off.runtime.faultStore.loaded).toBe(true);
      await sleep(100);
      expect(off.runtime.faults.all()).toEqual({});
      expect(await caller.users.list({ limit: 1 })).toMatchObject({ items: [] });
    } finally {
      await off.runtime.stop();
    }
  });

  it('the database away: SERVICE_UNAVAILABLE, as for any call', async () => {
    // Nothing listens on port 1.
    const url = new URL(t.url);
    url.port = '1';
    const away = createDbClient({ url: url.toString(), poolMax: 1, statementTimeoutMs: 1_000, applicationName: 'faults-away', connectTimeoutS: 2 });
    const runtime = new Runtime(away, TEST_RUNTIME_OPTIONS);
    try {
      const caller = createCaller(createInnerContext({ runtime, authorized: true }));
      for (const call of [() => caller.lab.setFaults({ procedure: 'users.list', fault: { latencyMs: 0, errorRate: 1 } }), () => caller.lab.clearFaults(), () => caller.lab.faults()]) {
        const error: unknown = await call().catch((e: unknown) => e);
        expect(error).toBeInstanceOf(TRPCError);
        expect((error as TRPCError).code).toBe('SERVICE_UNAVAILABLE');
      }
      expect(runtime.faultStore.loaded).toBe(false);
    } finally {
      await runtime.stop();
      await away.close(1);
    }
  });

  it('follows the faults only once followFaultsAfter resolves (the migrations), and stops at once when stopped before', async () => {
    const errors: unknown[] = [];
    let migrated!: () => void;
    const runtime = new Runtime(t, { ...TEST_RUNTIME_OPTIONS, onFaultsError: (error) => { errors.push(error); } }).start({ followFaultsAfter: new Promise<void>((resolve) => { migrated = resolve; }) });
    try {
      await new Promise((r) => setTimeout(r, 300));
      expect(runtime.faultStore.loaded).toBe(false);
      expect(runtime.faultStore.counters.listens).toBe(0);
      migrated();
      await runtime.faultStore.whenLoaded(AbortSignal.timeout(5_000));
      expect(errors).toEqual([]);
    } finally {
      await runtime.stop();
    }
    // Stopped while still waiting: stop() ends at once, nothing is followed.
    const waiting = new Runtime(t, { ...TEST_RUNTIME_OPTIONS }).start({ followFaultsAfter: new Promise<void>(() => undefined) });
    let stopped = false;
    void waiting.stop().then(() => { stopped = true; });
    await within(1_000, 'stop() while waiting for the migrations', () => stopped);
    expect(waiting.faultStore.loaded).toBe(false);
  });

  it('an instance that starts while the database is unreachable loads and follows the faults once it is back', async () => {
    // A port with nothing on it, then a plain TCP relay to the database on that same port.
    const target = new URL(t.url);
    const probe = createServer();
    await new Promise<void>((resolve) => { probe.listen(0, '127.0.0.1', resolve); });
    const { port } = probe.address() as { port: number };
    await new Promise<void>((resolve) => { probe.close(() => { resolve(); }); });
    const url = new URL(t.url);
    url.hostname = '127.0.0.1';
    url.port = String(port);
    const late = createDbClient({ url: url.toString(), poolMax: 2, statementTimeoutMs: 30_000, applicationName: 'faults-late', connectTimeoutS: 2 });
    const errors: unknown[] = [];
    const runtime = new Runtime(late, { ...TEST_RUNTIME_OPTIONS, onFaultsError: (error) => { errors.push(error); } }).start();
    const sockets = new Set<Socket>();
    let relay: Server | undefined;
    try {
      await a.caller.lab.setFaults({ procedure: 'users.update', fault: { latencyMs: 0, errorRate: 1 } });
      await within(2_000, 'a failure reported', () => errors.length > 0);
      expect(runtime.faultStore.loaded).toBe(false);
      relay = createServer((client) => {
        const upstream = connect(Number(target.port || 5432), target.hostname);
        for (const socket of [client, upstream]) {
          sockets.add(socket);
          socket.on('error', () => undefined);
          socket.on('close', () => sockets.delete(socket));
        }
        client.pipe(upstream).pipe(client);
      });
      await new Promise<void>((resolve) => { relay?.listen(port, '127.0.0.1', resolve); });
      await runtime.faultStore.whenLoaded(AbortSignal.timeout(5_000));
      expect(runtime.faults.get('users.update')).toEqual({ latencyMs: 0, errorRate: 1 });
      // Its first LISTEN failed; postgres.js LISTENs again by itself once it can connect.
      await within(5_000, 'listening', () => runtime.faultStore.counters.listens > 0);
      await a.caller.lab.clearFaults();
      await within(1_000, 'a later change seen', () => runtime.faults.get('users.update') === undefined);
      expect(errors.length, 'one report for the run of failures').toBeLessThanOrEqual(2);
    } finally {
      await runtime.stop();
      await late.close(1);
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => { if (relay) relay.close(() => { resolve(); }); else resolve(); });
    }
  });
});
