import { cp, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import postgres from 'postgres';
import { afterAll, beforeAll, beforeEach, describe, expect, inject, it } from 'vitest';
import { createDbClient } from './client';
import { migrationsFolder, runMigrations } from './migrate';
import { USER_COUNT_SLOTS } from './schema';
import { createTestDatabase, databaseUrl, dropDatabase, type TestDatabase } from './testing';

/** The counter of migration 0003 against the truth, read in one statement (one snapshot). */
async function counted(sql: postgres.Sql): Promise<{ slots: number; rows: number }> {
  const [row] = await sql<{ slots: number; rows: number }[]>`
    select (select coalesce(sum(n), 0)::int from user_count_slots) as slots, (select count(*)::int from users) as rows`;
  if (!row) throw new Error('no row');
  return row;
}

let t: TestDatabase;
beforeAll(async () => {
  // More connections than slots, so some writers share a slot and wait on its row lock.
  t = await createTestDatabase(inject('pgAdminUrl'), inject('pgTemplate'), { applicationName: 'user-count-test', poolMax: 24 });
});
afterAll(async () => { await t[Symbol.asyncDispose](); });
beforeEach(async () => { await t.sql`truncate users restart identity`; });

describe('user_count_slots (the exact total of users.list)', () => {
  it(`has ${USER_COUNT_SLOTS} slots, as the triggers' modulo expects`, async () => {
    const rows = await t.sql<{ slot: number }[]>`select slot from user_count_slots order by slot`;
    expect(rows.map((r) => r.slot)).toEqual(Array.from({ length: USER_COUNT_SLOTS }, (_, i) => i));
    const [source] = await t.sql<{ src: string }[]>`select prosrc as src from pg_proc where proname = 'users_count_add'`;
    expect(source?.src).toContain(`pg_backend_pid() % ${USER_COUNT_SLOTS}`);
  });

  it('follows inserts, deletes, multi-row statements, rolled-back transactions and TRUNCATE', async () => {
    await t.sql`insert into users (name, email) select 'u' || g, 'u' || g || '@example.com' from generate_series(1, 500) g`;
    expect(await counted(t.sql)).toEqual({ slots: 500, rows: 500 });
    await t.sql`delete from users where id % 5 = 0`;
    expect(await counted(t.sql)).toEqual({ slots: 400, rows: 400 });
    // A statement that touches no row, an update (no change in count), a failed statement.
    await t.sql`delete from users where id < 0`;
    await t.sql`update users set name = 'x' where id < 10`;
    await expect(t.sql`insert into users (name, email) values ('dup', 'u1@example.com')`).rejects.toMatchObject({ code: '23505' });
    await expect(
      t.sql.begin(async (tx) => {
        await tx`insert into users (name, email) values ('gone', 'gone@example.com')`;
        await tx`delete from users where id < 100`;
        throw new Error('roll back');
      }),
    ).rejects.toThrow('roll back');
    expect(await counted(t.sql)).toEqual({ slots: 400, rows: 400 });
    await t.sql`truncate users`;
    expect(await counted(t.sql)).toEqual({ slots: 0, rows: 0 });
    await t.sql`insert into users (name, email) values ('after', 'after@example.com')`;
    expect(await counted(t.sql)).toEqual({ slots: 1, rows: 1 });
  });

  it('stays exact under concurrent writers on many connections, some rolling back, with a TRUNCATE midway', async () => {
    const WRITERS = 20;
    const ROUNDS = 15;
    let truncated = false;
    const writer = async (w: number) => {
      for (let round = 0; round < ROUNDS; round++) {
        const tag = `w${w}r${round}`;
        const rollBack = round % 4 === 3;
        await t.sql
          .begin(async (tx) => {
            await tx`insert into users (name, email) select ${tag}, ${tag} || '-' || g || '@example.com' from generate_series(1, ${1 + (round % 3)}::int) g`;
            if (round % 2 === 1) await tx`delete from users where id = (select min(id) from users where name = ${tag})`;
            if (rollBack) throw new Error('roll back');
          })
          .catch((error: unknown) => {
            if (!(error instanceof Error && error.message === 'roll back')) throw error;
          });
        if (w === 0 && round === Math.floor(ROUNDS / 2)) {
          await t.sql`truncate users`;
          truncated = true;
        }
        // Readers in between: the counter agrees with count(*) in every snapshot, not only at the end.
        const seen = await counted(t.sql);
        expect(seen.slots).toBe(seen.rows);
      }
    };
    await Promise.all(Array.from({ length: WRITERS }, (_, w) => writer(w)));
    expect(truncated).toBe(true);
    const end = await counted(t.sql);
    expect(end.slots).toBe(end.rows);
    expect(end.rows).toBeGreaterThan(0);
    // The writers were spread over more than one slot (pids differ), which is what the slots are for.
    const [used] = await t.sql<{ n: number }[]>`select count(*)::int as n from user_count_slots where n <> 0`;
    expect(used?.n).toBeGreaterThan(1);
  });
});

describe('migration 0003', () => {
  it('backfills the users a database already has', async () => {
    const admin = inject('pgAdminUrl');
    const name = `${inject('pgTemplate')}_m_${Date.now().toString(36)}`;
    const folder = await mkdtemp(join(tmpdir(), 'asyncscope-migrations-'));
    const sql = postgres(admin, { max: 1, onnotice: () => undefined });
    try {
      await sql.unsafe(`create database "${name}"`);
    } finally {
      await sql.end();
    }
    const db = createDbClient({ url: databaseUrl(admin, name), poolMax: 1, statementTimeoutMs: 0, applicationName: 'migration-test' });
    try {
      // The migrations before 0003, as a database made before it has them.
      await cp(migrationsFolder, folder, { recursive: true });
      const journalPath = join(folder, 'meta', '_journal.json');
      const journal = JSON.parse(await readFile(journalPath, 'utf8')) as { entries: { tag: string }[] };
      const at = journal.entries.findIndex((e) => e.tag.startsWith('0003_'));
      expect(at).toBeGreaterThan(0);
      journal.entries = journal.entries.slice(0, at);
      await writeFile(journalPath, JSON.stringify(journal));
      await runMigrations(db.orm, folder);
      await db.sql`insert into users (name, email) select 'u' || g, 'u' || g || '@example.com' from generate_series(1, 1234) g`;
      await db.sql`delete from users where id <= 34`;

      await runMigrations(db.orm);
      expect(await counted(db.sql)).toEqual({ slots: 1200, rows: 1200 });
      await db.sql`insert into users (name, email) values ('new', 'new@example.com')`;
      expect(await counted(db.sql)).toEqual({ slots: 1201, rows: 1201 });
    } finally {
      await db.close(1);
      await dropDatabase(admin, name);
      await rm(folder, { recursive: true, force: true });
    }
  });
});
