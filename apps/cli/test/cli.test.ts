/**
 * The real `asyncscope` binary as a child process against the built server on a real PostgreSQL: exit
 * codes, --json output, a CRUD round trip, a concurrent fetch, Ctrl+C (SIGINT) mid-fetch and mid-stream
 * with the server's statements gone afterwards, and one run in a real terminal (tmux).
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from '@asyncscope/db';
import { createTestDatabase, type TestDatabase } from '@asyncscope/db/testing';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { until } from '@asyncscope/concurrency/testing';
import { seedUsers } from '@asyncscope/api/testing';
import { ARTIFACTS_DIR, BIN, runCli, startCli, startServer, type ServerProcess } from './harness';

const TOKEN = `cli-test-token-${randomBytes(8).toString('hex')}`;
const APP_NAME = `cli-test-${randomBytes(3).toString('hex')}`;

let db: TestDatabase;
let server: ServerProcess;
let env: Record<string, string>;

beforeAll(async () => {
  mkdirSync(ARTIFACTS_DIR, { recursive: true });
  db = await createTestDatabase(inject('pgAdminUrl'), inject('pgTemplate'), { applicationName: `${APP_NAME}-observer`, poolMax: 2 });
  await seedUsers(db.sql, 300);
  server = await startServer({ port: await freePort(), databaseUrl: db.url, token: TOKEN, applicationName: APP_NAME });
  env = { ASYNCSCOPE_URL: server.url, ASYNCSCOPE_TOKEN: TOKEN };
});

afterAll(async () => {
  await (server as ServerProcess | undefined)?.stop();
  await (db as TestDatabase | undefined)?.[Symbol.asyncDispose]();
});

/** The server's statements now running (its own pool, by application_name). */
async function activeStatements(): Promise<string[]> {
  const rows = await db.sql<{ query: string }[]>`select query from pg_stat_activity where application_name = ${APP_NAME} and state <> 'idle'`;
  return rows.map((r) => r.query);
}

async function setLatency(procedure: string, latencyMs: number): Promise<void> {
  const res = await fetch(`${server.url}/trpc/lab.setFaults`, {
    method: 'POST',
    headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
    body: JSON.stringify({ procedure, fault: { latencyMs } }),
  });
  expect(res.status).toBe(200);
}

describe('exit codes and configuration', () => {
  it('--help exits 0 for every command; a bad flag exits 2 with one line', async () => {
    const helps = [['--help'], ['users', '--help'], ['users', 'list', '--help'], ['users', 'get', '--help'], ['users', 'create', '--help'], ['users', 'update', '--help'], ['users', 'delete', '--help'], ['fetch', '--help'], ['users', 'stream', '--help'], ['watch', '--help']];
    // In parallel: each is a process start, and the whole file has a minute.
    const results = await Promise.all(helps.map((args) => runCli(args, env)));
    results.forEach((r, i) => {
      expect(r.code, helps[i]?.join(' ')).toBe(0);
      expect(r.stdout).toContain(`Usage: asyncscope ${helps[i]?.slice(0, -1).join(' ') ?? ''}`.trimEnd());
    });
    const bad = await runCli(['users', 'list', '--bogus'], env);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/^error: unknown option '--bogus'/);
    expect((await runCli(['fetch', '--ids', 'ten'], env)).code).toBe(2);
  });

  it('a wrong token exits 3, an unreachable server 4; neither prints the token', async () => {
    const wrong = await runCli(['users', 'list'], { ...env, ASYNCSCOPE_TOKEN: 'wrong-token-0123456789abcdef' });
    expect(wrong.code).toBe(3);
    expect(wrong.stderr.trim().split('\n')).toHaveLength(1);
    expect(wrong.stderr).toContain('UNAUTHORIZED');
    const port = await freePort();
    const away = await runCli(['fetch', '--ids', '1-10'], { ...env, ASYNCSCOPE_URL: `http://127.0.0.1:${port}` });
    expect(away.code).toBe(4);
    expect(away.stderr).toContain(`cannot reach the server at http://127.0.0.1:${port}`);
    for (const r of [wrong, away]) expect(r.stdout + r.stderr).not.toContain(TOKEN);
    expect(wrong.stderr).not.toContain('wrong-token');
  });
});

