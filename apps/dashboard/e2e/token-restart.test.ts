/**
 * A restart of the server keeps the dashboard logged in when no API_TOKEN is set: the server keeps the
 * token it generated in DATA_DIR, so the page reconnects by itself instead of asking for a token.
 * The real server (a child process run as `pnpm start` runs it), its own database, Chromium.
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from '@asyncscope/db';
import { createTestDatabase, type TestDatabase } from '@asyncscope/db/testing';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { browserMissing, DIST_DIR, launchBrowser, screenshot, SERVER_DIR, until, type Browser } from './harness';

const SERVE_ARGS = (JSON.parse(readFileSync(join(SERVER_DIR, 'package.json'), 'utf8')) as { scripts: { serve: string } }).scripts.serve.trim().split(/\s+/).slice(1);

interface Server { proc: ChildProcessWithoutNullStreams; output: () => string; exited: Promise<void> }

/** The server with no API_TOKEN (the harness always sets one), until its banner. */
async function startServer(port: number, dataDir: string, databaseUrl: string): Promise<Server> {
  const proc = spawn(process.execPath, SERVE_ARGS, {
    cwd: SERVER_DIR,
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp', PORT: String(port), DATA_DIR: dataDir, DATABASE_URL: databaseUrl, DASHBOARD_DIR: DIST_DIR, LOG_LEVEL: 'warn' },
  });
  let out = '';
  proc.stdout.on('data', (b: Buffer) => (out += b.toString()));
  proc.stderr.on('data', (b: Buffer) => (out += b.toString()));
  const exited = new Promise<void>((resolve) => proc.once('exit', () => { resolve(); }));
  const server = { proc, output: () => out, exited };
  servers.push(server);
  await until('the banner', () => {
    if (proc.exitCode !== null) throw new Error(`the server exited (${proc.exitCode}):\n${out}`);
    return out.includes('Dashboard http://');
  }, 30_000).catch((error: unknown) => { throw new Error(`${error instanceof Error ? error.message : String(error)}\n${out}`); });
  return server;
}

async function stopServer(server: Server): Promise<void> {
  if (server.proc.exitCode === null && server.proc.signalCode === null) server.proc.kill('SIGTERM');
  await server.exited;
}

const servers: Server[] = [];
const missing = browserMissing();
if (missing) console.warn(`[dashboard e2e] SKIPPED: ${missing}`);

describe.skipIf(missing !== null)('dashboard across a server restart, with the generated token', () => {
  let db: TestDatabase | undefined;
  let dataDir: string | undefined;
  let browser: Browser | undefined;

  beforeAll(async () => {
    if (!existsSync(join(DIST_DIR, 'index.html'))) throw new Error(`No built dashboard in ${DIST_DIR}: run "npx vite build" first (turbo runs it before "test").`);
    db = await createTestDatabase(inject('pgAdminUrl'), inject('pgTemplate'), { applicationName: 'token-restart-observer', poolMax: 1 });
    dataDir = await mkdtemp(join(tmpdir(), 'asyncscope-token-e2e-'));
    browser = await launchBrowser();
  }, 90_000);

  afterAll(async () => {
    for (const s of servers.splice(0)) {
      if (s.proc.exitCode === null && s.proc.signalCode === null) s.proc.kill('SIGKILL');
      await s.exited;
    }
    await browser?.close();
    await db?.[Symbol.asyncDispose]();
    if (dataDir) await rm(dataDir, { recursive: true, force: true });
  });

  it('reconnects by itself, without asking for a token', async () => {
    if (!db || !dataDir || !browser) throw new Error('setup failed');
    const { page } = browser;
    const port = await freePort();
    let server = await startServer(port, dataDir, db.url);
    const link = /Dashboard (http:\/\/\S+#token=\S+)/.exec(server.output())?.[1];
    expect(link).toBeDefined();
    await page.goto(link ?? '');
    const connection = page.getByTestId('connection');
    await until('connected', async () => (await connection.textContent())?.includes('event stream live'), 20_000);

    await stopServer(server);
    await until('the dashboard notices', async () => (await connection.textContent())?.includes('Server unreachable'), 10_000);
    server = await startServer(port, dataDir, db.url);
    await until('reconnected', async () => (await page.getByTestId('connection').isVisible()) && (await connection.textContent())?.includes('event stream live'), 20_000).catch(async (error: unknown) => {
      await screenshot(page, 'token-restart-failed');
      throw error;
    });
    expect(await page.getByLabel('API token').count()).toBe(0);
    expect(await page.getByTestId('token-error').count()).toBe(0);
    await stopServer(server);
  }, 90_000);
});
