/**
 * What a person sees at start, on the built server run the way `pnpm start` runs it (a child process):
 * the token survives restarts (kept in DATA_DIR) unless API_TOKEN says otherwise, and the banner only
 * appears once calls can succeed.
 */
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { connect, createServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, inject, it } from 'vitest';
import { freePort } from '@asyncscope/db';
import { createTestDatabase } from '@asyncscope/db/testing';
import { killServers, launchServer, until, type ServerProcess } from './test-process';

afterEach(killServers);

const bannerToken = (child: ServerProcess) => /^ {2}Token\s+(\S+)/m.exec(child.output())?.[1];

async function stop(child: ServerProcess): Promise<void> {
  child.proc.kill('SIGTERM');
  expect(await child.exited).toBe(0);
}

describe('the API token', () => {
  it('is generated once, kept in DATA_DIR (0600), reused after a restart; API_TOKEN still wins', async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'asyncscope-token-'));
    const db = await createTestDatabase(inject('pgAdminUrl'), inject('pgTemplate'), { poolMax: 1 });
    try {
      const env = { DATA_DIR: dataDir, DATABASE_URL: db.url, PORT: '0' };
      const first = launchServer(env);
      const token = await until('the banner', () => bannerToken(first), first);
      expect(token.length).toBeGreaterThanOrEqual(32);
      const file = join(dataDir, 'api-token');
      expect(first.output()).toContain(file); // the banner says where it lives
      expect(readFileSync(file, 'utf8').trim()).toBe(token);
      expect((await stat(file)).mode & 0o777).toBe(0o600);
      await stop(first);

      const second = launchServer(env);
      expect(await until('the banner', () => bannerToken(second), second)).toBe(token);
      await stop(second);

      const chosen = launchServer({ ...env, API_TOKEN: 'my-own-token-of-24-chars' });
      expect(await until('the banner', () => bannerToken(chosen), chosen)).toBe('my-own-token-of-24-chars');
      await stop(chosen);
      expect(readFileSync(file, 'utf8').trim()).toBe(token); // the kept one is left alone
    } finally {
      await db[Symbol.asyncDispose]();
      await rm(dataDir, { recursive: true, force: true });
    }
  }, 90_000);
});

describe('the banner', () => {
  it('appears only once the database answers and is migrated: a call made at once succeeds', async () => {
    const db = await createTestDatabase(inject('pgAdminUrl'), inject('pgTemplate'), { poolMax: 1 });
    // A gate in front of Postgres that refuses connections until opened: the database is "not there yet".
    const target = new URL(db.url);
    let open = false;
    const sockets = new Set<Socket>();
    const gate = createServer((client) => {
      sockets.add(client);
      client.once('close', () => sockets.delete(client));
      client.on('error', () => client.destroy());
      if (!open) {
        client.destroy();
        return;
      }
      const upstream = connect(Number(target.port || 5432), target.hostname);
      sockets.add(upstream);
      upstream.once('close', () => sockets.delete(upstream));
      upstream.on('error', () => client.destroy());
      client.on('close', () => upstream.destroy());
      upstream.on('close', () => client.destroy());
      client.pipe(upstream).pipe(client);
    });
    gate.listen(0, '127.0.0.1');
    await once(gate, 'listening');
    const gatePort = (gate.address() as { port: number }).port;
    const url = new URL(db.url);
    url.port = String(gatePort);
    try {
      const port = await freePort();
      const token = 'banner-token-0123456789';
      const child = launchServer({ DATABASE_URL: url.toString(), PORT: String(port), API_TOKEN: token, DATA_DIR: '/nonexistent' });
      await until('a retry', () => (child.output().includes('database unreachable') ? true : undefined), child);
      expect(child.output()).not.toContain('asyncscope is running');
      open = true;
      await until('the banner', () => (child.output().includes('asyncscope is running') ? true : undefined), child);
      const res = await fetch(`http://127.0.0.1:${port}/trpc/users.list`, { headers: { authorization: `Bearer ${token}` } });
      expect(res.status).toBe(200);
      expect((await fetch(`http://127.0.0.1:${port}/readyz`)).status).toBe(200);
      await stop(child);
    } finally {
      for (const s of sockets) s.destroy();
      await new Promise((resolve) => gate.close(resolve));
      await db[Symbol.asyncDispose]();
    }
  }, 60_000);
});
