/**
 * vitest globalSetup shared by every package: one real PostgreSQL per test run — TEST_DATABASE_URL when
 * set, otherwise an embedded server in a temporary folder — and a migrated template database.
 */
import { randomBytes } from 'node:crypto';
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import postgres from 'postgres';
import type { TestProject } from 'vitest/node';
import { createDbClient } from './client';
import { startEmbeddedPostgres } from './embedded';
import { runMigrations } from './migrate';
import { databaseUrl, dropDatabase } from './testing';

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  let adminUrl = process.env.TEST_DATABASE_URL;
  let stopEmbedded = (): Promise<void> => Promise.resolve();
  if (!adminUrl) {
    const dir = await mkdtemp(join(tmpdir(), 'asyncscope-test-'));
    await chmod(dir, 0o755);
    const pg = await startEmbeddedPostgres({ dataDir: dir, ephemeral: true });
    adminUrl = pg.url;
    stopEmbedded = async () => {
      await pg.stop();
      await rm(dir, { recursive: true, force: true });
    };
  }
  const template = `asyncscope_${randomBytes(3).toString('hex')}`;
  const admin = postgres(adminUrl, { max: 1, onnotice: () => undefined });
  try {
    await admin.unsafe(`create database "${template}"`);
  } finally {
    await admin.end();
  }
  // Migrating the template: one connection, no statement limit.
  const db = createDbClient({ url: databaseUrl(adminUrl, template), poolMax: 1, statementTimeoutMs: 0, applicationName: 'asyncscope-test-setup' });
  try {
    await runMigrations(db.orm);
  } finally {
    await db.close();
  }
  project.provide('pgAdminUrl', adminUrl);
  project.provide('pgTemplate', template);

  const url = adminUrl;
  return async () => {
    // Drop every database this run made (the template and any a crashed file left behind).
    const cleanup = postgres(url, { max: 1, onnotice: () => undefined });
    try {
      const rows = await cleanup<{ datname: string }[]>`select datname from pg_database where datname like ${`${template}%`}`;
      for (const { datname } of rows) await dropDatabase(url, datname);
    } finally {
      await cleanup.end();
      await stopEmbedded();
    }
  };
}
