/** Issue 7 §6: no credentials in URLs (but single-use stream tickets), none in logs, and the headers a browser app needs. */
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, connect, type Socket, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { createApiClient } from '@asyncscope/client';
import { schema } from '@asyncscope/db';
import { EventSource } from 'eventsource';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createLogger, redactError } from './log-redaction';
import { startTestServer, TEST_TOKEN, type TestServer } from './test-server';

let t: TestServer;
const logLines: string[] = [];
const dashboardDir = mkdtempSync(join(tmpdir(), 'asyncscope-dashboard-'));
writeFileSync(join(dashboardDir, 'index.html'), '<!doctype html><title>dashboard</title>');

beforeAll(async () => {
  // The default level (info), captured.
  const sink = new Writable({ write(chunk: Buffer, _encoding, done) { logLines.push(...chunk.toString('utf8').split('\n').filter(Boolean)); done(); } });
  t = await startTestServer({ log: createLogger({ level: 'info' }, sink), dashboardDir });
});
afterAll(async () => {
  await t.close();
  rmSync(dashboardDir, { recursive: true, force: true });
});
beforeEach(async () => { await t.database.sql`truncate users restart identity`; });

const params = (value: object) => `connectionParams=${encodeURIComponent(JSON.stringify(value))}`;
const input = (value: unknown) => `input=${encodeURIComponent(JSON.stringify(value))}`;
const bearer = { authorization: `Bearer ${TEST_TOKEN}` };
const userCount = async () => (await t.database.sql<{ n: number }[]>`select count(*)::int as n from users`)[0]?.n;

async function ticket(): Promise<string> {
  const res = await fetch(`${t.url}/trpc/auth.ticket`, { method: 'POST', headers: { ...bearer, 'content-type': 'application/json' } });
  expect(res.status).toBe(200);
  return ((await res.json()) as { result: { data: { ticket: string } } }).result.data.ticket;
}

/** Opens an event stream, returns its status and content-type, and closes it. */
async function openStream(path: string): Promise<{ status: number; type: string | null; code?: string }> {
  const controller = new AbortController();
  const res = await fetch(`${t.url}${path}`, { headers: { accept: 'text/event-stream' }, signal: controller.signal });
  const out = { status: res.status, type: res.headers.get('content-type') };
  if (res.status === 200) {
    controller.abort();
    return out;
  }
  return { ...out, code: ((await res.json()) as { error: { data: { code: string } } }).error.data.code };
}

