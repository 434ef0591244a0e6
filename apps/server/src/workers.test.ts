/**
 * WORKERS=2: the built server as node:cluster's primary with two workers on one port, on a test database and
 * a real nats-server (EVENTS_URL), stopped with signals like a user's server.
 */
import { execFileSync } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createApiClient } from '@asyncscope/client';
import { createTestDatabase } from '@asyncscope/db/testing';
import { freePort } from '@asyncscope/db';
import { missingBinaries, startNats, type Nats } from '@asyncscope/harness/cluster';
import { afterAll, afterEach, beforeAll, describe, expect, inject, it } from 'vitest';
import { killServers, launchServer, until, type ServerProcess } from './test-process';

afterEach(killServers);

const TOKEN = 'workers-test-token-0123456789';

/** The workers the primary reported ready, by pid, from its JSON log lines. */
function readyWorkers(child: ServerProcess): number[] {
  return child
    .stdout()
    .split('\n')
    .filter((line) => line.includes('"msg":"worker ready"'))
    .map((line) => (JSON.parse(line) as { pid: number }).pid);
}

function postmasters(dataDir: string): string[] {
  return execFileSync('ps', ['-eo', 'pid,args'], { encoding: 'utf8' }).split('\n').filter((line) => line.includes(dataDir) && /postgres/.test(line));
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe('WORKERS', () => {
  it('refuses WORKERS > 1 without EVENTS_URL, saying why', async () => {
    const child = launchServer({ WORKERS: '2', DATABASE_URL: 'postgres://postgres@127.0.0.1:1/none', API_TOKEN: TOKEN });
    expect(await child.exited).toBe(1);
    expect(child.stderr()).toContain('WORKERS=2 needs EVENTS_URL');
  });

  const skip = missingBinaries();
  describe.skipIf(skip !== false)(`two workers on one port${skip ? ` (skipped: ${skip})` : ''}`, () => {
    let nats: Nats | undefined;
    const stop = new AbortController();
    beforeAll(async () => { nats = await startNats({ signal: stop.signal }); });
    afterAll(async () => {
      stop.abort();
      await nats?.stop();
    });

    async function startWorkers(databaseUrl: string, env: Record<string, string> = {}): Promise<{ child: ServerProcess; url: string }> {
      const port = await freePort();
      const child = launchServer({ WORKERS: '2', PORT: String(port), DATABASE_URL: databaseUrl, EVENTS_URL: nats?.url ?? '', API_TOKEN: TOKEN, SHUTDOWN_TIMEOUT_MS: '3000', ...env });
      await until('the banner', () => (child.stdout().includes('asyncscope is running (2 workers)') ? true : undefined), child);
      // The primary's log lines may come after its banner (pino writes asynchronously).
      await until('both workers ready', () => (readyWorkers(child).length === 2 ? true : undefined), child);
      return { child, url: `http://127.0.0.1:${port}` };
    }

    it('serves on one port, stops every worker on SIGTERM (each drains), and exits 0', async () => {
      await using db = await createTestDatabase(inject('pgAdminUrl'), inject('pgTemplate'));
      const { child, url } = await startWorkers(db.url);
      const workers = readyWorkers(child);
      const api = createApiClient({ url: `${url}/trpc`, token: TOKEN });
      const listed = await Promise.all(Array.from({ length: 20 }, () => api.users.list.query({ limit: 1 }, { context: { transport: 'single' } })));
      expect(listed.every((page) => typeof page.total === 'number')).toBe(true);
      // A call in flight at the stop finishes: the worker that runs it drains before it exits.
      const sleeping = api.lab.sleep.query({ ms: 800 }, { context: { transport: 'single' } });
      await new Promise((resolve) => setTimeout(resolve, 200));
      child.proc.kill('SIGTERM');
      expect((await sleeping).sleptMs).toBeGreaterThanOrEqual(800);
      expect(await child.exited).toBe(0);
      expect(workers.filter(alive)).toEqual([]);
      expect(child.stdout()).toContain('"msg":"stopping: workers drain"');
    }, 60_000);

    it('without DATABASE_URL, starts the embedded PostgreSQL once for all workers, and stops it after them', async () => {
      const dataDir = await mkdtemp(join(tmpdir(), 'asyncscope-workers-'));
      try {
        const port = await freePort();
        const child = launchServer({ WORKERS: '2', PORT: String(port), DATA_DIR: dataDir, EVENTS_URL: nats?.url ?? '' });
        await until('the banner', () => (child.stdout().includes('asyncscope is running (2 workers)') ? true : undefined), child, 60_000);
        await until('both workers ready', () => (readyWorkers(child).length === 2 ? true : undefined), child);
        // One postmaster (the only process whose arguments name the data folder), the primary's.
        expect(postmasters(dataDir)).toHaveLength(1);
        const token = /Token\s+(\S+)/.exec(child.stdout())?.[1] ?? '';
        const api = createApiClient({ url: `http://127.0.0.1:${port}/trpc`, token });
        const created = await api.users.create.mutate({ name: 'Ada', email: 'ada@example.com' });
        expect(created.name).toBe('Ada');
        child.proc.kill('SIGTERM');
        expect(await child.exited).toBe(0);
        expect(postmasters(dataDir)).toEqual([]);
      } finally {
        await rm(dataDir, { recursive: true, force: true });
      }
    }, 90_000);

    it('replaces a worker that was killed (SIGKILL), and keeps serving meanwhile', async () => {
      await using db = await createTestDatabase(inject('pgAdminUrl'), inject('pgTemplate'));
      const { child, url } = await startWorkers(db.url);
      const [victim, survivor] = readyWorkers(child);
      if (victim === undefined || survivor === undefined) throw new Error('two workers expected');
      process.kill(victim, 'SIGKILL');
      await until('the death logged', () => (child.stdout().includes('"msg":"worker died unexpectedly; restarting it"') ? true : undefined), child);
      const api = createApiClient({ url: `${url}/trpc`, token: TOKEN });
      // The survivor alone answers meanwhile (node:cluster no longer hands connections to the dead one).
      expect((await api.users.list.query({ limit: 1 }, { context: { transport: 'single' } })).items).toBeDefined();
      const replaced = await until('a new worker', () => readyWorkers(child).find((pid) => pid !== victim && pid !== survivor), child);
      expect(alive(replaced)).toBe(true);
      expect(alive(survivor)).toBe(true);
      child.proc.kill('SIGTERM');
      expect(await child.exited).toBe(0);
      expect([survivor, replaced].filter(alive)).toEqual([]);
    }, 60_000);

    /** The instance ids that answer activity.stats, each call on a connection of its own (node:cluster hands them out round-robin). */
    async function answeringInstances(url: string): Promise<string[]> {
      const seen = new Set<string>();
      for (let i = 0; i < 20 && seen.size < 2; i++) {
        const res = await fetch(`${url}/trpc/activity.stats`, { headers: { authorization: `Bearer ${TOKEN}`, connection: 'close' } });
        const body = (await res.json()) as { result: { data: { instance: string } } };
        seen.add(body.result.data.instance);
      }
      return [...seen].sort();
    }

    it('both workers answer: calls on new connections are served by both (activity.stats instance ids differ)', async () => {
      await using db = await createTestDatabase(inject('pgAdminUrl'), inject('pgTemplate'));
      const { child, url } = await startWorkers(db.url);
      const workers = readyWorkers(child);
      // INSTANCE_ID's default is `${hostname}:${pid}`: one per worker.
      expect((await answeringInstances(url)).map((id) => Number(id.split(':').at(-1))).sort()).toEqual([...workers].sort());
      child.proc.kill('SIGTERM');
      expect(await child.exited).toBe(0);
    }, 60_000);

    it('a configured INSTANCE_ID names the workers <id>-w1, <id>-w2 (ids stay unique)', async () => {
      await using db = await createTestDatabase(inject('pgAdminUrl'), inject('pgTemplate'));
      const { child, url } = await startWorkers(db.url, { INSTANCE_ID: 'web' });
      expect(await answeringInstances(url)).toEqual(['web-w1', 'web-w2']);
      child.proc.kill('SIGTERM');
      expect(await child.exited).toBe(0);
    }, 60_000);
  });
});