describe('users', () => {
  it('CRUD round trip with --json, and a table by default', async () => {
    const email = `cli-${randomBytes(3).toString('hex')}@example.com`;
    const created = await runCli(['users', 'create', '--name', 'Ada', '--email', email, '--json'], env);
    expect(created.code).toBe(0);
    const user = JSON.parse(created.stdout) as { id: number; name: string; email: string };
    expect(user).toMatchObject({ name: 'Ada', email });
    const got = await runCli(['users', 'get', String(user.id), '--json'], env);
    expect(JSON.parse(got.stdout)).toMatchObject({ id: user.id, email });
    const updated = await runCli(['users', 'update', String(user.id), '--name', 'Ada Lovelace', '--json'], env);
    expect(JSON.parse(updated.stdout)).toMatchObject({ id: user.id, name: 'Ada Lovelace' });
    const table = await runCli(['users', 'get', String(user.id)], env);
    expect(table.stdout).toMatch(/ID\s+NAME\s+EMAIL\s+CREATED/);
    expect(table.stdout).toContain('Ada Lovelace');
    const list = await runCli(['users', 'list', '--limit', '5', '--json'], env);
    const page = JSON.parse(list.stdout) as { items: unknown[]; total: number };
    expect(page.items).toHaveLength(5);
    expect(page.total).toBe(301);
    expect((await runCli(['users', 'delete', String(user.id), '--json'], env)).code).toBe(0);
    const gone = await runCli(['users', 'get', String(user.id)], env);
    expect(gone.code).toBe(1);
    expect(gone.stderr).toBe(`error: NOT_FOUND: No user with id ${user.id}.\n`);
    const invalid = await runCli(['users', 'create', '--name', 'x', '--email', 'not-an-address'], env);
    expect(invalid.code).toBe(2);
    expect(invalid.stderr).toContain('email must be a valid address');
  });
});

describe('fetch', () => {
  it('fetches 200 ids concurrently with 0 errors, and reports percentiles', async () => {
    const r = await runCli(['fetch', '--ids', '1-200', '--concurrency', '50', '--timeout', '5s', '--retries', '2', '--json'], env);
    expect(r.code, r.stderr).toBe(0);
    const summary = JSON.parse(r.stdout) as { settled: number; outcomes: Record<string, number>; latencyMs: { p50: number; p99: number }; callsPerSecond: number };
    expect(summary.outcomes).toEqual({ ok: 200 });
    expect(summary.latencyMs.p99).toBeGreaterThanOrEqual(summary.latencyMs.p50);
    expect(summary.callsPerSecond).toBeGreaterThan(0);
    // Missing ids are failed calls: exit 5 (partial failure), counted by outcome.
    const partial = await runCli(['fetch', '--ids', '295-305', '--json'], env);
    expect(partial.code).toBe(5);
    expect((JSON.parse(partial.stdout) as { outcomes: Record<string, number> }).outcomes).toEqual({ ok: 6, NOT_FOUND: 5 });
    // --fail-fast: the first failure stops the run (one call at a time here, so which one is certain).
    const fast = await runCli(['fetch', '--ids', '298-310', '--concurrency', '1', '--fail-fast', '--json'], env);
    expect(fast.code).toBe(5);
    expect(JSON.parse(fast.stdout)).toMatchObject({ outcomes: { ok: 3, NOT_FOUND: 1 }, notStarted: 9, stopped: { by: 'fail-fast' } });
  });

  it('Ctrl+C mid-fetch cancels every call on the server: the process exits promptly and its statements are gone', async () => {
    await setLatency('users.byId', 20_000);
    try {
      const run = startCli(['fetch', '--ids', '1-300', '--concurrency', '20', '--timeout', '30s'], env);
      // Calls in flight: their pg_sleep runs in the server's pool.
      await until('the fetch\'s statements running', async () => (await activeStatements()).filter((q) => q.includes('pg_sleep')).length >= 5, 15_000);
      const interruptedAt = performance.now();
      run.proc.kill('SIGINT');
      const { code } = await run.exited;
      const exitMs = performance.now() - interruptedAt;
      expect(code, run.stderr()).toBe(130);
      // Promptly: the calls' pg_sleep had 20 s to go; cancel, answer and exit take a fraction of a second.
      expect(exitMs).toBeLessThan(3_000);
      writeFileSync(join(ARTIFACTS_DIR, 'fetch-sigint.txt'), `SIGINT to exit: ${exitMs.toFixed(0)} ms\n${run.stdout()}${run.stderr()}`);
      expect(run.stdout()).toMatch(/interrupted: \d+ calls were in flight; the server stopped \d+ \(calls\.cancel\)/);
      const stopped = Number(/the server stopped (\d+)/.exec(run.stdout())?.[1]);
      expect(stopped).toBeGreaterThanOrEqual(5);
      // And how they stopped, from their hops: the running ones' statements were cancelled inside Postgres.
      const fromHops = /on the server \(their hops\): (\d+) statements cancelled inside Postgres \(57014\), (\d+) taken out of the pool queue \(never sent\), (\d+) stopped before any SQL/.exec(run.stdout());
      expect(fromHops, run.stdout()).not.toBeNull();
      expect(Number(fromHops?.[1])).toBeGreaterThanOrEqual(5);
      expect(Number(fromHops?.[1]) + Number(fromHops?.[2]) + Number(fromHops?.[3])).toBe(stopped);
      expect(run.stdout()).toMatch(/outcomes: cancelled \d+, not started \d+/);
      await until('no statement of the server left', async () => (await activeStatements()).length === 0, 3_000);
    } finally {
      await setLatency('users.byId', 0);
    }
  });
});

