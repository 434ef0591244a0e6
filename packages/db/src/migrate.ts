import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { migrate } from 'drizzle-orm/postgres-js/migrator';
import type { Orm } from './client';

/**
 * The committed SQL migrations that ship with this package (written by drizzle-kit). Found through the
 * package's own name rather than relative to this file, so the path is right both from the sources and
 * from the server's bundle (apps/server/dist), where this code is inlined.
 */
export const migrationsFolder = join(dirname(createRequire(import.meta.url).resolve('@asyncscope/db/package.json')), 'migrations');

/**
 * Applies every migration not yet applied, in one transaction. Idempotent: drizzle records applied
 * migrations in drizzle.__drizzle_migrations, so running it at every start-up is safe.
 */
export async function runMigrations(db: Orm, folder = migrationsFolder): Promise<void> {
  await migrate(db, { migrationsFolder: folder });
}
