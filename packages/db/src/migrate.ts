import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { migrate } from 'drizzle-orm/postgres-js/migrator';
import type { Orm } from './client';
import { sqlState } from './errors';

/**
 * The committed SQL migrations that ship with this package (written by drizzle-kit). Found through the
 * package's own name rather than relative to this file, so the path is right both from the sources and
 * from the server's bundle (apps/server/dist), where this code is inlined.
 */
export const migrationsFolder = join(dirname(createRequire(import.meta.url).resolve('@asyncscope/db/package.json')), 'migrations');

/**
 * What instances that migrate one database at once run into: drizzle's CREATE SCHEMA / TABLE IF NOT EXISTS
 * race on the catalog (23505), and two may apply the same migration (42P06/42P07/42701/42710). The loser's
 * transaction rolls back; once the winner has committed, a retry finds everything applied.
 */
const RACE_SQLSTATES = new Set(['23505', '42P06', '42P07', '42701', '42710']);
const RACE_ATTEMPTS = 6;

/**
 * Applies every migration not yet applied, in one transaction. Idempotent: drizzle records applied
 * migrations in drizzle.__drizzle_migrations, so running it at every start-up is safe — also from several
 * instances starting together (a lost race is retried after a short, jittered pause).
 */
export async function runMigrations(db: Orm, folder = migrationsFolder, signal?: AbortSignal): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    try {
      await migrate(db, { migrationsFolder: folder });
      return;
    } catch (error) {
      const state = sqlState(error);
      if (state === null || !RACE_SQLSTATES.has(state) || attempt >= RACE_ATTEMPTS) throw error;
      await sleep(50 * attempt + Math.random() * 100, undefined, { signal });
    }
  }
}
