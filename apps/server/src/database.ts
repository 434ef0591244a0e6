import { setTimeout as sleep } from 'node:timers/promises';
import postgres from 'postgres';
import { createDb, type Db, runMigrations, startEmbeddedPostgres, type EmbeddedPostgresHandle } from '@asyncscope/db';
import type { Logger } from 'pino';

export interface DatabaseOptions {
  /** An existing server; without it an embedded PostgreSQL is started in `dataDir`. */
  databaseUrl?: string | undefined;
  dataDir: string;
  poolMax: number;
  statementTimeoutMs: number;
  applicationName: string;
  log: Logger;
}

export interface Database {
  db: Db;
  /** Where the data lives, for the start-up banner (no password). */
  description: string;
  /** True once the database answered and migrations ran. */
  isReady(): boolean;
  /** Resolves when ready; rejects only if shutdown comes first. */
  ready: Promise<void>;
  /** Closes the pool (waiting up to timeoutS for running queries) and stops the embedded server. */
  close(timeoutS: number): Promise<void>;
}

const EMBEDDED_DATABASE = 'asyncscope';

function withDatabase(url: string, database: string): string {
  const u = new URL(url);
  u.pathname = `/${database}`;
  return u.toString();
}

function describeUrl(url: string): string {
  const u = new URL(url);
  return `PostgreSQL at ${u.hostname}:${u.port || '5432'}${u.pathname}`;
}

async function ensureDatabase(adminUrl: string, name: string): Promise<void> {
  const admin = postgres(adminUrl, { max: 1, onnotice: () => undefined });
  try {
    const rows = await admin`select 1 from pg_database where datname = ${name}`;
    if (rows.length === 0) await admin.unsafe(`create database "${name}"`);
  } finally {
    await admin.end();
  }
}

/**
 * Opens the database: starts the embedded server when no URL is given (a failure there is fatal: retrying
 * would not fix a permission or disk problem), then connects and migrates in the background, retrying
 * with capped exponential backoff and full jitter while the server is unreachable.
 */
export async function openDatabase(options: DatabaseOptions, shutdown: AbortSignal): Promise<Database> {
  const { log } = options;
  let embedded: EmbeddedPostgresHandle | undefined;
  let url = options.databaseUrl;
  let description: string;
  if (url) {
    description = describeUrl(url);
  } else {
    embedded = await startEmbeddedPostgres({
      dataDir: options.dataDir,
      onLog: (line) => { log.debug({ postgres: line }, 'embedded postgres'); },
    });
    await ensureDatabase(embedded.url, EMBEDDED_DATABASE);
    url = withDatabase(embedded.url, EMBEDDED_DATABASE);
    description = `embedded PostgreSQL 18 (data in ${embedded.dataDir}, port ${embedded.port})`;
  }

  const db = createDb({
    url,
    max: options.poolMax,
    statementTimeoutMs: options.statementTimeoutMs,
    applicationName: options.applicationName,
  });

  let ready = false;
  const readiness = (async () => {
    for (let attempt = 0; ; attempt++) {
      try {
        await runMigrations(db.db);
        ready = true;
        log.info({ database: description }, 'database ready, migrations applied');
        return;
      } catch (error) {
        const delayMs = Math.round(Math.random() * Math.min(10_000, 250 * 2 ** attempt));
        log.warn(
          { database: description, attempt: attempt + 1, retryInMs: delayMs, err: error },
          `database unreachable (${error instanceof Error ? error.message : String(error)}); retrying`,
        );
        await sleep(delayMs, undefined, { signal: shutdown });
      }
    }
  })();
  // The loop ends by itself on success, or with an AbortError at shutdown, which is expected.
  readiness.catch(() => undefined);

  return {
    db,
    description,
    isReady: () => ready,
    ready: readiness,
    async close(timeoutS) {
      try {
        await db.close(timeoutS);
      } finally {
        await embedded?.stop();
      }
    },
  };
}
