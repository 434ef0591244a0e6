/**
 * calls.cancel on a real PostgreSQL: a call named by its id is stopped wherever it is — waiting for
 * admission, waiting for a pool connection, running, in a transaction — and the answer says, per id, what
 * became of it. Ids belong to their caller.
 */
import { TRPCError } from '@trpc/server';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { until } from '@asyncscope/concurrency/testing';
import { createTestDatabase, type TestDatabase } from '@asyncscope/db/testing';
import postgres from 'postgres';
import type { ActivityEvent } from '../activity/log';
import { createInnerContext } from '../context';
import { createCaller } from '../root';
import { seedUsers } from '../testing';
import { Runtime } from '../runtime';
import { TEST_RUNTIME_OPTIONS } from '../test-caller';

let t: TestDatabase;
let runtime: Runtime;
/** Looks at pg_stat_activity from outside the pool under test (whose two connections the tests fill). */
let observer: postgres.Sql;
beforeAll(async () => {
  observer = postgres(inject('pgAdminUrl'), { max: 1, onnotice: () => undefined });
  // Two pool connections: a third statement waits for one.
  t = await createTestDatabase(inject('pgAdminUrl'), inject('pgTemplate'), { poolMax: 2, applicationName: 'calls-cancel-test' });
  runtime = new Runtime(t, { ...TEST_RUNTIME_OPTIONS, maxInFlight: 3, maxQueue: 10, maxQueuePerClient: 10 });
});
afterAll(async () => {
  await observer.end();
  await runtime.stop();
  await t[Symbol.asyncDispose]();
});

/** `owner`'s caller; with `callId`, its calls are named so, as a transport names them (CallMeta). */
const as = (owner: string, callId?: string) => createCaller(createInnerContext({ runtime, authorized: true, owner, callMeta: callId === undefined ? undefined : { callId } }));
const hopsOf = (callId: string): ActivityEvent[] => runtime.activity.read(0, 100_000).events.filter((e) => e.callId === callId);
const sleeping = async () =>
  (await observer<{ n: number }[]>`select count(*)::int as n from pg_stat_activity where datname = ${t.name} and query like '%pg_sleep%' and state = 'active' and pid <> pg_backend_pid()`)[0]?.n ?? 0;

const codeOf = (error: unknown) => (error instanceof TRPCError ? error.code : String(error));

