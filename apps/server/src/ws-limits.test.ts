/**
 * The WebSocket transport's limits that need their own server: admission control (a full server), a
 * transport mounted with small limits (auth timeout, slow reader, protocol errors), and shutdown.
 * Real server, real PostgreSQL.
 */
import { once } from 'node:events';
import { createServer, type Server } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import type { ActivityEvent } from '@asyncscope/api';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { startTestServer, TEST_TOKEN, type TestServer } from './test-server';
import { attachWebSocketTransport, type WebSocketTransport } from './ws-transport';

let t: TestServer;
beforeAll(async () => {
  t = await startTestServer({ poolMax: 4, maxInFlight: 2, maxQueue: 0 });
});
afterAll(async () => {
  await t.close();
});

interface Frame { id: string | number | null; result?: { type: string; data?: unknown }; error?: { message: string; data: { code: string } }; method?: string }

async function until<T>(what: string, check: () => T | undefined | false, timeoutMs = 5000): Promise<T> {
  const start = performance.now();
  for (;;) {
    const value = check();
    if (value !== undefined && value !== false) return value;
    if (performance.now() - start > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

async function openSocket(base: string, token: string | null = TEST_TOKEN) {
  const ws = new WebSocket(`${base.replace('http:', 'ws:')}/trpc?connectionParams=1`);
  const frames: Frame[] = [];
  ws.on('message', (data) => { frames.push(JSON.parse((data as Buffer).toString('utf8')) as Frame); });
  ws.on('error', () => undefined);
  const closed = new Promise<{ code: number; reason: string }>((resolve) => {
    ws.once('close', (code, reason) => { resolve({ code, reason: reason.toString() }); });
  });
  await once(ws, 'open');
  if (token !== null) ws.send(JSON.stringify({ method: 'connectionParams', data: { token } }));
  const call = (id: number, method: string, path: string, input: unknown, extra: Record<string, unknown> = {}) => {
    ws.send(JSON.stringify({ id, method, params: { path, input, ...extra } }));
  };
  const frame = (match: (f: Frame) => boolean) => until('a frame', () => frames.find(match));
  return { ws, frames, closed, call, frame };
}

const hop = <K extends ActivityEvent['type']>(callId: string, type: K) =>
  t.server.runtime.activity.read(0, 100_000).events.find((e) => e.callId === callId && e.type === type) as Extract<ActivityEvent, { type: K }> | undefined;

describe('admission control, as over HTTP', () => {
  it('refuses the call beyond MAX_IN_FLIGHT + MAX_QUEUE with TOO_MANY_REQUESTS, the same answer HTTP gives', async () => {
    const s = await openSocket(t.url);
    s.call(1, 'query', 'lab.sleep', { ms: 400 }, { callId: 'adm-1' });
    s.call(2, 'query', 'lab.sleep', { ms: 400 }, { callId: 'adm-2' });
    await until('both run', () => hop('adm-1', 'started') && hop('adm-2', 'started'));
    s.call(3, 'query', 'lab.sleep', { ms: 400 }, { callId: 'adm-3' });
    const refused = await s.frame((f) => f.id === 3);
    expect(refused.error?.data.code).toBe('TOO_MANY_REQUESTS');
    const res = await fetch(`${t.url}/trpc/lab.sleep?input=${encodeURIComponent('{"ms":1}')}`, { headers: { authorization: `Bearer ${TEST_TOKEN}` } });
    expect(res.status).toBe(429);
    const body = (await res.json()) as { error: { message: string } };
    expect(refused.error?.message).toBe(body.error.message);
    expect((await s.frame((f) => f.id === 1)).result?.type).toBe('data');
    expect((await s.frame((f) => f.id === 2)).result?.type).toBe('data');
    s.ws.close();
  });
});

describe('a transport mounted with small limits', () => {
  let server: Server;
  let base: string;
  let transport: WebSocketTransport;
  const lines: Record<string, unknown>[] = [];

  beforeAll(async () => {
    server = createServer((_req, res) => { res.end(); });
    const log = pino({ level: 'debug' }, { write: (line: string) => { lines.push(JSON.parse(line) as Record<string, unknown>); } });
    transport = attachWebSocketTransport(server, {
      runtime: t.server.runtime,
      apiTokens: [TEST_TOKEN],
      maxPayload: 16 * 1024,
      authTimeoutMs: 200,
      maxBufferedBytes: 256 * 1024,
      log,
      isDatabaseReady: () => true,
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    transport.close();
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  });

  it('closes a socket that sends no connectionParams in time (4408)', async () => {
    const started = performance.now();
    const s = await openSocket(base, null);
    expect(await s.closed).toEqual({ code: 4408, reason: 'no connectionParams message with a token in time' });
    expect(performance.now() - started).toBeLessThan(1000);
  });

  it('survives a frame that breaks the WebSocket protocol (ws emits an error): that socket closes, others go on', async () => {
    const bad = await openSocket(base);
    const good = await openSocket(base);
    // RSV2/RSV3 set: "Invalid WebSocket frame" on the server side (the error that brought down production
    // systems in tRPC's history).
    (bad.ws as unknown as { _socket: Socket })._socket.write(Buffer.from([0xb1, 0x80, 0, 0, 0, 0]));
    expect((await bad.closed).code).toBe(1002);
    await until("the bad socket is gone on the server", () => transport.sockets() === 1 || undefined, 3000);
    good.call(1, 'query', 'users.list', {});
    expect((await good.frame((f) => f.id === 1)).result?.type).toBe('data');
    good.ws.close();
  });

  it('closes a slow reader once 256 KB wait to be written (4413): its stream stops, memory stays bounded', async () => {
    await t.database.sql`truncate users restart identity`;
    await t.database.sql`insert into users (name, email) select repeat('n', 90) || g, 'slow' || g || '@example.com' from generate_series(1, 30000) g`;
    const rssBefore = process.memoryUsage().rss;
    const s = await openSocket(base);
    s.call(1, 'query', 'users.list', { limit: 1 });
    await s.frame((f) => f.id === 1);
    // Stop reading: the kernel buffers fill, then the server's.
    (s.ws as unknown as { _socket: Socket })._socket.pause();
    s.call(2, 'subscription', 'users.stream', { pageSize: 500, callId: 'slow-reader-1' });
    const line = await until('the server gives up on the reader', () => lines.find((l) => l.msg === 'closing a WebSocket whose client reads too slowly'), 10_000);
    expect(line.bufferedAmount).toBeGreaterThan(256 * 1024);
    expect(line.bufferedAmount).toBeLessThan(256 * 1024 + 200 * 1024); // the limit plus one page at most
    const settled = await until('the stream stopped', () => hop('slow-reader-1', 'settled'));
    expect(settled.code).toBe('CLIENT_CLOSED_REQUEST');
    // It stopped early: far fewer page queries than the 60 a full read needs.
    const pages = t.server.runtime.activity.read(0, 100_000).events.filter((e) => e.callId === 'slow-reader-1' && e.type === 'statement.started').length;
    expect(pages).toBeLessThan(40);
    expect(process.memoryUsage().rss - rssBefore).toBeLessThan(100 * 1024 * 1024);
    await until('the socket is gone on the server', () => transport.sockets() === 0 || undefined, 3000);
    await t.database.sql`truncate users restart identity`;
  });
});

describe('shutdown', () => {
  it("tells each socket to reconnect, closes it (1001), stops its calls, and does not hold the server's close", async () => {
    const s = await openSocket(t.url);
    s.call(1, 'query', 'lab.sleep', { ms: 10_000 }, { callId: 'shutdown-ws-1' });
    await until('it runs', () => hop('shutdown-ws-1', 'statement.started'));
    const started = performance.now();
    await t.server.close();
    expect(performance.now() - started).toBeLessThan(2000);
    expect(await s.closed).toEqual({ code: 1001, reason: 'server shutting down' });
    expect(s.frames.some((f) => f.method === 'reconnect')).toBe(true);
    expect(hop('shutdown-ws-1', 'signal.fired')?.reason).toBe('shutdown');
    expect(hop('shutdown-ws-1', 'settled')?.code).toBe('SERVICE_UNAVAILABLE');
    expect(t.server.webSockets()).toBe(0);
  });
});
