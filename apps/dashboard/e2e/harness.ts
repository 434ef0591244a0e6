/**
 * End-to-end harness: the real server as a child process (as `pnpm start` runs it) on a free port, its own
 * database cloned from the migrated template, and Debian's Chromium driven by playwright-core.
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { createHash, createPublicKey } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { get as httpsGet } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { until as sharedUntil } from '@asyncscope/concurrency/testing';
import { freePort } from '@asyncscope/db';
import { createTestDatabase, type TestDatabase } from '@asyncscope/db/testing';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { generate } from 'selfsigned';
import { inject } from 'vitest';

export const APP_DIR = fileURLToPath(new URL('..', import.meta.url));
export const SERVER_DIR = fileURLToPath(new URL('../../server', import.meta.url));
/** Exactly what `pnpm start` runs: the server's serve script, on its build (turbo builds it before these tests). */
const SERVE_ARGS = (JSON.parse(readFileSync(join(SERVER_DIR, 'package.json'), 'utf8')) as { scripts: { serve: string } }).scripts.serve.trim().split(/\s+/).slice(1);
export const DIST_DIR = join(APP_DIR, 'dist');
export const ARTIFACTS_DIR = join(APP_DIR, 'test-artifacts');

export const CHROMIUM_PATH = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
export const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'];

/** Why the browser tests cannot run here, or null when they can. */
export function browserMissing(): string | null {
  if (!existsSync(CHROMIUM_PATH)) return `no Chromium at ${CHROMIUM_PATH} (install Debian's chromium, or set CHROMIUM_PATH)`;
  return null;
}

export interface ServerProcess {
  url: string;
  port: number;
  proc: ChildProcessWithoutNullStreams;
  output: () => string;
  /** SIGTERM, and wait for the exit. */
  stop: () => Promise<void>;
}

export interface ServerOptions {
  port: number;
  databaseUrl: string;
  token: string;
  applicationName: string;
  poolMax?: number;
  /** More of the server's environment (e.g. MAX_IN_FLIGHT). */
  env?: Record<string, string>;
  /** Serve HTTPS (HTTP/2 and HTTP/1.1) with this certificate: TLS_CERT / TLS_KEY. */
  tls?: TestCertificate;
}

export interface TestCertificate {
  cert: string;
  key: string;
  /** base64 SHA-256 of its public key: for Chromium's --ignore-certificate-errors-spki-list. */
  spkiHash: string;
}

/** A throwaway certificate for 127.0.0.1 / localhost, made now (no key is committed; no openssl CLI needed). */
export async function makeTestCertificate(): Promise<TestCertificate> {
  const pems = await generate([{ name: 'commonName', value: 'localhost' }], {
    keyType: 'ec',
    curve: 'P-256',
    algorithm: 'sha256',
    notBeforeDate: new Date(Date.now() - 60_000),
    notAfterDate: new Date(Date.now() + 2 * 86_400_000),
    extensions: [
      { name: 'keyUsage', digitalSignature: true, critical: true },
      { name: 'extKeyUsage', serverAuth: true },
      { name: 'subjectAltName', altNames: [{ type: 2, value: 'localhost' }, { type: 7, ip: '127.0.0.1' }] },
    ],
  });
  const spki = createPublicKey(pems.cert).export({ type: 'spki', format: 'der' });
  return { cert: pems.cert, key: pems.private, spkiHash: createHash('sha256').update(spki).digest('base64') };
}

/** GET /readyz answered 200 (over https, trusting only `ca`). */
function readyOverTls(url: string, ca: string): Promise<boolean> {
  return new Promise((resolve) => {
    httpsGet(`${url}/readyz`, { ca, agent: false }, (res) => {
      res.resume();
      resolve(res.statusCode === 200);
    }).on('error', () => { resolve(false); });
  });
}

