/**
 * What every scenario stands on: the chaos PostgreSQL and the real built server as a child process
 * (packages/harness's startApiServer: the `serve` script's node flags and bundle, as `pnpm start` runs it),
 * pointed at it through DATABASE_URL. Everything started here is stopped in `finally`, on failure too.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startApiServer, type ApiServer } from '@asyncscope/harness/api-server';
import { within } from '@asyncscope/harness/children';
import { config } from './config';
import { target, type Target } from './http';
import { startChaosPostgres, withSql, type ChaosPostgres } from './pg';

/**
 * The apps/server folder whose build is under test: CHAOS_SERVER_DIR (e.g. another worktree's
 * apps/server, after its build), or this checkout's.
 */
export function serverDir(): string {
  const given = config.serverDir;
  const dir = given ? resolve(given) : fileURLToPath(new URL('../../server', import.meta.url));
  if (!existsSync(join(dir, 'dist', 'main.mjs'))) {
    throw new Error(`no server build in ${dir}/dist: build it (\`node build.mjs\` in ${dir}, or \`npx --yes pnpm@10.34.8 --filter @asyncscope/server run build\`), or set CHAOS_SERVER_DIR`);
  }
  return dir;
}

export const SEEDED_USERS = 1000;

export interface ServerUnderTest {
  api: ApiServer;
  t: Target;
  /** Its DB_APPLICATION_NAME: how its pool's connections are found in pg_stat_activity. */
  applicationName: string;
  /** The exit code or signal once it exited, else undefined. */
  exitedWith(): number | string | undefined;
  /** What it printed about why it died: the first error line of its output, if any. */
  crashLine(): string;
  /** Highest RSS seen so far (sampled every 250 ms from /proc), in MB. */
  peakRssMb(): number;
  close(): Promise<void>;
}

function rssKb(pid: number): number {
  try {
    const match = /^VmHWM:\s+(\d+)\s+kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return match?.[1] ? Number(match[1]) : 0;
  } catch {
    return 0; // exited
  }
}

export async function startServer(pg: ChaosPostgres, env: Record<string, string>, signal: AbortSignal): Promise<ServerUnderTest> {
  const applicationName = `chaos-${randomBytes(4).toString('hex')}`;
  const api = await startApiServer(pg.url, { DB_APPLICATION_NAME: applicationName, LOG_LEVEL: 'warn', ...env }, signal, { serverDir: serverDir() });
  let exited: number | string | undefined;
  void api.child.exited.then((code) => { exited = code; });
  let peakKb = rssKb(api.child.pid);
  const sampler = setInterval(() => { peakKb = Math.max(peakKb, rssKb(api.child.pid)); }, 250);
  sampler.unref();
  return {
    api,
    t: target(api.url, api.token),
    applicationName,
    exitedWith: () => exited,
    crashLine: () => {
      const lines = api.child.tail().split('\n');
      // Prefer the thrown error's own line (`TypeError: …`) over log lines that merely mention errors.
      const line = lines.find((l) => /^\s*\w*Error: /.test(l)) ?? lines.find((l) => /uncaught|FATAL|"level":[56]0/i.test(l)) ?? '';
      return line.trim().slice(0, 200);
    },
    peakRssMb: () => Math.round(Math.max(peakKb, rssKb(api.child.pid)) / 1024),
    async close() {
      clearInterval(sampler);
      await api.close();
    },
  };
}

/** Inserts users 1..SEEDED_USERS (ids from the identity column of a fresh table) once the server has migrated. */
export async function seedUsers(pg: ChaosPostgres): Promise<void> {
  await withSql(pg.url, async (sql) => {
    const [row] = await sql<{ n: number }[]>`select count(*)::int as n from users`;
    if ((row?.n ?? 0) > 0) return;
    await sql`insert into users (name, email) select 'Seed ' || g, 'seed' || g || '@chaos.test' from generate_series(1, ${SEEDED_USERS}::int) g`;
  });
}

/**
 * Runs `fn` with a fresh chaos PostgreSQL and a signal that fires after `limitMs` (so a stuck scenario ends),
 * then tears everything down: `servers` started through `start` are stopped, then PostgreSQL.
 */
export async function withChaos<T>(
  limitMs: number,
  fn: (env: { pg: ChaosPostgres; signal: AbortSignal; start: (env?: Record<string, string>) => Promise<ServerUnderTest> }) => Promise<T>,
): Promise<T> {
  const controller = new AbortController();
  const timer = setTimeout(() => { controller.abort(new Error(`scenario exceeded its ${limitMs} ms limit`)); }, limitMs);
  const servers: ServerUnderTest[] = [];
  const pg = await startChaosPostgres();
  try {
    return await fn({
      pg,
      signal: controller.signal,
      start: async (env = {}) => {
        const s = await startServer(pg, env, controller.signal);
        servers.push(s);
        await seedUsers(pg);
        return s;
      },
    });
  } finally {
    clearTimeout(timer);
    for (const s of servers) await within(s.close(), 15_000);
    await pg.close();
  }
}
