/**
 * Test helpers: every test file gets its own database, cloned from a migrated template, so files run in
 * parallel against one real PostgreSQL. The server comes from `globalSetup` (./global-setup.ts).
 */
import { randomBytes } from 'node:crypto';
import postgres from 'postgres';
import { createDbClient, type DbClient, type DbConfig } from './client';

declare module 'vitest' {
  interface ProvidedContext {
    /** Superuser URL of the test server (embedded, or TEST_DATABASE_URL). */
    pgAdminUrl: string;
    /** Name of the migrated template database to clone. */
    pgTemplate: string;
  }
}

export function databaseUrl(adminUrl: string, database: string): string {
  const url = new URL(adminUrl);
  url.pathname = `/${database}`;
  return url.toString();
}

export interface TestDatabase extends DbClient {
  url: string;
  name: string;
  [Symbol.asyncDispose](): Promise<void>;
}

/** The pool settings of a test database, unless the test gives its own. */
const TEST_POOL = { poolMax: 10, statementTimeoutMs: 30_000, applicationName: 'asyncscope-test' } as const;

/** Clones the template into a fresh database and connects to it; dispose drops it. */
export async function createTestDatabase(
  adminUrl: string,
  template: string,
  config: Partial<Omit<DbConfig, 'url'>> = {},
): Promise<TestDatabase> {
  const name = `${template}_t_${randomBytes(4).toString('hex')}`;
  const admin = postgres(adminUrl, { max: 1, onnotice: () => undefined });
  try {
    // Concurrent clones of one template can collide briefly; retry a few times.
    for (let attempt = 0; ; attempt++) {
      try {
        await admin.unsafe(`create database "${name}" template "${template}"`);
        break;
      } catch (error) {
        if (attempt >= 10 || (error as { code?: string }).code !== '55006') throw error;
        await new Promise((r) => setTimeout(r, 50 * (attempt + 1)));
      }
    }
  } finally {
    await admin.end();
  }
  const url = databaseUrl(adminUrl, name);
  const db = createDbClient({ url, ...TEST_POOL, ...config });
  return {
    ...db,
    url,
    name,
    async [Symbol.asyncDispose]() {
      await db.close(1);
      await dropDatabase(adminUrl, name);
    },
  };
}

export async function dropDatabase(adminUrl: string, name: string): Promise<void> {
  const admin = postgres(adminUrl, { max: 1, onnotice: () => undefined });
  try {
    await admin.unsafe(`drop database if exists "${name}" with (force)`);
  } finally {
    await admin.end();
  }
}