export async function startServer(options: ServerOptions): Promise<ServerProcess> {
  const tlsDir = options.tls ? await mkdtemp(join(tmpdir(), 'asyncscope-e2e-tls-')) : undefined;
  const tlsEnv: Record<string, string> = {};
  if (options.tls && tlsDir) {
    await writeFile(join(tlsDir, 'cert.pem'), options.tls.cert);
    await writeFile(join(tlsDir, 'key.pem'), options.tls.key, { mode: 0o600 });
    Object.assign(tlsEnv, { TLS_CERT: join(tlsDir, 'cert.pem'), TLS_KEY: join(tlsDir, 'key.pem') });
  }
  const proc = spawn(process.execPath, SERVE_ARGS, {
    cwd: SERVER_DIR,
    env: {
      PATH: process.env.PATH ?? '',
      HOME: process.env.HOME ?? '/tmp',
      PORT: String(options.port),
      HOST: '127.0.0.1',
      DATABASE_URL: options.databaseUrl,
      API_TOKEN: options.token,
      DASHBOARD_DIR: DIST_DIR,
      LOG_LEVEL: 'warn',
      // A test that stops the server waits for the calls in flight at most this long (the default is 10 s).
      SHUTDOWN_TIMEOUT_MS: '2000',
      DB_APPLICATION_NAME: options.applicationName,
      DB_POOL_MAX: String(options.poolMax ?? 10),
      ...tlsEnv,
      ...options.env,
    },
  });
  let out = '';
  proc.stdout.on('data', (b: Buffer) => (out += b.toString()));
  proc.stderr.on('data', (b: Buffer) => (out += b.toString()));
  const exited = new Promise<void>((resolve) => proc.once('exit', () => { resolve(); }));
  const url = `${options.tls ? 'https' : 'http'}://127.0.0.1:${options.port}`;
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (proc.exitCode !== null) throw new Error(`the server exited (${proc.exitCode}):\n${out}`);
    if (out.includes(`Dashboard ${url}`)) {
      const ready = options.tls ? await readyOverTls(url, options.tls.cert) : await fetch(`${url}/readyz`).then((r) => r.ok, () => false);
      if (ready) break;
    }
    if (Date.now() > deadline) {
      proc.kill('SIGKILL');
      throw new Error(`the server did not become ready in 30 s:\n${out}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  if (out.includes('Dashboard not built')) throw new Error(`the server did not find the dashboard in ${DIST_DIR}`);
  return {
    url,
    port: options.port,
    proc,
    output: () => out,
    stop: async () => {
      if (proc.exitCode === null) proc.kill('SIGTERM');
      // A graceful stop takes at most SHUTDOWN_TIMEOUT_MS and the pool's close; one that hangs is a failure
      // to report (its output says where), not a test that runs into vitest's timeout.
      let hungOutput: string | undefined;
      const hung = setTimeout(() => {
        hungOutput = out.slice(-4000);
        proc.kill('SIGKILL');
      }, 15_000);
      await exited;
      clearTimeout(hung);
      if (tlsDir) await rm(tlsDir, { recursive: true, force: true });
      // A server that does not stop is a defect (a wedge), not something for the harness to paper over.
      if (hungOutput !== undefined) throw new Error(`the server did not exit 15 s after SIGTERM (killed). Its output:\n${hungOutput}`);
    },
  };
}

export interface Browser {
  context: BrowserContext;
  page: Page;
  close: () => Promise<void>;
}

export interface BrowserOptions {
  /**
   * Certificates (base64 SPKI SHA-256) Chromium accepts though no authority signed them: a test's own,
   * and only those (rather than --ignore-certificate-errors for every certificate).
   */
  trustSpki?: string[];
}

export async function launchBrowser(options: BrowserOptions = {}): Promise<Browser> {
  const userDataDir = await mkdtemp(join(tmpdir(), 'asyncscope-chromium-'));
  const trust = options.trustSpki?.length ? [`--ignore-certificate-errors-spki-list=${options.trustSpki.join(',')}`] : [];
  const context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: CHROMIUM_PATH,
    headless: true,
    args: [...CHROMIUM_ARGS, ...trust],
    viewport: { width: 1440, height: 900 },
    deviceScaleFactor: 1,
  });
  const page = context.pages()[0] ?? (await context.newPage());
  return {
    context,
    page,
    close: async () => {
      await context.close();
      await rm(userDataDir, { recursive: true, force: true });
    },
  };
}

/** A connection of the server's pool as Postgres sees it. */
export interface Session {
  pid: number;
  state: string | null;
  query: string;
  /** Epoch ms the current (or last) statement started. */
  startedMs: number;
}

export interface DashboardOptions {
  token: string;
  /** The PostgreSQL server and migrated template to clone (default: vitest's globalSetup, via inject). */
  database?: { adminUrl: string; template: string };
  /** The server's DB_APPLICATION_NAME, by which its connections are found in pg_stat_activity. */
  applicationName: string;
  poolMax: number;
  /** More of the server's environment. */
  env?: Record<string, string>;
  tls?: TestCertificate;
  /** Fills the database before the server starts. */
  seed?: (db: TestDatabase) => Promise<void>;
  /** Before the page opens: listeners, init scripts. */
  preparePage?: (page: Page) => Promise<void>;
  /** Open the dashboard with the token and wait for its event stream (default), or leave the page blank. */
  open?: boolean;
}

export interface Dashboard {
  /** The test's own database (a connection of its own, named `<applicationName>-observer`). */
  db: TestDatabase;
  /** The server now: a test that stopped it starts the next one with startServer(). */
  readonly server: ServerProcess;
  browser: Browser;
  page: Page;
  /** Starts the server again, on the same port and database, as `server`. */
  startServer: () => Promise<ServerProcess>;
  /** The server's pool connections (its stats panel's own pg_stat_activity reads left out). */
  sessions: () => Promise<Session[]>;
  /** Those running a pg_sleep: the lab's calls inside Postgres. */
  sleeping: () => Promise<Session[]>;
  /** Closes what got made, last first. */
  close: () => Promise<void>;
}

/**
 * What each browser test starts with: the built dashboard, its own database, the real server on a free port,
 * Chromium, and (unless `open: false`) the page opened with the token and its event stream live.
 */
export async function startDashboard(options: DashboardOptions): Promise<Dashboard> {
  if (!existsSync(join(DIST_DIR, 'index.html'))) throw new Error(`No built dashboard in ${DIST_DIR}: run "npx vite build" first (turbo runs it before "test").`);
  const cleanups: (() => Promise<void>)[] = [];
  const close = async (): Promise<void> => {
    // Every cleanup runs, last made first, even when one fails (a browser that will not close must not leave
    // the server running and the database behind); the failures are thrown together at the end.
    const failures: unknown[] = [];
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup().catch((error: unknown) => failures.push(error));
    if (failures.length > 0) throw new AggregateError(failures, `${failures.length} cleanup(s) failed`);
  };
  try {
    const { adminUrl, template } = options.database ?? { adminUrl: inject('pgAdminUrl'), template: inject('pgTemplate') };
    const db = await createTestDatabase(adminUrl, template, { applicationName: `${options.applicationName}-observer`, poolMax: 2 });
    cleanups.push(() => db[Symbol.asyncDispose]());
    await options.seed?.(db);
    const port = await freePort();
    const serverOptions: ServerOptions = { port, databaseUrl: db.url, token: options.token, applicationName: options.applicationName, poolMax: options.poolMax, env: options.env, tls: options.tls };
    let server = await startServer(serverOptions);
    cleanups.push(() => server.stop()); // the current server, also after a restart
    const browser = await launchBrowser({ trustSpki: options.tls ? [options.tls.spkiHash] : [] });
    cleanups.push(() => browser.close());
    const { page } = browser;
    page.on('pageerror', (error) => { console.error('[page error]', error.message); });
    const sessions = async (): Promise<Session[]> =>
      (
        await db.sql<Session[]>`
          select pid, state, query, (extract(epoch from query_start) * 1000)::float8 as "startedMs"
          from pg_stat_activity where application_name = ${options.applicationName} and datname = current_database()`
      ).filter((s) => !s.query.includes('pg_stat_activity'));
    const dashboard: Dashboard = {
      db,
      get server() {
        return server;
      },
      browser,
      page,
      startServer: async () => (server = await startServer(serverOptions)),
      sessions,
      sleeping: async () => (await sessions()).filter((s) => s.state === 'active' && s.query.includes('pg_sleep')),
      close,
    };
    await options.preparePage?.(page);
    if (options.open ?? true) {
      await page.goto(`${server.url}/#token=${options.token}`);
      await until('the event stream', async () => (await page.getByTestId('connection').textContent())?.includes('event stream live'), 20_000);
    }
    return dashboard;
  } catch (error) {
    await close();
    throw error;
  }
}

export async function screenshot(page: Page, name: string): Promise<string> {
  await mkdir(ARTIFACTS_DIR, { recursive: true });
  const path = join(ARTIFACTS_DIR, `${name}.png`);
  await page.screenshot({ path });
  return path;
}

/**
 * The shared `until`, for a page: a check that throws (an element mid-render, a navigation) is retried rather
 * than ending the wait, and the last such error is named if the wait times out.
 */
export async function until<T>(what: string, check: () => Promise<T | undefined | false> | T | undefined | false, timeoutMs = 10_000): Promise<T> {
  let last: unknown;
  const retrying = async (): Promise<T | undefined | false> => {
    try {
      return await check();
    } catch (error) {
      last = error;
      return undefined;
    }
  };
  return sharedUntil(what, retrying, { timeoutMs, intervalMs: 50, context: () => (last instanceof Error ? `last error: ${last.message}` : 'no error') });
}

export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? Number.NaN;
}
