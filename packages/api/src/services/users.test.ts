import { afterAll, beforeAll, beforeEach, describe, expect, inject, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '@asyncscope/db/testing';
import { createDbClient, PIPELINED_READ, type Db, type DbEvent, type QueryScope } from '@asyncscope/db';
import { until } from '@asyncscope/concurrency/testing';
import { seedUsers } from '../testing';
import { BY_ID_SQL, isoTimestamp, PAGE_SQL, PIPELINED_OFFSET_MAX, UsersService } from './users';

let t: TestDatabase;
let service: UsersService;
/** The scope of a call nobody cancels. */
const quiet: QueryScope = { signal: new AbortController().signal };
beforeAll(async () => {
  t = await createTestDatabase(inject('pgAdminUrl'), inject('pgTemplate'), { poolMax: 16 });
  service = new UsersService(t);
});
afterAll(async () => { await t[Symbol.asyncDispose](); });
beforeEach(async () => { await t.sql`truncate users restart identity`; });

/** Writers on their own connections, inserting and deleting (some in transactions that roll back) until stopped. */
function startWriters(count: number): { stop(): Promise<number> } {
  let stopped = false;
  let writes = 0;
  const writer = async (w: number) => {
    for (let i = 0; !stopped; i++) {
      const tag = `w${w}-${i}`;
      await t.sql
        .begin(async (tx) => {
          await tx`insert into users (name, email) select ${tag}, ${tag} || '-' || g || '@example.com' from generate_series(1, ${1 + (i % 3)}::int) g`;
          // Each writer deletes only its own rows: the counter slot a writer's insert locks until commit would
          // otherwise close a deadlock cycle with the test's own deletes of the lowest ids.
          if (i % 2 === 1) await tx`delete from users where id = (select min(id) from users where name = ${tag})`;
          if (i % 5 === 4) throw new Error('roll back');
        })
        .catch((error: unknown) => {
          if (!(error instanceof Error && error.message === 'roll back')) throw error;
        });
      writes++;
    }
  };
  const running = Promise.all(Array.from({ length: count }, (_, w) => writer(w)));
  return {
    async stop() {
      stopped = true;
      await running;
      return writes;
    },
  };
}

describe('UsersService.list', () => {
  it('reports the total of the same snapshot as its page while writers run (one statement, not page + count)', async () => {
    const writers = startWriters(6);
    try {
      for (let i = 0; i < 150; i++) {
        // While the table holds fewer rows than the limit, a page from offset 0 IS the table: its length is the total.
        const page = await service.list({ limit: 100, offset: 0 }, quiet);
        expect(page.items.length, `read ${i}`).toBe(page.total);
        if (page.total > 60) await t.sql`delete from users where id in (select id from users order by id limit 30)`;
      }
    } finally {
      expect(await writers.stop()).toBeGreaterThan(0);
    }
  });

  it('reports count(*) of its own snapshot (compared inside one REPEATABLE READ transaction)', async () => {
    await seedUsers(t.sql, 300);
    const writers = startWriters(6);
    try {
      for (let i = 0; i < 40; i++) {
        const [counted, listed] = await t.sql.begin('isolation level repeatable read', async (tx) => {
          const [row] = await tx<{ n: number }[]>`select count(*)::int as n from users`;
          const page = await new UsersService({ bind: () => ({ orm: t.orm, sql: tx }) }).list({ limit: 50, offset: 10 }, quiet);
          return [row?.n, page] as const;
        });
        expect(listed.total, `read ${i}`).toBe(counted);
        expect(listed.items).toHaveLength(50);
      }
    } finally {
      await writers.stop();
    }
  });

  it('reports the total with an empty page, and items in id order', async () => {
    expect(await service.list({ limit: 10, offset: 0 }, quiet)).toEqual({ items: [], total: 0 });
    await seedUsers(t.sql, 25);
    expect(await service.list({ limit: 10, offset: 100 }, quiet)).toEqual({ items: [], total: 25 });
    const page = await service.list({ limit: 10, offset: 20 }, quiet);
    expect(page.total).toBe(25);
    expect(page.items.map((u) => u.id)).toEqual([21, 22, 23, 24, 25]);
  });

  // The page statement has no outer ORDER BY (see PAGE_SQL): its rows must come in the page's own order,
  // whichever way PostgreSQL reads the table. Rows are stored out of id order here, and the page statement
  // itself is read by index and by seq scan + sort; its rows are checked as PostgreSQL sends them (`list`
  // would sort them).
  it('the page statement sends its rows in id order, read by index or by a sort of the table stored out of order', async () => {
    await seedUsers(t.sql, 300);
    await t.sql`update users set name = name || '.' where id % 3 = 0`; // these rows move to the end of the heap
    const offsets = [0, 40, 250, 290];
    const expected = offsets.map((offset) => Array.from({ length: Math.min(50, 300 - offset) }, (_, i) => offset + i + 1));
    for (const plan of ['index', 'sort'] as const) {
      const [sent, listed] = await t.sql.begin(async (tx) => {
        if (plan === 'sort') await tx`set local enable_indexscan = off; set local enable_bitmapscan = off; set local enable_indexonlyscan = off`.simple();
        else await tx`set local enable_seqscan = off; set local enable_sort = off`.simple();
        const shown = await tx.unsafe<{ 'QUERY PLAN': string }[]>(`explain ${PAGE_SQL}`, [50, 40]);
        const text = shown.map((row) => row['QUERY PLAN']).join('\n');
        expect(text, plan).toContain(plan === 'index' ? 'Index Scan' : 'Seq Scan on users');
        const raw = await Promise.all(offsets.map((offset) => tx.unsafe(PAGE_SQL, [50, offset]).values()));
        const service = new UsersService({ bind: () => ({ orm: t.orm, sql: tx }) });
        return [raw.map((rows) => rows.map((row) => row[0] as number)), await Promise.all(offsets.map((offset) => service.list({ limit: 50, offset }, quiet)))] as const;
      });
      expect(sent, plan).toEqual(expected);
      expect(listed.map((p) => p.items.map((u) => u.id)), plan).toEqual(expected);
    }
  });

  it('returns users exactly as byId does (same shape, same ISO timestamps)', async () => {
    await seedUsers(t.sql, 3);
    await t.sql`update users set created_at = '2024-02-29 23:59:59.9999+00', updated_at = '2031-01-01 00:00:00+00' where id = 2`;
    const page = await service.list({ limit: 10, offset: 0 }, quiet);
    expect(page.items).toEqual([await service.byId(1, quiet), await service.byId(2, quiet), await service.byId(3, quiet)]);
    expect(page.items[1]).toMatchObject({ createdAt: '2024-02-29T23:59:59.999Z', updatedAt: '2031-01-01T00:00:00.000Z' });
  });
});

describe('UsersService.list: which pages are pipelined', () => {
  // A far page scans and skips its offset's rows; pipelined, the reads sent behind it would wait it out, and
  // a cancel could only abandon it (patches/README.md row 12), leaving Postgres to run it to its end.
  it('sends a near page behind a busy connection, and a far page only to a free one', async () => {
    const own = await createTestDatabase(inject('pgAdminUrl'), inject('pgTemplate'), { poolMax: 1 });
    try {
      const users = new UsersService(own);
      const sleep = (db: Db, seconds: number) => db.sql.unsafe('select pg_sleep($1)::text', [seconds], PIPELINED_READ);
      await sleep(own, 0); // prepared: a statement's first run pipelines nothing behind it
      await users.list({ limit: 5, offset: 0 }, quiet);
      await users.list({ limit: 5, offset: PIPELINED_OFFSET_MAX + 1 }, quiet);
      const sentAt = new Map<string, number>();
      /** A scope that notes when its statement was sent. */
      const scoped = (name: string): QueryScope => ({ signal: new AbortController().signal, onEvent: (e: DbEvent) => { if (e.type === 'statement.started') sentAt.set(name, performance.now()); } });
      for (const [name, offset] of [['near', PIPELINED_OFFSET_MAX], ['far', PIPELINED_OFFSET_MAX + 1]] as const) {
        sentAt.clear();
        const slow = sleep(own.bind(scoped('slow')), 0.5).execute(); // sent now, not at the await
        await until('the slow read runs', () => sentAt.has('slow'));
        await Promise.all([users.list({ limit: 5, offset }, scoped(name)), slow]);
        // A near page goes behind the running read at once; a far one waits for the connection to be free.
        const after = (sentAt.get(name) ?? NaN) - (sentAt.get('slow') ?? NaN);
        if (name === 'near') expect(after).toBeLessThan(300);
        else expect(after).toBeGreaterThanOrEqual(450);
      }
    } finally {
      await own[Symbol.asyncDispose]();
    }
  });
});

describe('UsersService reads: planned once per connection', () => {
  // PostgreSQL re-plans a prepared statement on every run while its generic plan looks dearer than the
  // plans it made for the values given; `limit $1` is estimated at a tenth of the table, so the page
  // statement never looked cheap enough and was planned anew each call (~40 µs of PostgreSQL's CPU).
  it('runs the page and the row statements on their generic plan, every time', async () => {
    const own = await createTestDatabase(inject('pgAdminUrl'), inject('pgTemplate'), { poolMax: 1 });
    try {
      // A table the size of the bench's: at 120 rows PostgreSQL settles on the generic plan by itself after five runs.
      await seedUsers(own.sql, 10_000);
      await own.sql`analyze users`;
      const users = new UsersService(own);
      for (let i = 0; i < 12; i++) {
        await users.list({ limit: 50, offset: i * 5 }, quiet);
        await users.byId(i + 1, quiet);
      }
      // One connection: this reads the session that ran them.
      const plans = await own.sql<{ statement: string; generic_plans: string; custom_plans: string }[]>`
        select statement, generic_plans::text, custom_plans::text from pg_prepared_statements where statement = any(${[PAGE_SQL, BY_ID_SQL]})`;
      expect(plans.map((p) => [p.statement === PAGE_SQL ? 'page' : 'byId', Number(p.generic_plans), Number(p.custom_plans)]).sort()).toEqual([
        ['byId', 12, 0],
        ['page', 12, 0],
      ]);
    } finally {
      await own[Symbol.asyncDispose]();
    }
  });
});

describe('isoTimestamp', () => {
  it('equals Date#toISOString for what Postgres sends, in any session time zone', async () => {
    const rows = await t.sql<{ ts: string; zone: string }[]>`
      select (timestamptz '2026-12-01 06:28:00+00' + (g * interval '1 second' * 7919.123457) + (g % 7) * interval '1 microsecond' * 10 ^ (g % 6))::text as ts,
             current_setting('TimeZone') as zone
      from generate_series(-2000, 2000) g`;
    for (const { ts } of rows) expect(isoTimestamp(ts), ts).toBe(new Date(ts).toISOString());
    await t.sql.begin(async (tx) => {
      await tx`set local time zone 'Asia/Kolkata'`;
      const [row] = await tx<{ ts: string }[]>`select timestamptz '2026-12-01 06:28:00.5+00' :: text as ts`;
      expect(row?.ts).toMatch(/\+05:30$/);
      expect(isoTimestamp(row?.ts ?? '')).toBe('2026-12-01T06:28:00.500Z');
    });
  });

  it('takes every fraction length, and leaves odd years to Date', () => {
    for (const [text, iso] of [
      ['2026-12-01 06:28:00+00', '2026-12-01T06:28:00.000Z'],
      ['2026-12-01 06:28:00.1+00', '2026-12-01T06:28:00.100Z'],
      ['2026-12-01 06:28:00.12+00', '2026-12-01T06:28:00.120Z'],
      ['2026-12-01 06:28:00.123+00', '2026-12-01T06:28:00.123Z'],
      ['2026-12-01 06:28:00.1239+00', '2026-12-01T06:28:00.123Z'],
      ['2026-12-01 06:28:00.12399+00', '2026-12-01T06:28:00.123Z'],
      ['2026-12-01 06:28:00.123999+00', '2026-12-01T06:28:00.123Z'],
    ] as const) {
      expect(isoTimestamp(text), text).toBe(iso);
      expect(isoTimestamp(text), text).toBe(new Date(text).toISOString());
    }
    for (const text of ['0999-12-01 06:28:00+00', '12026-12-01 06:28:00+00', '2026-12-01 06:28:00+01']) {
      expect(isoTimestamp(text), text).toBe(new Date(text).toISOString());
    }
    expect(isoTimestamp(new Date(0))).toBe('1970-01-01T00:00:00.000Z');
  });
});

/** The last id of the page a stream's next() gives, or 'done'. */
async function nextLastId(pages: AsyncGenerator<{ lastId: number }>): Promise<number | 'done'> {
  const step = await pages.next();
  return step.done ? 'done' : step.value.lastId;
}

describe('UsersService.stream', () => {
  it('resumes after an id without duplicates or gaps, and ends at the first empty page', async () => {
    await seedUsers(t.sql, 1050);
    await t.sql`delete from users where id in (7, 500, 501, 1000)`;
    const controller = new AbortController();
    const seen: number[] = [];
    let lastIds: number[] = [];
    for await (const page of service.stream({ pageSize: 100, afterId: 3, scope: { signal: controller.signal } })) {
      expect(page.total).toBe(1046);
      seen.push(...page.items.map((u) => u.id));
      lastIds = [...lastIds, page.lastId];
    }
    const expected = Array.from({ length: 1047 }, (_, i) => i + 4).filter((id) => ![7, 500, 501, 1000].includes(id));
    expect(seen).toEqual(expected);
    expect(lastIds.at(-1)).toBe(1050);
    expect(lastIds).toHaveLength(11);
  });

  it('an early return settles the page read ahead; an abort cancels it and ends the generator', async () => {
    await seedUsers(t.sql, 500);
    const controller = new AbortController();
    const pages = service.stream({ pageSize: 100, afterId: 0, scope: { signal: controller.signal } });
    expect(await nextLastId(pages)).toBe(100);
    await pages.return(undefined);
    expect(await pages.next()).toEqual({ done: true, value: undefined });

    const scoped = new AbortController();
    const stream = service.stream({ pageSize: 100, afterId: 0, scope: { signal: scoped.signal } });
    expect(await nextLastId(stream)).toBe(100);
    scoped.abort();
    // The read-ahead was cancelled (or had finished): the generator ends quietly, as before.
    expect(await stream.next()).toEqual({ done: true, value: undefined });
    const [active] = await t.sql<{ n: number }[]>`select count(*)::int as n from pg_stat_activity where datname = current_database() and state = 'active' and pid <> pg_backend_pid()`;
    expect(active?.n).toBe(0);
  });

  it('a read-ahead that fails while the stream waits for its consumer is no unhandled rejection', async () => {
    await seedUsers(t.sql, 300);
    // One connection, so a statement can be made to wait in the driver's queue behind another.
    const solo = createDbClient({ url: t.url, poolMax: 1, statementTimeoutMs: 30_000, applicationName: 'asyncscope-test-solo' });
    const unhandled: unknown[] = [];
    const onUnhandled = (reason: unknown): void => { unhandled.push(reason); };
    process.on('unhandledRejection', onUnhandled);
    let release = (): void => undefined;
    const released = new Promise<void>((resolve) => { release = resolve; });
    let locked = (): void => undefined;
    const isLocked = new Promise<void>((resolve) => { locked = resolve; });
    const locker = t.sql.begin(async (tx) => {
      await tx`lock table users in access exclusive mode`;
      locked();
      await released;
    });
    try {
      await isLocked;
      const scope = new AbortController();
      const stream = new UsersService(solo).stream({ pageSize: 100, afterId: 0, scope: { signal: scope.signal } });
      const first = stream.next();
      // Page 1 waits for the lock; behind it, on the pool's one connection, someone else's statement.
      await until('page 1 waiting for the lock', async () => {
        const [row] = await t.sql<{ n: number }[]>`select count(*)::int as n from pg_stat_activity where application_name = 'asyncscope-test-solo' and wait_event_type = 'Lock'`;
        return (row?.n ?? 0) > 0;
      }, 10_000);
      const other = solo.sql`select pg_sleep(0.3)`.execute();
      release();
      await locker;
      expect((await first).done).toBe(false);
      // The page read ahead now waits in the driver behind pg_sleep, and the stream at its yield: a cancel
      // refuses the read-ahead at once, with nobody awaiting it yet.
      scope.abort();
      await new Promise((resolve) => setTimeout(resolve, 100));
      expect(unhandled).toEqual([]);
      await other;
      expect(await stream.next()).toEqual({ done: true, value: undefined });
    } finally {
      release();
      process.off('unhandledRejection', onUnhandled);
      await solo.close(1);
    }
  });
});