describe('users stream', () => {
  it('streams every user; Ctrl+C mid-stream stops the server\'s generator and says so', async () => {
    const full = await runCli(['users', 'stream', '--json'], env);
    expect(full.code).toBe(0);
    expect(full.stdout.trim().split('\n')).toHaveLength(300);
    expect(full.stderr).toMatch(/streamed 300 of 300 users/);

    await seedUsers(db.sql, 20_000, 'More');
    const run = startCli(['users', 'stream', '--page-size', '1', '--json'], env);
    await until('rows arriving', () => run.stdout().split('\n').length > 50, 15_000);
    run.proc.kill('SIGINT');
    const { code } = await run.exited;
    expect(code, run.stderr()).toBe(130);
    const rows = run.stdout().trim().split('\n').length;
    expect(rows).toBeLessThan(20_300);
    expect(run.stderr()).toMatch(/^stopped after \d+ of 20300 users .*: the server stopped the stream \(call cli-stream-[0-9a-f]+: its generator and page query ended\)$/m);
    await until('no statement of the server left', async () => (await activeStatements()).length === 0, 3_000);
    await db.sql`delete from users where id > 300`;
  });
});

describe('watch', () => {
  it('prints the hops of each call as they happen, as NDJSON with --json', async () => {
    const run = startCli(['watch', '--json', '--path', 'users.byId', '--for', '20s'], env);
    await until('the watch is live', () => run.stderr().includes('watching '), 15_000);
    expect((await runCli(['users', 'get', '7'], env)).code).toBe(0);
    const hops = await until('the call settled', () => {
      const events = run.stdout().trim().split('\n').filter(Boolean).map((line) => JSON.parse(line) as { type: string; path: string; code?: string });
      return events.some((e) => e.type === 'settled') ? events : undefined;
    }, 10_000);
    expect(hops.map((e) => e.type)).toEqual(expect.arrayContaining(['received', 'started', 'statement.started', 'statement.ended', 'settled']));
    expect(hops.every((e) => e.path === 'users.byId')).toBe(true);
    expect(hops.find((e) => e.type === 'settled')?.code).toBe('OK');
    run.proc.kill('SIGINT');
    expect((await run.exited).code).toBe(0);
  });
});

