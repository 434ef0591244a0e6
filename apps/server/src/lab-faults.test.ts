/**
 * Lab faults are rows (lab_faults): a server that starts on a database where one is set applies it to its
 * very first call. It is not ready (no call admitted, /readyz 503, `database.ready` pending) until the
 * faults are loaded.
 */
import { createTestDatabase, type TestDatabase } from '@asyncscope/db/testing';
import pino from 'pino';
import { afterAll, beforeAll, expect, inject, it } from 'vitest';
import { startServer, type RunningServer } from './app';
import { readEnv } from './env';
import { TEST_TOKEN } from './test-server';

let t: TestDatabase;
beforeAll(async () => { t = await createTestDatabase(inject('pgAdminUrl'), inject('pgTemplate'), { applicationName: 'test-observer', poolMax: 2 }); });
afterAll(async () => { await t[Symbol.asyncDispose](); });

async function start(): Promise<RunningServer> {
  const defaults = readEnv({});
  return startServer({
    port: 0,
    host: '127.0.0.1',
    databaseUrl: t.url,
    dataDir: '/nonexistent',
    apiToken: TEST_TOKEN,
    poolMax: 3,
    poolMin: 3,
    statementTimeoutMs: 10_000,
    applicationName: 'test-server',
    instanceId: 'lab-faults-server',
    maxBodyBytes: defaults.MAX_BODY_BYTES,
    shutdownTimeoutMs: 2_000,
    maxInFlight: 100,
    maxQueue: 100,
    maxQueuePerClient: 100,
    bodyTimeoutMs: defaults.BODY_TIMEOUT_MS,
    maxBatchSize: defaults.MAX_BATCH_SIZE,
    lab: true,
    callTimeoutMs: defaults.CALL_TIMEOUT_MS,
    fastPath: true,
    log: pino({ level: 'silent' }),
    wsMaxCallsPerSocket: defaults.WS_MAX_CALLS_PER_SOCKET,
    wsMaxSocketsPerToken: defaults.WS_MAX_SOCKETS_PER_TOKEN,
  });
}

const usersList = (url: string) => fetch(`${url}/trpc/users.list`, { headers: { authorization: `Bearer ${TEST_TOKEN}` } });

it('a server starting on a database with a fault set is not ready before it has loaded it, and its first call has it', async () => {
  await t.sql`insert into lab_faults (procedure, latency_ms, error_rate) values ('users.list', 0, 1)`;
  // Loading the faults waits behind this lock; migrations (already applied) do not touch the table.
  const locked = t.sql.reserve();
  const held = await locked;
  let server: RunningServer | undefined;
  try {
    await held`begin`;
    await held`lock table lab_faults in access exclusive mode`;
    server = await start();
    let ready = false;
    void server.database.ready.then(() => { ready = true; });
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect(ready).toBe(false);
    expect(server.database.isReady()).toBe(false);
    expect((await fetch(`${server.url}/readyz`)).status).toBe(503);
    expect((await usersList(server.url)).status).toBe(503);
    await held`commit`;
    await server.database.ready;
    expect(server.database.isReady()).toBe(true);
    expect(server.runtime.faults.get('users.list')).toEqual({ latencyMs: 0, errorRate: 1 });
    const first = await usersList(server.url);
    expect(first.status).toBe(503);
    expect(JSON.stringify(await first.json())).toMatch(/Injected fault/);
  } finally {
    held.release();
    await server?.close();
    await t.sql`delete from lab_faults`;
  }
});