describe('calls.cancel', () => {
  it('stops a running statement (57014), one waiting for a pool connection (never sent) and one waiting for admission (never started)', async () => {
    const alice = as('alice');
    const running = [as('alice', 'run-1').lab.sleep({ ms: 20_000 }), as('alice', 'run-2').lab.sleep({ ms: 20_000 })].map((p) => p.catch(codeOf));
    await until('two statements sleeping', async () => (await sleeping()) === 2);
    const poolWait = as('alice', 'pool-wait').lab.sleep({ ms: 20_000 }).catch(codeOf);
    await until('the third call started, waiting for a connection', () => hopsOf('pool-wait').some((e) => e.type === 'started'));
    const admissionWait = as('alice', 'admission-wait').lab.sleep({ ms: 20_000 }).catch(codeOf);
    await until('the fourth call queued for admission', () => hopsOf('admission-wait').some((e) => e.type === 'queued'));

    const started = performance.now();
    const { results } = await alice.calls.cancel({ callIds: ['pool-wait', 'admission-wait', 'run-1'] });
    expect(results).toEqual([
      { callId: 'pool-wait', status: 'cancelled' },
      { callId: 'admission-wait', status: 'cancelled' },
      { callId: 'run-1', status: 'cancelled' },
    ]);
    expect(await poolWait).toBe('CLIENT_CLOSED_REQUEST');
    expect(await admissionWait).toBe('CLIENT_CLOSED_REQUEST');
    expect(await running[0]).toBe('CLIENT_CLOSED_REQUEST');
    await until('one statement left', async () => (await sleeping()) === 1);
    expect(performance.now() - started).toBeLessThan(2000);

    const types = (id: string) => hopsOf(id).map((e) => (e.type === 'signal.fired' ? `signal:${e.reason}` : e.type === 'statement.ended' ? `ended:${e.sqlstate}` : e.type));
    expect(types('run-1')).toEqual(['received', 'started', 'statement.started', 'signal:cancelled', 'cancel.sent', 'ended:57014', 'settled']);
    // Taken out of the driver's queue: Postgres never saw it.
    expect(types('pool-wait')).toEqual(['received', 'started', 'signal:cancelled', 'cancel.sent', 'ended:57014', 'settled']);
    expect(hopsOf('pool-wait').find((e) => e.type === 'cancel.sent')).toMatchObject({ queued: true });
    expect(types('admission-wait')).toEqual(['received', 'queued', 'signal:cancelled', 'settled']);
    expect(hopsOf('admission-wait').at(-1)).toMatchObject({ type: 'settled', code: 'CLIENT_CLOSED_REQUEST' });

    await alice.calls.cancel({ callIds: ['run-2'] });
    expect(await running[1]).toBe('CLIENT_CLOSED_REQUEST');
    await until('every connection idle', async () => (await sleeping()) === 0);
    expect(runtime.calls.size).toBe(0);
  });

  it('rolls back a transaction it stops, and returns the connection', async () => {
    const alice = as('alice');
    await t.sql`truncate lab_writes restart identity`;
    const write = as('alice', 'tx-1').lab.slowWrite({ label: 'cancelled-by-id', ms: 20_000 }).catch(codeOf);
    await until('the transaction sleeping', async () => (await sleeping()) === 1);
    expect((await alice.calls.cancel({ callIds: ['tx-1'] })).results).toEqual([{ callId: 'tx-1', status: 'cancelled' }]);
    expect(await write).toBe('CLIENT_CLOSED_REQUEST');
    expect(hopsOf('tx-1').some((e) => e.type === 'rolled_back')).toBe(true);
    expect((await t.sql<{ n: number }[]>`select count(*)::int as n from lab_writes where label = 'cancelled-by-id'`)[0]?.n).toBe(0);
    // The pool is whole again: both connections serve.
    expect(await Promise.all([alice.lab.sleep({ ms: 0 }), alice.lab.sleep({ ms: 0 })])).toHaveLength(2);
  });

  it('answers per id: cancelled, already-settled, unknown — and never reaches another caller’s call', async () => {
    const alice = as('alice');
    await as('alice', 'done-1').lab.sleep({ ms: 0 });
    const bobs = as('bob', 'shared-id').lab.sleep({ ms: 300 });
    await until('bob’s call started', () => hopsOf('shared-id').some((e) => e.type === 'started'));
    const { results } = await alice.calls.cancel({ callIds: ['done-1', 'shared-id', 'never-was'] });
    expect(results).toEqual([
      { callId: 'done-1', status: 'already-settled' },
      { callId: 'shared-id', status: 'unknown' },
      { callId: 'never-was', status: 'unknown' },
    ]);
    expect(await bobs).toMatchObject({ sleptMs: expect.any(Number) as number }); // ran to the end
  });

  it('refuses a duplicate id in flight with CONFLICT, leaving the first call alone', async () => {
    const first = as('alice', 'dup-1').lab.sleep({ ms: 300 });
    await until('the first call started', () => hopsOf('dup-1').some((e) => e.type === 'started'));
    const error: unknown = await as('alice', 'dup-1').lab.sleep({ ms: 0 }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(TRPCError);
    expect((error as TRPCError).code).toBe('CONFLICT');
    expect((error as TRPCError).message).toMatch(/"dup-1" is already in flight/);
    await expect(first).resolves.toBeDefined();
    expect(hopsOf('dup-1').filter((e) => e.type === 'settled')).toEqual([expect.objectContaining({ code: 'OK' })]);
    // Settled: the id may be used again.
    await expect(as('alice', 'dup-1').lab.sleep({ ms: 0 })).resolves.toBeDefined();
  });

  it('a cancel that arrives before its call (it overtook it on another connection) stops the call unstarted', async () => {
    const alice = as('alice');
    expect((await alice.calls.cancel({ callIds: ['overtaken'] })).results).toEqual([{ callId: 'overtaken', status: 'unknown' }]);
    expect(await as('alice', 'overtaken').lab.sleep({ ms: 5000 }).catch(codeOf)).toBe('CLIENT_CLOSED_REQUEST');
    expect(hopsOf('overtaken').map((e) => e.type)).not.toContain('statement.started');
  });

  it('stops a stream (users.stream) named by its call id', async () => {
    const alice = as('alice');
    await seedUsers(t.sql, 50);
    const stream = await alice.users.stream({ pageSize: 1, callId: 'stream-1' });
    const iterator = stream[Symbol.asyncIterator]();
    await iterator.next();
    expect((await alice.calls.cancel({ callIds: ['stream-1'] })).results).toEqual([{ callId: 'stream-1', status: 'cancelled' }]);
    // The stream fails with how it was stopped, instead of producing the remaining 49 pages (or ending as if whole).
    let more = 0;
    const error: unknown = await (async () => {
      for (let step = await iterator.next(); !step.done && more < 60; step = await iterator.next()) more++;
    })().catch((e: unknown) => e);
    expect(codeOf(error)).toBe('CLIENT_CLOSED_REQUEST');
    expect((error as Error).message).toMatch(/cancelled by its caller/);
    expect(more).toBeLessThan(49);
    expect(hopsOf('stream-1').at(-1)).toMatchObject({ type: 'settled', code: 'CLIENT_CLOSED_REQUEST' });
  });

  it('a stream that comes back under its call id (a resume) replaces the one still held: no CONFLICT, the old one stops', async () => {
    const alice = as('alice');
    const old = (await alice.users.stream({ pageSize: 1, callId: 'resumed' }))[Symbol.asyncIterator]();
    await old.next(); // suspended at its first page: in flight
    const fresh = (await alice.users.stream({ pageSize: 1, callId: 'resumed', lastEventId: '1' }))[Symbol.asyncIterator]();
    expect((await fresh.next()).done).toBe(false);
    expect(codeOf(await old.next().catch((e: unknown) => e))).toBe('CLIENT_CLOSED_REQUEST');
    await fresh.return?.(undefined);
  });

  it('checks its input: ids in the call-id format, 1 to 1000 of them, and the token', async () => {
    const alice = as('alice');
    for (const callIds of [[], ['has space'], ['x'.repeat(129)], Array.from({ length: 1001 }, (_, i) => `c${i}`)]) {
      const error: unknown = await alice.calls.cancel({ callIds }).catch((e: unknown) => e);
      expect(codeOf(error)).toBe('BAD_REQUEST');
    }
    const stranger = createCaller(createInnerContext({ runtime, authorized: false }));
    expect(codeOf(await stranger.calls.cancel({ callIds: ['a'] }).catch((e: unknown) => e))).toBe('UNAUTHORIZED');
  });
});
