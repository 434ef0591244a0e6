import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from './testing';
import { runMigrations } from './migrate';
import { users } from './schema';

let t: TestDatabase;
beforeAll(async () => {
  t = await createTestDatabase(inject('pgAdminUrl'), inject('pgTemplate'), { applicationName: 'db-test', poolMax: 3, statementTimeoutMs: 1000 });
});
afterAll(async () => { await t[Symbol.asyncDispose](); });

describe('createDbClient', () => {
  it('applies application_name and statement_timeout to every connection', async () => {
    const [row] = await t.sql<{ app: string; timeout: string }[]>`select current_setting('application_name') app, current_setting('statement_timeout') timeout`;
    expect(row).toEqual({ app: 'db-test', timeout: '1s' });
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