describe('in a real terminal (tmux)', () => {
  const tmux = ((): string | null => {
    try {
      execFileSync('tmux', ['-V']);
      return null;
    } catch {
      return 'tmux is not installed (apt-get install -y tmux)';
    }
  })();

  it.skipIf(tmux !== null)('fetch shows a live progress bar, captured with capture-pane', async () => {
    const session = `asyncscope-cli-${randomBytes(3).toString('hex')}`;
    const socket = ['-L', session];
    // The environment goes in with -e, not typed into the pane: the token never shows on screen.
    execFileSync('tmux', [...socket, 'new-session', '-d', '-s', session, '-x', '150', '-y', '20', '-e', `ASYNCSCOPE_URL=${server.url}`, '-e', `ASYNCSCOPE_TOKEN=${TOKEN}`, 'bash', '--norc', '--noprofile']);
    const capture = (): string => execFileSync('tmux', [...socket, 'capture-pane', '-p', '-t', session], { encoding: 'utf8' });
    await setLatency('users.byId', 300);
    try {
      execFileSync('tmux', [...socket, 'send-keys', '-t', session, `${process.execPath} ${BIN} fetch --ids 1-150 --concurrency 10 --timeout 5s; echo "exit=$?"`, 'Enter']);
      // Mid-run: some calls done, not all (300 ms each, 10 at a time: about 5 s in all).
      const during = await until('the progress bar mid-run', () => {
        const text = capture();
        const done = Number(/fetch .*\d+% \| (\d+)\/150 \|/.exec(text)?.[1] ?? 0);
        return done > 0 && done < 150 ? text : undefined;
      }, { timeoutMs: 20_000, intervalMs: 50 }); // each check runs tmux
      const after = await until('the summary', () => { const text = capture(); return /^exit=\d+$/m.test(text) ? text : undefined; }, { timeoutMs: 30_000, intervalMs: 50 });
      mkdirSync(ARTIFACTS_DIR, { recursive: true });
      writeFileSync(join(ARTIFACTS_DIR, 'tmux-fetch-progress.txt'), `--- during the run ---\n${during}\n--- after the run ---\n${after}`);
      expect(during).toMatch(/fetch [█░]+ \d+% \| \d+\/150 \| \d+\/s \| ok \d+ failed 0 \| ETA/);
      expect(after).toContain('fetch ████████████████████████████████████████ 100% | 150/150');
      expect(after).toContain('outcomes: ok 150');
      expect(after).toContain('exit=0');
      expect(during + after).not.toContain(TOKEN);
    } finally {
      await setLatency('users.byId', 0);
      execFileSync('tmux', [...socket, 'kill-server']);
    }
  });
});

describe('the packed CLI, installed outside the workspace', () => {
  it('packs into one self-contained file, installs with plain npm (no dependencies to fetch) and runs against the server', () => {
    const outside = mkdtempSync(join(tmpdir(), 'asyncscope-cli-pack-'));
    try {
      const appDir = join(BIN, '..', '..');
      const pnpm = join(appDir, '..', '..', 'node_modules', 'pnpm', 'bin', 'pnpm.cjs');
      // prepack builds the bundle; the pnpmfile drops dependencies (bundled), devDependencies and scripts.
      execFileSync(process.execPath, [pnpm, 'pack', '--pack-destination', outside], {
        cwd: appDir, env: { ...process.env, npm_config_pnpmfile: join(appDir, 'pnpm-pack.config.cjs') }, stdio: 'pipe', timeout: 120_000,
      });
      const tarball = readdirSync(outside).find((f) => f.endsWith('.tgz'));
      expect(tarball).toBeDefined();
      const app = join(outside, 'app');
      mkdirSync(app);
      writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'uses-asyncscope-cli', private: true }));
      execFileSync('npm', ['install', '--no-audit', '--no-fund', '--offline', join(outside, tarball ?? '')], { cwd: app, stdio: 'pipe', timeout: 120_000 });
      const manifest = JSON.parse(readFileSync(join(app, 'node_modules/@asyncscope/cli/package.json'), 'utf8')) as Record<string, unknown>;
      expect(manifest.dependencies).toBeUndefined();
      expect(manifest.bin).toEqual({ asyncscope: './dist/asyncscope.mjs' });
      expect(JSON.stringify(manifest)).not.toMatch(/workspace:|catalog:/);
      const bin = join(app, 'node_modules/.bin/asyncscope');
      const help = execFileSync(bin, ['--help'], { encoding: 'utf8' });
      expect(help).toMatch(/users/);
      const listed = execFileSync(bin, ['users', 'list', '--limit', '3', '--json'], { encoding: 'utf8', env: { ...process.env, ...env } });
      expect((JSON.parse(listed) as { items: unknown[] }).items).toHaveLength(3);
    } finally {
      rmSync(outside, { recursive: true, force: true });
    }
  }, 180_000);
});
