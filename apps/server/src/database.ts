import { setTimeout as sleep } from 'node:timers/promises';
import postgres from 'postgres';
import {
  createDbClient,
  DatabaseUnavailableError,
  type DbClient,
  type DbHealth,
  type PoolConnectionCount,
  runMigrations,
  startDbHealth,
  startEmbeddedPostgres,
  type EmbeddedPostgresHandle,
} from '@asyncscope/db';
import type { Logger } from 'pino';

export interface DatabaseOptions {
  /** An existing server; without it an embedded PostgreSQL is started in `dataDir`. */
  databaseUrl?: string | undefined;
  dataDir: string;
  poolMax: number;
  poolMin: number;
  statementTimeoutMs: number;
  applicationName: string;
  log: Logger;
}

export interface ServerDatabase {
  client: DbClient;
  /** Where the data lives, for the start-up banner and logs (no password). */
  description: string;
  /** The embedded database's connection URL, password included: for the person at the terminal, never for logs. */
  embeddedUrl: string | undefined;
  /** True once migrations ran, and then while the database answers (its health check follows it both ways). */
  isReady(): boolean;
  /** Fires when the database goes away (calls in flight stop with SERVICE_UNAVAILABLE); renewed when it is back. */
  downSignal(): AbortSignal;
  /** Backends the pool's watchdog terminated because their statement never arrived. */
  stalledTerminated(): number;
  /** The pool's connections by state, read outside the pool (it answers while the pool is saturated). */
  poolConnections(): Promise<PoolConnectionCount[]>;
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

export interface EmbeddedDatabase {
  /** The application database's URL, password included (never for logs). */
  url: string;
  description: string;
  stop(): Promise<void>;
}

/**
 * The embedded PostgreSQL with the application's database created: what a server without DATABASE_URL
 * runs on. With WORKERS > 1 the cluster's primary starts it once and hands its URL to the workers.
 */
export async function startEmbeddedDatabase(dataDir: string, log: Logger): Promise<EmbeddedDatabase> {
  const embedded: EmbeddedPostgresHandle = await startEmbeddedPostgres({
    dataDir,
    onLog: (line) => { log.debug({ postgres: line }, 'embedded postgres'); },
  });
  try {
    await ensureDatabase(embedded.url, EMBEDDED_DATABASE);
  } catch (error) {
    await embedded.stop();
    throw error;
  }
  return {
    url: withDatabase(embedded.url, EMBEDDED_DATABASE),
    description: `embedded PostgreSQL 18 (data in ${embedded.dataDir}, port ${embedded.port})`,
    stop: () => embedded.stop(),
  };
}

/**
 * Opens the database: starts the embedded server when no URL is given (a failure there is fatal: retrying
 * would not fix a permission or disk problem), then connects and migrates in the background, retrying
 * with capped exponential backoff and full jitter while the server is unreachable.
 */
export async function openDatabase(options: DatabaseOptions, shutdown: AbortSignal): Promise<ServerDatabase> {
  const { log } = options;
  let embedded: EmbeddedDatabase | undefined;
  let url = options.databaseUrl;
  let description: string;
  if (url) {
    description = describeUrl(url);
  } else {
    embedded = await startEmbeddedDatabase(options.dataDir, log);
    url = embedded.url;
    description = embedded.description;
  }

  let health: DbHealth | undefined;
  const client = createDbClient({
    url,
    poolMax: options.poolMax,
    poolMin: options.poolMin,
    statementTimeoutMs: options.statementTimeoutMs,
    applicationName: options.applicationName,
    onConnectionLost: () => { health?.nudge(); },
  });
  const notYet = new AbortController();
  notYet.abort(new DatabaseUnavailableError('not connected yet'));

  let ready = false;
  const readiness = (async () => {
    for (let attempt = 0; ; attempt++) {
      try {
        await runMigrations(client.orm);
        ready = true;
        shutdown.throwIfAborted();
        health = startDbHealth({
          url,
          applicationName: options.applicationName,
          runningStatements: () => client.runningStatements(),
          // The driver's reason goes to the operator's log only (host and port, never credentials); /readyz
          // and the callers get fixed texts.
          onChange: (up, detail) => {
            // The kept connections died with it: open them now, before the calls that come back need them.
            if (up) client.keepOpen();
            if (up) log.info({ database: description }, 'database is back: serving again');
            else log.warn({ database: description, detail }, 'database unreachable: calls answer 503 SERVICE_UNAVAILABLE until it is back');
          },
          onStalled: (pids) => { log.warn({ pids }, 'watchdog: statements that never reached their connection; connections terminated and replaced'); },
        });
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
    client,
    description,
    embeddedUrl: embedded ? url : undefined,
    isReady: () => ready && (health?.isReady() ?? false),
    downSignal: () => health?.downSignal ?? notYet.signal,
    stalledTerminated: () => health?.stalledTerminated ?? 0,
    poolConnections: () => health?.poolConnections() ?? Promise.reject(new DatabaseUnavailableError('not connected yet')),
    ready: readiness,
    async close(timeoutS) {
      try {
        await health?.close();
        await client.close(timeoutS);
      } finally {
        await embedded?.stop();
      }
    },
  };
}
