/**
 * The pool and its health check under database faults, on real PostgreSQL: every connection killed under
 * load, a Postgres stopped and started under load (an embedded server of this file's own, so the shared
 * test server is never stopped), and the watchdog that terminates a backend whose statement never came.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { createDbClient, type Db, type DbClient } from './client';
import { startEmbeddedPostgres, type EmbeddedPostgresHandle } from './embedded';
import { isDatabaseUnavailable } from './errors';
import { startDbHealth, type DbHealth } from './health';
import { createTestDatabase, type TestDatabase } from './testing';

async function until(what: string, check: () => boolean | Promise<boolean>, timeoutMs: number): Promise<number> {
  const start = performance.now();
  while (!(await check())) {
    if (performance.now() - start > timeoutMs) throw new Error(`timed out after ${timeoutMs} ms: ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
  return performance.now() - start;
}

interface LoadReport {
  ok: number;
  /** Failures by code (SQLSTATE or driver code). */
  failed: Map<string, number>;
  /** Failures that are not "the database went away" (must stay 0). */
  unexpected: unknown[];
  /** Longest a statement took to settle (a wedge shows as a huge number). */
  slowestMs: number;
}

/**
 * `workers` loops of short statements, each bound (like a server call) to the health check's down
 * signal, until `stop` fires. Bounded: it stops by itself after `maxMs`.
 */
function runLoad(db: DbClient, health: DbHealth, workers: number, stop: AbortSignal, maxMs = 60_000): Promise<LoadReport> {
  const report: LoadReport = { ok: 0, failed: new Map(), unexpected: [], slowestMs: 0 };
  const endAt = performance.now() + maxMs;
  // Half the workers run transactions, as the server's writes do: a transaction holds its connection
  // across statements, where a dying connection hurt most.
  const worker = async (_: unknown, index: number): Promise<void> => {
    const statement: (bound: Db) => PromiseLike<unknown> = index % 2 === 0
      ? (bound) => bound.sql`select pg_sleep(0.005)`
      : (bound) => bound.sql.begin(async (tx) => { await tx`select 1`; await tx`select pg_sleep(0.005)`; });
    while (!stop.aborted && performance.now() < endAt) {
      const started = performance.now();
      if (!health.isReady()) {
        await new Promise((r) => setTimeout(r, 20));
        continue;
      }
      try {
        await statement(db.bind({ signal: health.downSignal }));
        report.ok++;
      } catch (error) {
        const code = (error as { code?: string }).code ?? 'unknown';
        report.failed.set(code, (report.failed.get(code) ?? 0) + 1);
        // 57014: stopped by the down signal (the database went away under it).
        if (!isDatabaseUnavailable(error) && code !== '57014') report.unexpected.push(error);
      }
      report.slowestMs = Math.max(report.slowestMs, performance.now() - started);
    }
  };
  return Promise.all(Array.from({ length: workers }, worker)).then(() => report);
}

describe('every pool connection killed under load (the shared test server)', () => {
  let t: TestDatabase;
  let health: DbHealth;
  let admin: postgres.Sql;
  beforeAll(async () => {
    let nudge = (): void => undefined;
    t = await createTestDatabase(inject('pgAdminUrl'), inject('pgTemplate'), { applicationName: 'health-kill', poolMax: 5, onConnectionLost: () => { nudge(); } });
    health = startDbHealth({ url: t.url, applicationName: 'health-kill', runningStatements: () => t.runningStatements(), probeIntervalMs: 500 });
    nudge = () => { health.nudge(); };
    admin = postgres(t.url, { max: 1, onnotice: () => undefined });
  });
  afterAll(async () => {
    await health.close();
    await admin.end();
    await t[Symbol.asyncDispose]();
  });

  it('20 rounds: no wedge, only connection errors, the pool answers again within seconds each time, readiness stays up', async () => {
    const stop = new AbortController();
    const load = runLoad(t, health, 10, stop.signal);
    const recoveries: number[] = [];
    try {
      for (let round = 0; round < 20; round++) {
        await new Promise((r) => setTimeout(r, 150));
        await admin`select pg_terminate_backend(pid) from pg_stat_activity where application_name = 'health-kill' and datname = current_database()`;
        // Reconnecting forks a backend: typically tens of ms, but over a second on a loaded 2-core machine.
        // A wedged pool does not answer at all, or only after connect_timeout (10 s): 3 s tells them apart.
        recoveries.push(await until('the pool answers after the kill', () => t.sql`select 1`.then(() => true, () => false), 3000));
      }
    } finally {
      stop.abort();
    }
    const report = await load;
    console.log(`kill rounds: ok ${report.ok}, failed ${JSON.stringify(Object.fromEntries(report.failed))}, slowest ${Math.round(report.slowestMs)} ms, recovery max ${Math.round(Math.max(...recoveries))} ms`);
    expect(report.unexpected).toEqual([]);
    expect(report.ok).toBeGreaterThan(100);
    expect(report.slowestMs).toBeLessThan(5000); // a wedge is 10 s (connect_timeout) or forever
    expect(health.isReady()).toBe(true); // the database never went away: a killed connection is not an outage
    await until('no statement left over', () => t.statements().queued === 0 && t.statements().running === 0, 2000);
  });
});

