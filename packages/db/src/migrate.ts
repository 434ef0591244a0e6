import { fileURLToPath } from 'node:url';
import { migrate } from 'drizzle-orm/postgres-js/migrator';
import type { Database } from './client';

/** The committed SQL migrations that ship with this package (written by drizzle-kit). */
export const migrationsFolder = fileURLToPath(new URL('../migrations', import.meta.url));

/**
 * Applies every migration not yet applied, in one transaction. Idempotent: drizzle records applied
 * migrations in drizzle.__drizzle_migrations, so running it at every start-up is safe.
 */
export async function runMigrations(db: Database, folder = migrationsFolder): Promise<void> {
  await migrate(db, { migrationsFolder: folder });
}
