/**
 * Kept connections (`poolMin`), on real PostgreSQL: counted in pg_stat_activity by each test's own database.
 * The keeper's schedule alone (when it pings, how many, its back-off) is checked with a counting ping.
 */
import postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { createDbClient } from './client';
import { keepPoolOpen } from './pool-keeper';
import { createTestDatabase, type TestDatabase } from './testing';

let admin: postgres.Sql;
beforeAll(() => { admin = postgres(inject('pgAdminUrl'), { max: 1, onnotice: () => undefined }); });
afterAll(async () => { await admin.end(); });

/** The pool's sessions now (the admin's own is in another database). */
async function connections(db: TestDatabase): Promise<number> {
  const [row] = await admin<{ n: number }[]>`select count(*)::int as n from pg_stat_activity where datname = ${db.name} and backend_type = 'client backend'`;
  return row?.n ?? 0;
}

async function until(what: string, check: () => Promise<boolean>, timeoutMs: number): Promise<number> {
  const start = performance.now();
  while (!(await check())) {
    if (performance.now() - start > timeoutMs) throw new Error(`timed out after ${timeoutMs} ms: ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
  return performance.now() - start;
}

const pause = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

describe('a pool with poolMin', () => {
  it('opens poolMin connections at once, and no more', async () => {
    await using db = await createTestDatabase(inject('pgAdminUrl'), inject('pgTemplate'), { poolMax: 10, poolMin: 4, applicationName: 'keeper-open' });
    await until('4 connections open', async () => (await connections(db)) === 4, 5000);
    await pause(300);
    expect(await connections(db)).toBe(4);
  });

  it('opens none with poolMin 0 (the default) until a statement needs one', async () => {
    await using db = await createTestDatabase(inject('pgAdminUrl'), inject('pgTemplate'), { poolMax: 10, applicationName: 'keeper-none' });
    await pause(300);
    expect(await connections(db)).toBe(0);
    await db.sql`select 1`;
    expect(await connections(db)).toBe(1);
  });

  it('keeps poolMin open past the idle timeout, while the burst\'s extra connections idle out', async () => {
    // idle timeout 1 s: the keeper's rounds come every 500 ms.
    await using db = await createTestDatabase(inject('pgAdminUrl'), inject('pgTemplate'), { poolMax: 10, poolMin: 3, idleTimeoutS: 1, applicationName: 'keeper-idle' });
    await until('3 connections open', async () => (await connections(db)) === 3, 5000);
    await Promise.all(Array.from({ length: 8 }, () => db.sql`select pg_sleep(0.2)`));
    expect(await connections(db)).toBe(8);
    const seen: number[] = [];
    const end = performance.now() + 3000;
    while (performance.now() < end) {
      seen.push(await connections(db));
      await pause(100);
    }
    // The five beyond poolMin closed after their idle second; the kept three never did.
    expect(Math.min(...seen)).toBe(3);
    expect(seen.at(-1)).toBe(3);
  });

  it('opens them again when their backends are terminated: at once on keepOpen(), else at its next round', async () => {
    await using db = await createTestDatabase(inject('pgAdminUrl'), inject('pgTemplate'), { poolMax: 10, poolMin: 5, idleTimeoutS: 2, applicationName: 'keeper-terminated' });
    await until('5 connections open', async () => (await connections(db)) === 5, 5000);
    await admin`select pg_terminate_backend(pid) from pg_stat_activity where datname = ${db.name}`;
    await until('none left', async () => (await connections(db)) === 0, 5000);
    // A round every second (idle timeout 2 s); the first one after the kill finds the sockets closed and fails,
    // the retry 250 ms later opens them.
    const byRound = await until('5 open again by a round of its own', async () => (await connections(db)) === 5, 4000);
    await admin`select pg_terminate_backend(pid) from pg_stat_activity where datname = ${db.name}`;
    await until('none left', async () => (await connections(db)) === 0, 5000);
    await pause(50); // the driver has seen its sockets close
    db.keepOpen();
    const byNudge = await until('5 open again after keepOpen()', async () => (await connections(db)) === 5, 1000);
    console.log(`[keeper] terminated connections reopened by the next round in ${byRound.toFixed(0)} ms, by keepOpen() in ${byNudge.toFixed(0)} ms`);
    expect(await db.sql`select 1 as one`).toEqual([{ one: 1 }]);
  });

  it('refuses a poolMin above poolMax, or not a whole number', () => {
    expect(() => createDbClient({ url: 'postgres://127.0.0.1:1/x', poolMax: 2, poolMin: 3, statementTimeoutMs: 0, applicationName: 'x' })).toThrow(/poolMin must be a whole number from 0 to poolMax \(2\), not 3/);
    expect(() => createDbClient({ url: 'postgres://127.0.0.1:1/x', poolMax: 2, poolMin: 1.5, statementTimeoutMs: 0, applicationName: 'x' })).toThrow(RangeError);
  });

  it('closes at once, with nothing left open, while the database does not answer', async () => {
    // Nothing listens on port 1: every round fails and backs off; close() must not wait for any of it.
    const db = createDbClient({ url: 'postgres://127.0.0.1:1/x', poolMax: 2, poolMin: 2, statementTimeoutMs: 0, applicationName: 'x', connectTimeoutS: 1 });
    await pause(300);
    const start = performance.now();
    await db.close(1);
    expect(performance.now() - start).toBeLessThan(1000);
  });
});

describe('keepPoolOpen (its schedule, with a counting ping)', () => {
  function counting(fail = false) {
    let pings = 0;
    return {
      get pings() { return pings; },
      ping: async () => {
        pings++;
        await pause(1);
        if (fail) throw new Error('refused');
      },
    };
  }

  it('pings min − running connections per round, none while statements wait for a connection', async () => {
    const p = counting();
    let running = 0;
    let queued = 0;
    const keeper = keepPoolOpen({ min: 5, intervalMs: 100, ping: p.ping, running: () => running, queued: () => queued, pingTimeoutMs: 1000 });
    try {
      await until('the first round', () => Promise.resolve(p.pings === 5), 1000);
      running = 3;
      await until('a round of 2', () => Promise.resolve(p.pings === 7), 1000);
      running = 5;
      queued = 1;
      const rounds = keeper.rounds;
      await pause(350);
      expect(p.pings).toBe(7); // busy pool: its connections are open, and a ping would only queue behind a call
      expect(keeper.rounds).toBe(rounds);
    } finally {
      await keeper.close();
    }
  });

  it('backs off after failed rounds, reports each, and runs a round at once on nudge()', async () => {
    const p = counting(true);
    const errors: unknown[] = [];
    const keeper = keepPoolOpen({ min: 1, intervalMs: 60_000, retryMs: 100, ping: p.ping, running: () => 0, queued: () => 0, pingTimeoutMs: 1000, onError: (e) => errors.push(e) });
    try {
      // Rounds at 0, 100, 300 and 700 ms, the next at 1,500.
      await pause(1000);
      expect(keeper.failedRounds).toBe(4);
      expect(errors).toHaveLength(4);
      keeper.nudge();
      await until('a round at once', () => Promise.resolve(keeper.rounds === 5), 200);
    } finally {
      await keeper.close();
    }
  });

  it('cancels the pings of a round in flight when closed', async () => {
    let aborted = 0;
    const keeper = keepPoolOpen({
      min: 3,
      intervalMs: 60_000,
      ping: (signal) => new Promise((_, reject) => { signal.addEventListener('abort', () => { aborted++; reject(signal.reason as Error); }, { once: true }); }),
      running: () => 0,
      queued: () => 0,
      pingTimeoutMs: 60_000,
    });
    await pause(50);
    await keeper.close();
    expect(aborted).toBe(3);
    expect(keeper.failedRounds).toBe(0); // stopped, not failed
  });
});
