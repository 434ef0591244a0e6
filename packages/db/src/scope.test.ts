import { sql as dsql } from 'drizzle-orm';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import postgres from 'postgres';
import { afterAll, beforeAll, beforeEach, describe, expect, inject, it, vi } from 'vitest';
import { createTestDatabase, type TestDatabase } from './testing';
import type { DbEvent } from './scope';
import { CommitOutcomeUnknownError, isDatabaseUnavailable, sqlState } from './errors';
import { users } from './schema';
import { PIPELINED_READ, type Db } from './client';

let t: TestDatabase;
let observer: postgres.Sql;
beforeAll(async () => {
  t = await createTestDatabase(inject('pgAdminUrl'), inject('pgTemplate'), { applicationName: 'scope-test', poolMax: 3 });
  observer = postgres(t.url, { max: 1, connection: { application_name: 'scope-observer' } });
});
afterAll(async () => {
  await observer.end();
  await t[Symbol.asyncDispose]();
});
beforeEach(async () => { await t.sql`truncate users restart identity`; });

interface Activity { pid: number; state: string; query: string; wait_event: string | null }
const activity = () =>
  observer<Activity[]>`select pid, state, query, wait_event from pg_stat_activity where application_name = 'scope-test' and datname = current_database()`;

async function until(what: string, check: () => Promise<boolean>, timeoutMs = 5000): Promise<number> {
  const start = performance.now();
  while (!(await check())) {
    if (performance.now() - start > timeoutMs) throw new Error(`timed out: ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
  return performance.now() - start;
}

/** `fn` run on a handle bound to a scope of its own (DbClient.bind): its signal, and the hops it reported. */
function scoped<T>(fn: (db: Db) => PromiseLike<T>, client: Pick<TestDatabase, 'bind'> = t) {
  const controller = new AbortController();
  const events: DbEvent[] = [];
  const promise = Promise.resolve(fn(client.bind({ signal: controller.signal, onEvent: (e) => events.push(e) })));
  promise.catch(() => undefined);
  return { controller, events, promise };
}

describe('query scope cancellation', () => {
  it('cancels a running statement inside Postgres, and only that one', async () => {
    const call = scoped((db) => db.sql`select pg_sleep(10) as slept`);
    const canary = t.sql`select pg_sleep(0.3), 'canary' as name`;
    await until('the statement runs', async () => (await activity()).some((a) => a.state === 'active' && a.query.includes('pg_sleep(10)')));
    call.controller.abort(new Error('user left'));
    await expect(call.promise).rejects.toMatchObject({ code: '57014' });
    const gone = await until('the statement leaves pg_stat_activity', async () => !(await activity()).some((a) => a.state === 'active' && a.query.includes('pg_sleep(10)')));
    // Not cancelled, it would sleep 10 s; the bound leaves room for a loaded machine's pg_stat_activity polls.
    expect(gone).toBeLessThan(2000);
    expect((await canary)[0]?.name).toBe('canary');
    expect((await t.sql`select 1 as one`)[0]?.one).toBe(1); // the pool answers at once
    const types = call.events.map((e) => e.type);
    expect(types).toEqual(['statement.queued', 'statement.started', 'cancel.sent', 'statement.ended']);
    const started = call.events[1] as Extract<DbEvent, { type: 'statement.started' }>;
    expect(started.pid).toBeGreaterThan(0);
    expect(call.events[3]).toMatchObject({ sqlstate: '57014', pid: started.pid });
    expect(t.statements()).toEqual({ queued: 0, running: 0 });
  });

  it('cancels drizzle queries too (made through the bound handle)', async () => {
    const call = scoped(async (db) => db.orm.execute(dsql`select pg_sleep(10)`));
    await until('the statement runs', async () => (await activity()).some((a) => a.state === 'active' && a.query.includes('pg_sleep(10)')));
    call.controller.abort();
    await expect(call.promise).rejects.toMatchObject({ cause: { code: '57014' } });
  });

  it('never sends a statement that is still waiting for a connection', async () => {
    const busy = [1, 2, 3].map(() => t.sql`select pg_sleep(0.4)`.execute());
    const call = scoped((db) => db.orm.insert(users).values({ name: 'Queued', email: 'queued@example.com' }));
    await until('queued', () => Promise.resolve(t.statements().queued === 1));
    call.controller.abort();
    await expect(call.promise).rejects.toMatchObject({ cause: { code: '57014' } });
    await Promise.all(busy);
    expect(await t.sql`select * from users`).toHaveLength(0);
    expect(call.events.map((e) => e.type)).toEqual(['statement.queued', 'cancel.sent', 'statement.ended']);
    expect(call.events[1]).toMatchObject({ queued: true });
  });

  it('rolls back a transaction cancelled midway and leaves no session idle in transaction', async () => {
    const call = scoped((db) =>
      db.orm.transaction(async (tx) => {
        await tx.insert(users).values({ name: 'First', email: 'first@example.com' });
        await tx.execute(dsql`select pg_sleep(10)`);
        await tx.insert(users).values({ name: 'Second', email: 'second@example.com' });
      }),
    );
    await until('the transaction waits inside Postgres', async () => (await activity()).some((a) => a.query.includes('pg_sleep(10)')));
    call.controller.abort();
    expect(sqlState(await call.promise.then(() => undefined, (e: unknown) => e))).toBe('57014');
    expect(await t.sql`select * from users`).toHaveLength(0);
    await until('no session idle in transaction', async () => !(await activity()).some((a) => a.state.startsWith('idle in transaction')));
    expect(call.events.at(-1)).toMatchObject({ type: 'transaction.rolled_back', sqlstate: '57014' });
  });

  it('refuses to start statements once the signal has fired', async () => {
    const controller = new AbortController();
    controller.abort();
    const db = t.bind({ signal: controller.signal });
    await expect(db.sql`select 1`).rejects.toMatchObject({ code: '57014' });
    const refused = await db.orm.transaction(() => Promise.resolve(1)).then(() => undefined, (e: unknown) => e);
    // A transaction is refused before BEGIN is sent, with the signal's own reason.
    expect(refused).toBe(controller.signal.reason);
  });

  it('bounds every statement of a transaction by the call deadline inside Postgres', async () => {
    const signal = new AbortController().signal; // never fires: only the server-side timeout can stop it
    const started = performance.now();
    const run = t.bind({ signal, deadline: Date.now() + 300 }).orm.transaction((tx) => tx.execute(dsql`select pg_sleep(5)`));
    await expect(run).rejects.toMatchObject({ cause: { code: '57014' } });
    expect(performance.now() - started).toBeLessThan(3000); // unbounded it sleeps 5 s; slack for BEGIN on a loaded machine
  });

  it('leaves statements outside any scope alone', async () => {
    expect((await t.sql`select 2 as two`)[0]?.two).toBe(2);
    expect(t.statements()).toEqual({ queued: 0, running: 0 });
  });
});

describe('a settled statement', () => {
  // A query can outlive its call: it may have been promoted to the old generation while it waited behind
  // others on its connection, and an old object is a root for every young collection until the next full
  // one. If the query still held its tracker, and the tracker the call's scope, that kept the whole call
  // (its scope, its rows, its answer) alive: under users.list's load, most of every call's garbage
  // (README *What the profiles taught*). A full collection here stands in for the young one: the question is
  // only what the query still reaches.
  setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc') as () => void;

  /** A read through a handle bound to a scope of its own; returns the settled query and a weak hold on the scope. */
  async function readAndDropScope(failing: boolean): Promise<{ query: unknown; scope: WeakRef<object> }> {
    const scope = { signal: new AbortController().signal, onEvent: (): void => undefined };
    const db = t.bind(scope);
    const query = db.sql.unsafe(failing ? 'select 1 / 0 as boom' : 'select 1 as one', [], PIPELINED_READ).values();
    await query.then(() => undefined, () => undefined);
    return { query, scope: new WeakRef(scope) };
  }

  for (const failing of [false, true]) {
    it(`lets go of its call's scope once ${failing ? 'failed' : 'answered'}, while the query is still held`, async () => {
      const { query, scope } = await readAndDropScope(failing);
      await new Promise((r) => setImmediate(r)); // a WeakRef holds its target until the job that made it ends
      gc();
      expect(scope.deref()).toBeUndefined();
      expect(query).toBeInstanceOf(Promise); // held to here: what it reaches stays reachable
      expect(t.statements()).toEqual({ queued: 0, running: 0 });
    });
  }
});

