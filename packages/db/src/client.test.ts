import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import postgres from 'postgres';
import { createDbClient } from './client';
import { createTestDatabase, databaseUrl, dropDatabase, type TestDatabase } from './testing';
import { runMigrations } from './migrate';
import { users } from './schema';

let t: TestDatabase;
beforeAll(async () => {
  t = await createTestDatabase(inject('pgAdminUrl'), inject('pgTemplate'), { applicationName: 'db-test', poolMax: 3, statementTimeoutMs: 1000 });
});
afterAll(async () => { await t[Symbol.asyncDispose](); });

describe('createDbClient', () => {
  it('applies application_name, statement_timeout and generic plans to every connection', async () => {
    const [row] = await t.sql<{ app: string; timeout: string; plans: string }[]>`select current_setting('application_name') app, current_setting('statement_timeout') timeout, current_setting('plan_cache_mode') plans`;
    expect(row).toEqual({ app: 'db-test', timeout: '1s', plans: 'force_generic_plan' });
  });

  it('reads timestamps as UTC ISO text whatever the database says (TimeZone and DateStyle set per connection)', async () => {
    await t.sql.unsafe(`alter database "${t.name}" set timezone = 'Asia/Kolkata'`);
    await t.sql.unsafe(`alter database "${t.name}" set datestyle = 'SQL, DMY'`);
    const other = createDbClient({ url: t.url, poolMax: 1, statementTimeoutMs: 1000, applicationName: 'db-test-zone' });
    try {
      const [row] = await other.sql<{ tz: string; style: string; at: string }[]>`select current_setting('TimeZone') tz, current_setting('DateStyle') style, '2026-12-01 10:00:00+00'::timestamptz::text at`;
      expect(row).toEqual({ tz: 'UTC', style: 'ISO, MDY', at: '2026-12-01 10:00:00+00' });
    } finally {
      await other.close(1);
      await t.sql.unsafe(`alter database "${t.name}" reset timezone`);
      await t.sql.unsafe(`alter database "${t.name}" reset datestyle`);
    }
  });

  it('enforces the statement timeout inside Postgres', async () => {
    await expect(t.sql`select pg_sleep(3)`).rejects.toMatchObject({ code: '57014' });
  });

  it('re-running migrations is a no-op', async () => {
    await runMigrations(t.orm);
    const [row] = await t.sql<{ n: number }[]>`select count(*)::int n from drizzle.__drizzle_migrations`;
    expect(row?.n).toBeGreaterThan(0);
    await runMigrations(t.orm);
    const [again] = await t.sql<{ n: number }[]>`select count(*)::int n from drizzle.__drizzle_migrations`;
    expect(again?.n).toBe(row?.n);
  });

  it('keeps emails unique in any letter case even below the API', async () => {
    await t.orm.insert(users).values({ name: 'Ada', email: 'ada@example.com' });
    await expect(t.orm.insert(users).values({ name: 'Ada 2', email: 'ADA@example.com' })).rejects.toMatchObject({ cause: { code: '23505' } });
  });

  it('rejects blank names below the API', async () => {
    await expect(t.orm.insert(users).values({ name: '   ', email: 'blank@example.com' })).rejects.toMatchObject({ cause: { code: '23514' } });
  });
});

describe('migrations from several instances at once', () => {
  it('four instances starting together on a fresh database all migrate it, and it is migrated once', async () => {
    // Instances behind a balancer start together: drizzle's CREATE SCHEMA / CREATE TABLE IF NOT EXISTS race
    // (23505 on the catalog), and two may apply the same migration (42P07). Each must end up started.
    const admin = postgres(inject('pgAdminUrl'), { max: 1, onnotice: () => undefined });
    const name = `${inject('pgTemplate')}_race_${Date.now().toString(36)}`;
    await admin.unsafe(`create database "${name}"`);
    const clients = Array.from({ length: 4 }, (_, i) => createDbClient({ url: databaseUrl(inject('pgAdminUrl'), name), poolMax: 2, statementTimeoutMs: 10_000, applicationName: `migrate-race-${i}` }));
    try {
      const results = await Promise.allSettled(clients.map((c) => runMigrations(c.orm)));
      expect(results.map((r) => (r.status === 'rejected' ? String((r.reason as Error).cause ?? r.reason) : 'ok'))).toEqual(['ok', 'ok', 'ok', 'ok']);
      const first = clients[0];
      if (!first) throw new Error('no client');
      const applied = await first.sql<{ n: number }[]>`select count(*)::int n from drizzle.__drizzle_migrations`;
      const files = await first.sql<{ n: number }[]>`select count(*)::int n from information_schema.tables where table_name = 'lab_faults'`;
      expect(applied[0]?.n).toBeGreaterThanOrEqual(3);
      expect(files[0]?.n).toBe(1);
    } finally {
      await Promise.all(clients.map((c) => c.close()));
      await admin.end();
      await dropDatabase(inject('pgAdminUrl'), name);
    }
  });
});
