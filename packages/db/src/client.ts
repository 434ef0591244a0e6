import { drizzle, type PostgresJsDatabase } from 'drizzle-orm/postgres-js';
import postgres from 'postgres';
import * as schema from './schema';

export interface DbConfig {
  /** postgres:// connection string. */
  url: string;
  /** Pool size: the most connections this process opens. */
  max?: number;
  /** Server-side statement_timeout for every connection, in ms (0 = none). */
  statementTimeoutMs?: number;
  /** Shown in pg_stat_activity, so this pool's connections can be counted and told apart. */
  applicationName?: string;
  /** Seconds an idle connection is kept before it is closed. */
  idleTimeoutS?: number;
  /** Seconds to wait for a new connection before failing. */
  connectTimeoutS?: number;
}

export type Database = PostgresJsDatabase<typeof schema>;

export interface Db {
  /** drizzle, typed with the schema. */
  db: Database;
  /** The underlying postgres.js pool, for raw SQL (pg_sleep, pg_stat_activity, ...). */
  sql: postgres.Sql;
  config: Readonly<Required<DbConfig>>;
  /** Waits up to `timeoutS` for running queries, then closes every connection. */
  close(timeoutS?: number): Promise<void>;
}

export const DEFAULT_APPLICATION_NAME = 'asyncscope';

export function createDb(config: DbConfig): Db {
  const resolved: Required<DbConfig> = {
    url: config.url,
    max: config.max ?? 10,
    statementTimeoutMs: config.statementTimeoutMs ?? 30_000,
    applicationName: config.applicationName ?? DEFAULT_APPLICATION_NAME,
    idleTimeoutS: config.idleTimeoutS ?? 30,
    connectTimeoutS: config.connectTimeoutS ?? 10,
  };
  const sql = postgres(resolved.url, {
    max: resolved.max,
    idle_timeout: resolved.idleTimeoutS,
    connect_timeout: resolved.connectTimeoutS,
    // Notices (e.g. "relation already exists, skipping") are not errors; keep them out of stdout.
    onnotice: () => undefined,
    connection: {
      application_name: resolved.applicationName,
      statement_timeout: resolved.statementTimeoutMs,
    },
  });
  const db = drizzle(sql, { schema });
  return {
    db,
    sql,
    config: resolved,
    close: (timeoutS = 5) => sql.end({ timeout: timeoutS }),
  };
}