describe('a pipelined read cancelled behind another (abandoned)', () => {
  it('is answered at once and reported ended, with no cancel left to repeat', async () => {
    const own = await createTestDatabase(inject('pgAdminUrl'), inject('pgTemplate'), { applicationName: 'scope-pipelined', poolMax: 1 });
    try {
      const read = (db: Db, seconds: number, name: string) => db.sql.unsafe('select pg_sleep($1), $2::text as name', [seconds, name], PIPELINED_READ);
      await read(own, 0, 'prepared'); // a statement's first run is described first, with nothing pipelined behind it
      const a = scoped((db) => read(db, 0.3, 'a'), own);
      const b = scoped((db) => read(db, 0.3, 'b'), own);
      await until('b is sent behind a', () => Promise.resolve(b.events.some((e) => e.type === 'statement.started')));
      // The driver abandons b inside the abort itself; a retry timer armed after that would only keep the
      // settled statement alive for nothing.
      const timers = vi.spyOn(globalThis, 'setTimeout');
      try {
        b.controller.abort(new Error('user left'));
        expect(timers).not.toHaveBeenCalled();
      } finally {
        timers.mockRestore();
      }
      await expect(b.promise).rejects.toMatchObject({ code: '57014' });
      expect(b.events.map((e) => e.type)).toEqual(['statement.queued', 'statement.started', 'cancel.sent', 'statement.ended']);
      expect((await a.promise)[0]?.name).toBe('a');
      expect(own.statements()).toEqual({ queued: 0, running: 0 });
    } finally {
      await own[Symbol.asyncDispose]();
    }
  });
});

