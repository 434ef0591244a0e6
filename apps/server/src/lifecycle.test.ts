/**
 * The server as a user runs it: a child process started like `pnpm start` does, stopped with a signal.
 */
import { execFileSync } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { freePort } from '@asyncscope/db';
import { killServers, launchServer, until } from './test-process';

afterEach(killServers);

function postgresProcesses(dir: string): string[] {
  return execFileSync('ps', ['-eo', 'pid,args'], { encoding: 'utf8' }).split('\n').filter((l) => l.includes(dir) && /postgres/.test(l));
}

describe('server lifecycle', () => {
  it('refuses bad configuration, naming each bad value', async () => {
    const child = launchServer({ PORT: 'eighty', DB_POOL_MAX: '0', LOG_LEVEL: 'loud', DATABASE_URL: 'mysql://x' });
    expect(await child.exited).toBe(1);
    const err = child.stderr();
    expect(err).toContain('PORT="eighty": PORT must be a whole number');
    expect(err).toContain('DB_POOL_MAX="0": DB_POOL_MAX must be between 1 and 500');
    expect(err).toContain('LOG_LEVEL="loud"');
    expect(err).toContain('DATABASE_URL must be a postgres:// URL');
  });

  it('starts on an embedded Postgres with no setup, prints URL and token, and stops cleanly on SIGTERM', async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'asyncscope-life-'));
    try {
      const port = await freePort();
      const child = launchServer({ PORT: String(port), DATA_DIR: dataDir });
      const banner = await until('the banner', () => (/Token\s+(\S+)/.exec(child.stdout()) ?? undefined), child);
      const token = banner[1] ?? '';
      expect(child.stdout()).toContain(`http://127.0.0.1:${port}/trpc`);
      expect(token.length).toBeGreaterThanOrEqual(32);

      await until('readiness', () => (child.stdout().includes('database ready') ? true : undefined), child);
      const res = await fetch(`http://127.0.0.1:${port}/trpc/users.create`, {
        method: 'POST',
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
        body: JSON.stringify({ name: 'Ada', email: 'ada@example.com' }),
      });
      expect(res.status).toBe(200);
      expect(postgresProcesses(dataDir).length).toBeGreaterThan(0);

      child.proc.kill('SIGTERM');
      expect(await child.exited).toBe(0);
      expect(child.stdout()).toContain('stopped');
      expect(postgresProcesses(dataDir)).toEqual([]);
    } finally {
      await rm(dataDir, { recursive: true, force: true });
    }
  }, 60_000);

  it('keeps retrying an unreachable database, says so, and reports it on /readyz', async () => {
    const port = await freePort();
    // Port 1: nothing listens there, so every connection attempt is refused.
    const child = launchServer({ PORT: String(port), DATABASE_URL: 'postgres://postgres@127.0.0.1:1/nowhere', API_TOKEN: 'a-token-of-sixteen-chars' });
    await until('a retry log line', () => ((child.stdout().match(/database unreachable/g) ?? []).length >= 2 ? true : undefined), child);
    expect(child.stdout()).toMatch(/ECONNREFUSED/);

    const ready = await fetch(`http://127.0.0.1:${port}/readyz`);
    expect(ready.status).toBe(503);
    expect(await ready.json()).toMatchObject({ status: 'unavailable' });

    const call = await fetch(`http://127.0.0.1:${port}/trpc/users.list`, { headers: { authorization: 'Bearer a-token-of-sixteen-chars' } });
    expect(call.status).toBe(503);
    expect(await call.json()).toMatchObject({ error: { data: { code: 'SERVICE_UNAVAILABLE' } } });

    child.proc.kill('SIGINT');
    expect(await child.exited).toBe(0);
  }, 60_000);
});