describe('credentials in URLs', () => {
  it('refuses the bearer token as a connection parameter, for calls, batches and streams alike', async () => {
    const token = params({ token: TEST_TOKEN });
    for (const path of [
      `/trpc/users.list?${token}`,
      `/trpc/users.list,users.list?batch=1&${input({ 0: {}, 1: {} })}&${token}`,
      `/trpc/activity.events?${token}`,
    ]) {
      const res = await fetch(`${t.url}${path}`, { headers: path.includes('events') ? { accept: 'text/event-stream' } : {} });
      expect(res.status, path).toBe(401);
    }
    const create = await fetch(`${t.url}/trpc/users.create?${token}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ name: 'A', email: 'a@example.com' }) });
    expect(create.status).toBe(401);
    expect(await userCount()).toBe(0);
  });

  it('accepts a ticket once, only for a subscription, only from a holder of the token', async () => {
    const a = await ticket();
    expect(await openStream(`/trpc/activity.events?${params({ ticket: a })}`)).toMatchObject({ status: 200, type: 'text/event-stream' });
    expect(await openStream(`/trpc/activity.events?${params({ ticket: a })}`)).toEqual({ status: 401, type: 'application/json', code: 'UNAUTHORIZED' }); // spent
    const b = await ticket();
    expect((await fetch(`${t.url}/trpc/users.list?${params({ ticket: b })}`)).status).toBe(401); // not for a query
    expect((await fetch(`${t.url}/trpc/auth.ticket`, { method: 'POST', headers: { 'content-type': 'application/json' } })).status).toBe(401);
  });

  it('the shared client links fetch a fresh ticket for each stream', async () => {
    await t.database.sql`insert into users (name, email) values ('Ada', 'ada@example.com'), ('Grace', 'grace@example.com')`;
    const api = createApiClient({ url: `${t.url}/trpc`, token: TEST_TOKEN, EventSource });
    for (let round = 0; round < 2; round++) {
      const received = await new Promise<number>((resolve, reject) => {
        const sub = api.users.stream.subscribe({ pageSize: 1 }, {
          onData: (page) => { if (page.data.sent === page.data.total) { sub.unsubscribe(); resolve(page.data.sent); } },
          onError: (error) => { sub.unsubscribe(); reject(error); },
        });
      });
      expect(received).toBe(2);
    }
  });

  it('answers 401 to anything under /trpc without a token, before routing: procedure names cannot be probed', async () => {
    const bodies = new Set<string>();
    for (const [method, path] of [['GET', '/trpc/users.explode'], ['GET', '/trpc/users.list'], ['POST', '/trpc/users.list'], ['GET', '/trpc/lab.setFaults'], ['POST', '/trpc/nothing.here']] as const) {
      const res = await fetch(`${t.url}${path}`, { method, ...(method === 'POST' ? { body: '{}', headers: { 'content-type': 'application/json' } } : {}) });
      expect(res.status, `${method} ${path}`).toBe(401);
      bodies.add(await res.text());
    }
    expect(bodies.size).toBe(1);
  });
});

/** A TCP proxy in front of the server whose connections the test can cut (a network drop). */
async function startProxy(target: string): Promise<{ url: string; cut: () => void; close: () => Promise<void> }> {
  const { hostname, port } = new URL(target);
  const sockets = new Set<Socket>();
  const server = createServer((client) => {
    const upstream = connect(Number(port), hostname);
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('close', () => { sockets.delete(s); });
      s.on('error', () => { client.destroy(); upstream.destroy(); });
    }
    client.pipe(upstream).pipe(client);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    cut: () => { for (const s of sockets) s.destroy(); },
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

describe('a stream that loses its connection', () => {
  it('reconnects with a fresh ticket and resumes after the last event, without an error', async () => {
    const proxy = await startProxy(t.url);
    const api = createApiClient({ url: `${proxy.url}/trpc`, token: TEST_TOKEN, EventSource });
    const direct = createApiClient({ url: `${t.url}/trpc`, token: TEST_TOKEN });
    const seqs: number[] = [];
    const errors: unknown[] = [];
    let started!: () => void;
    const isStarted = new Promise<void>((resolve) => { started = resolve; });
    // replay: from the oldest event buffered, so no call can fall between "connected" and the generator's start.
    const sub = api.activity.events.subscribe({ replay: true }, {
      onStarted: () => { started(); },
      onData: ({ data }) => { for (const e of data.events) seqs.push(e.seq); },
      onError: (error) => { errors.push(error); },
    });
    try {
      await isStarted;
      await direct.users.list.query();
      await expect.poll(() => seqs.length, { timeout: 5000 }).toBeGreaterThan(0);
      proxy.cut();
      const before = seqs.length;
      await direct.users.list.query();
      await expect.poll(() => seqs.length, { timeout: 10_000 }).toBeGreaterThan(before);
      expect(errors).toEqual([]);
      // Resumed after the last event: no gap, nothing twice.
      const first = seqs[0] ?? 0;
      expect(seqs).toEqual(seqs.map((_, i) => first + i));
    } finally {
      sub.unsubscribe();
      await proxy.close();
    }
  });
});

describe('logs at the default level', () => {
  it('carry paths, not tokens, tickets or inputs', async () => {
    logLines.length = 0;
    await fetch(`${t.url}/?token=${TEST_TOKEN}`);
    const spent = await ticket();
    await openStream(`/trpc/activity.events?${params({ ticket: spent })}`);
    await fetch(`${t.url}/trpc/users.list?${params({ token: TEST_TOKEN })}`);
    await fetch(`${t.url}/trpc/users.byId?${input({ id: 1 })}&marker=secret-marker@example.com`, { headers: bearer });
    await expect.poll(() => logLines.filter((l) => l.includes('"msg":"request"')).length).toBeGreaterThanOrEqual(5);
    const text = logLines.join('\n');
    expect(text).not.toContain(TEST_TOKEN);
    expect(text).not.toContain(spent);
    expect(text).not.toContain('secret-marker');
    expect(text).not.toContain('connectionParams');
    expect(text).toContain('"path":"/trpc/users.byId"');
  });

  it('an error is logged without the values that went with it (a real drizzle + Postgres error)', async () => {
    const error: unknown = await t.server.runtime.db.orm
      .insert(schema.users)
      .values({ name: 'a\u0000b', email: 'private.person@example.com' })
      .then(() => undefined, (e: unknown) => e);
    expect((error as Error).message).toContain('private.person@example.com'); // what would have been logged
    const logged = JSON.stringify(redactError(error));
    expect(logged).not.toContain('private.person');
    expect(logged).toContain('Failed query: insert into');
  });
});

describe('response headers', () => {
  it('the dashboard gets CSP, nosniff, frame and referrer protection', async () => {
    const res = await fetch(`${t.url}/`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-security-policy')).toMatch(/default-src 'self'.*frame-ancestors 'none'/);
    expect(res.headers.get('x-content-type-options')).toBe('nosniff');
    expect(res.headers.get('x-frame-options')).toBe('DENY');
    expect(res.headers.get('referrer-policy')).toBe('no-referrer');
  });

  it('every API answer says no-store: fast path, tRPC adapter, errors', async () => {
    const answers = [
      await fetch(`${t.url}/trpc/users.list`, { headers: bearer }), // fast path
      await fetch(`${t.url}/trpc/users.byId?${input({ id: 9 })}`, { headers: bearer }), // fast path, 404
      await fetch(`${t.url}/trpc/users.list,users.list?batch=1&${input({ 0: {}, 1: {} })}`, { headers: bearer }), // adapter
      await fetch(`${t.url}/trpc/users.create`, { method: 'POST', headers: { ...bearer, 'content-type': 'text/plain' }, body: '{}' }), // adapter, 415
      await fetch(`${t.url}/trpc/users.list`), // 401
    ];
    expect(answers.map((r) => r.status)).toEqual([200, 404, 200, 415, 401]);
    for (const res of answers) expect(res.headers.get('cache-control')).toBe('no-store');
  });
});