describe('when a cancel does not take effect, or the connection dies at COMMIT', () => {
  it('sends the cancel again until the statement stops', async () => {
    // The first cancel is swallowed by an exception handler, as Postgres ignores a cancel that arrives
    // before the backend has read its statement: only a repeated cancel stops the second sleep. One
    // CancelRequest can interrupt twice: the postmaster signals the backend's pid and then its process group
    // (postmaster.c signal_child), and a backend quick to take the first signal takes the second too. So the
    // handler also swallows whatever comes in the 100 ms after the first cancel (seen here: the second sleep
    // cancelled 4 ms into the statement by one CancelRequest); the repeat comes 200 ms after it.
    const call = scoped((db) =>
      db.sql.unsafe(`do $$
      declare
        swallowed_at timestamptz;
      begin
        loop
          begin
            if swallowed_at is null then
              perform pg_sleep(5);
            else
              perform pg_sleep(greatest(0, extract(epoch from swallowed_at + interval '100 ms' - clock_timestamp())));
            end if;
            exit;
          exception when query_canceled then
            swallowed_at := coalesce(swallowed_at, clock_timestamp());
          end;
        end loop;
        perform pg_sleep(5);
      end $$`),
    );
    // 'active' is set before plpgsql enters the exception block; a cancel then would stop it at once.
    // Sleeping (wait event PgSleep) means it is inside the block, where the first cancel is swallowed.
    await until('the statement sleeps in its first block', async () =>
      (await activity()).some((a) => a.state === 'active' && a.query.includes('query_canceled') && a.wait_event === 'PgSleep'));
    const aborted = performance.now();
    call.controller.abort();
    await expect(call.promise).rejects.toMatchObject({ code: '57014' });
    // Without the repeat the second sleep would run its 5 s out; retries go at 200, 400, 800 ms.
    expect(performance.now() - aborted).toBeLessThan(3500);
    const cancels = call.events.filter((e) => e.type === 'cancel.sent');
    // The second cancel is the one that stops it; a third can go out if its answer is slow to come back
    // (a loaded machine), which is how the retry is meant to work.
    expect(cancels.map((e) => e.attempt).slice(0, 2)).toEqual([1, 2]);
    expect(cancels.map((e) => e.attempt)).toEqual(cancels.map((_, i) => i + 1));
    expect(t.statements()).toEqual({ queued: 0, running: 0 });
    expect((await t.sql`select 1 as one`)[0]?.one).toBe(1);
  });

  it('says the outcome is unknown when the connection is lost during COMMIT, and plainly failed before it', async () => {
    // A deferred constraint trigger runs at COMMIT: it sleeps there, and the backend is terminated meanwhile.
    await t.sql.unsafe(`
      create table if not exists commit_probe (id int);
      create or replace function commit_probe_sleep() returns trigger language plpgsql as
        $$ begin perform pg_sleep(30); return null; end $$;
      drop trigger if exists commit_probe_slow on commit_probe;
      create constraint trigger commit_probe_slow after insert on commit_probe
        deferrable initially deferred for each row execute function commit_probe_sleep();`);
    // Finds the backend running `marker` and kills it in one statement (the sleeps last 30 s: only the
    // kill ends them, however slow this machine is).
    const killDuring = (pattern: string) =>
      until(`${pattern} runs, and is killed`, async () => {
        const [row] = await observer<{ killed: number }[]>`
          select count(*) filter (where pg_terminate_backend(pid))::int as killed from pg_stat_activity
          where application_name = 'scope-test' and datname = current_database() and state = 'active' and lower(query) like ${pattern}`;
        return (row?.killed ?? 0) > 0;
      });

    const atCommit = scoped((db) => db.sql.begin(async (tx) => { await tx`insert into commit_probe values (1)`; }));
    await killDuring('commit'); // exactly COMMIT (the body's insert names the table commit_probe)
    await expect(atCommit.promise).rejects.toBeInstanceOf(CommitOutcomeUnknownError);

    const inBody = scoped((db) => db.sql.begin(async (tx) => { await tx`select pg_sleep(30), 'body'`; }));
    await killDuring("%'body'%");
    const error: unknown = await inBody.promise.catch((e: unknown) => e);
    expect(error).not.toBeInstanceOf(CommitOutcomeUnknownError);
    expect(isDatabaseUnavailable(error)).toBe(true);
    // A statement may still land on a connection whose termination is on its way; the pool recovers at once.
    // (3 s: reconnecting forks a backend, slow on a loaded machine; a wedged pool waits out connect_timeout, 10 s.)
    await until('the pool answers', () => t.sql`select 1`.then(() => true, () => false), 3000);
  });
});