describe('Postgres stopped and started under load (an embedded server of its own)', () => {
  let dir: string;
  let pg: EmbeddedPostgresHandle;
  let db: DbClient;
  let health: DbHealth;
  const changes: { ready: boolean; at: number }[] = [];
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'asyncscope-restart-'));
    pg = await startEmbeddedPostgres({ dataDir: dir });
    let nudge = (): void => undefined;
    db = createDbClient({ url: pg.url, poolMax: 5, statementTimeoutMs: 30_000, applicationName: 'health-restart', connectTimeoutS: 2, onConnectionLost: () => { nudge(); } });
    health = startDbHealth({
      url: pg.url,
      applicationName: 'health-restart',
      runningStatements: () => db.runningStatements(),
      onChange: (ready) => changes.push({ ready, at: performance.now() }),
    });
    nudge = () => { health.nudge(); };
  });
  afterAll(async () => {
    await health.close();
    await db.close(1);
    await pg.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it('2 restarts: readiness follows the database both ways, serving resumes within a second, no wedge', async () => {
    const stop = new AbortController();
    const load = runLoad(db, health, 10, stop.signal);
    const resumedAfter: number[] = [];
    try {
      for (let round = 0; round < 2; round++) {
        await new Promise((r) => setTimeout(r, 300));
        await pg.stop();
        await until('readiness goes false', () => !health.isReady(), 2000);
        await new Promise((r) => setTimeout(r, 300));
        pg = await startEmbeddedPostgres({ dataDir: dir, port: pg.port });
        const up = performance.now();
        await until('readiness comes back', () => health.isReady(), 3000);
        await until('a pooled statement answers', () => db.sql`select 1`.then(() => true, () => false), 3000);
        resumedAfter.push(performance.now() - up);
      }
    } finally {
      stop.abort();
    }
    const report = await load;
    console.log(`restarts: ok ${report.ok}, failed ${JSON.stringify(Object.fromEntries(report.failed))}, slowest ${Math.round(report.slowestMs)} ms, resumed after ${resumedAfter.map(Math.round).join(', ')} ms`);
    expect(report.unexpected).toEqual([]);
    expect(report.slowestMs).toBeLessThan(5000);
    // Typically well under 1 s (probe every 100 ms while down, reconnect backoff ≤ 0.1 s); the rest is slack
    // for starting backends on a loaded machine. A wedged slot never answers (the `until` above fails).
    for (const ms of resumedAfter) expect(ms).toBeLessThan(2500);
    expect(changes.map((c) => c.ready)).toEqual([false, true, false, true]);
    await until('no statement left over', () => db.statements().queued === 0 && db.statements().running === 0, 2000);
  });
});

describe('the watchdog', () => {
  it('terminates the backend of a statement that has been "running" while Postgres shows it idle', async () => {
    await using t = await createTestDatabase(inject('pgAdminUrl'), inject('pgTemplate'), { applicationName: 'watchdog-test', poolMax: 1 });
    const victim = postgres(t.url, { max: 1, onnotice: () => undefined, connection: { application_name: 'watchdog-victim' } });
    try {
      const [row] = await victim<{ pid: number }[]>`select pg_backend_pid() as pid`;
      const pid = row?.pid ?? 0;
      // What a lost write looks like from here: the pool believes the statement runs, its backend waits idle.
      const stalled: number[] = [];
      const health = startDbHealth({
        url: t.url,
        applicationName: 'watchdog-test',
        runningStatements: () => [{ pid, since: performance.now() - 5000 }],
        probeIntervalMs: 50,
        stallMs: 200,
        onStalled: (pids) => stalled.push(...pids),
      });
      try {
        await new Promise((r) => setTimeout(r, 300)); // the backend has been idle longer than stallMs
        await until('the watchdog acts', () => stalled.length > 0, 3000);
        expect(stalled).toEqual([pid]);
        expect(health.stalledTerminated).toBe(1);
        const gone = await t.sql<{ n: number }[]>`select count(*)::int as n from pg_stat_activity where pid = ${pid}`;
        expect(gone[0]?.n).toBe(0);
      } finally {
        await health.close();
      }
    } finally {
      await victim.end({ timeout: 1 });
    }
  });

  it('leaves a statement that really runs alone', async () => {
    await using t = await createTestDatabase(inject('pgAdminUrl'), inject('pgTemplate'), { applicationName: 'watchdog-busy', poolMax: 1 });
    const busy = postgres(t.url, { max: 1, onnotice: () => undefined });
    try {
      const [row] = await busy<{ pid: number }[]>`select pg_backend_pid() as pid`;
      const pid = row?.pid ?? 0;
      // Long enough that a slow event-loop turn cannot make the watch outlast it; cancelled afterwards.
      const sleeping = busy`select pg_sleep(10)`.execute();
      const sleepDone = sleeping.then(() => 'finished', (e: unknown) => (e as { code?: string }).code);
      const stalled: number[] = [];
      const health = startDbHealth({ url: t.url, applicationName: 'watchdog-busy', runningStatements: () => [{ pid, since: performance.now() - 5000 }], probeIntervalMs: 50, stallMs: 100, onStalled: (p) => stalled.push(...p) });
      try {
        await new Promise((r) => setTimeout(r, 600));
      } finally {
        await health.close();
      }
      expect(stalled).toEqual([]);
      sleeping.cancel();
      expect(await sleepDone).toBe('57014'); // it was still running, untouched, until we cancelled it
    } finally {
      await busy.end();
    }
  });
});
