/**
 * The WebSocket transport's limits that need their own server: admission control (a full server), a
 * transport mounted with small limits (auth timeout, slow reader, protocol errors), and shutdown.
 * Real server, real PostgreSQL.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import type { ActivityEvent } from '@asyncscope/api';
import pino from 'pino';
import { once } from 'node:events';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openTestSocket, socketWithRunningCall } from './test/ws-socket';
import { until } from '@asyncscope/concurrency/testing';
import { startTestServer, TEST_TOKEN, type TestServer } from './test-server';
import { attachWebSocketTransport, type WebSocketTransport, type WebSocketTransportOptions } from './ws-transport';

let t: TestServer;
beforeAll(async () => {
  t = await startTestServer({ poolMax: 4, maxInFlight: 2, maxQueue: 0 });
});
afterAll(async () => {
  await t.close();
});



interface Mounted { base: string; transport: WebSocketTransport; close(): Promise<void> }

/** The WebSocket transport on a plain HTTP server of its own, over the test server's runtime, with these limits. */
async function mountTransport(limits: Omit<WebSocketTransportOptions, 'runtime' | 'apiTokens' | 'isDatabaseReady'>): Promise<Mounted> {
  const server: Server = createServer((_req, res) => { res.end(); });
  const transport = attachWebSocketTransport(server, { runtime: t.server.runtime, apiTokens: [TEST_TOKEN], isDatabaseReady: () => true, ...limits });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    base: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    transport,
    close: async () => {
      transport.close();
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

const hop = <K extends ActivityEvent['type']>(callId: string, type: K) =>
  t.server.runtime.activity.read(0, 100_000).events.find((e) => e.callId === callId && e.type === type) as Extract<ActivityEvent, { type: K }> | undefined;

describe('admission control, as over HTTP', () => {
  it('refuses the call beyond MAX_IN_FLIGHT + MAX_QUEUE with TOO_MANY_REQUESTS, the same answer HTTP gives', async () => {
    const s = await openTestSocket(t.url);
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
  let mounted: Mounted;
  let base: string;
  let transport: WebSocketTransport;
  const lines: Record<string, unknown>[] = [];

  beforeAll(async () => {
    const log = pino({ level: 'debug' }, { write: (line: string) => { lines.push(JSON.parse(line) as Record<string, unknown>); } });
    mounted = await mountTransport({ maxPayload: 16 * 1024, authTimeoutMs: 200, maxBufferedBytes: 256 * 1024, maxCallsPerSocket: 1000, maxSocketsPerToken: 64, log });
    ({ base, transport } = mounted);
  });
  afterAll(() => mounted.close());

  it('closes a socket that sends no connectionParams in time (4408)', async () => {
    const started = performance.now();
    const s = await openTestSocket(base, null);
    expect(await s.closed).toEqual({ code: 4408, reason: 'no connectionParams message with a token in time' });
    expect(performance.now() - started).toBeLessThan(1000);
  });

  it('survives a frame that breaks the WebSocket protocol (ws emits an error): that socket closes, others go on', async () => {
    const bad = await openTestSocket(base);
    const good = await openTestSocket(base);
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
    await t.database.sql`insert into users (name, email) select repeat('n', 90) || g, 'slow' || g || '@example.com' from generate_series(1, 60000) g`;
    const rssBefore = process.memoryUsage().rss;
    const s = await openTestSocket(base);
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
    // It stopped early: far fewer page queries than the 120 a full read needs. (The kernel's socket buffers,
    // auto-tuned to several MB on loopback, take pages before the server's own buffer grows: 40 pages were
    // seen taken under load, so 30,000 rows and a limit of 40 of 60 was too close.)
    const pages = t.server.runtime.activity.read(0, 100_000).events.filter((e) => e.callId === 'slow-reader-1' && e.type === 'statement.started').length;
    expect(pages).toBeLessThan(80);
    expect(process.memoryUsage().rss - rssBefore).toBeLessThan(100 * 1024 * 1024);
    await until('the socket is gone on the server', () => transport.sockets() === 0 || undefined, 3000);
    await t.database.sql`truncate users restart identity`;
  });
});

describe('shutdown', () => {
  it('lets calls in flight finish, refuses new ones (retryable), then tells each socket to reconnect and closes it (1001)', async () => {
    const s = await openTestSocket(t.url);
    s.call(1, 'query', 'lab.sleep', { ms: 600 }, { callId: 'shutdown-ws-1' });
    await until('it runs', () => hop('shutdown-ws-1', 'statement.started'));
    const started = performance.now();
    const closing = t.server.close();
    await new Promise((r) => setTimeout(r, 100));
    s.call(2, 'query', 'lab.sleep', { ms: 0 }, { callId: 'shutdown-ws-2' });
    await closing;
    expect(performance.now() - started).toBeLessThan(2000); // the drain ended with the call, not at the deadline
    expect(hop('shutdown-ws-1', 'settled')?.code).toBe('OK');
    expect(s.frames.find((f) => f.id === 1)).toMatchObject({ result: { type: 'data' } });
    expect(s.frames.find((f) => f.id === 2)).toMatchObject({ error: { data: { code: 'SERVICE_UNAVAILABLE' } } });
    expect(hop('shutdown-ws-2', 'received')).toBeUndefined(); // never started
    expect(await s.closed).toEqual({ code: 1001, reason: 'server shutting down' });
    expect(s.frames.some((f) => f.method === 'reconnect')).toBe(true);
    expect(t.server.webSockets()).toBe(0);
  });

  it('stops a call still running at the shutdown deadline (SERVICE_UNAVAILABLE, retryable) and closes the socket', async () => {
    await using server = await startTestServer({ poolMax: 2, shutdownTimeoutMs: 500 });
    const { socket: s, hop: hopOf } = await socketWithRunningCall(server, 'shutdown-ws-long', 20_000);
    const started = performance.now();
    await server.server.close();
    expect(performance.now() - started).toBeLessThan(3000);
    expect(hopOf('signal.fired')).toMatchObject({ reason: 'shutdown' });
    expect(hopOf('settled')).toMatchObject({ code: 'SERVICE_UNAVAILABLE' });
    expect(await s.closed).toEqual({ code: 1001, reason: 'server shutting down' });
  });
});

describe('a batch larger than a socket can start', () => {
  let mounted: Mounted;
  let base: string;

  beforeAll(async () => {
    mounted = await mountTransport({ maxPayload: 64 * 1024, maxCallsPerSocket: 3, maxSocketsPerToken: 8, log: pino({ level: 'silent' }) });
    ({ base } = mounted);
  });
  afterAll(() => mounted.close());

  it('refuses the messages beyond twice its call limit waiting to start; each one passed on gets its own CallMeta; the socket goes on', async () => {
    const s = await openTestSocket(base);
    const batch = Array.from({ length: 8 }, (_, i) => ({ id: i + 1, method: 'query', params: { path: 'users.list', input: { limit: 1 }, callId: `batch-${i + 1}` } }));
    s.ws.send(JSON.stringify(batch));
    const answers = await Promise.all(batch.map((m) => s.frame((f) => f.id === m.id)));
    // 3 calls per socket, 2 × 3 waiting to start: 7 and 8 are refused before tRPC sees them.
    expect(answers.slice(6).map((f) => f.error?.message)).toEqual([
      'This socket has 6 calls waiting to start; send at most 3 at once.',
      'This socket has 6 calls waiting to start; send at most 3 at once.',
    ]);
    // 1–3 took the socket's 3 call slots, which only a call's CallMeta carries; so 4–6 were refused for them.
    expect(answers.slice(3, 6).map((f) => f.error?.message)).toEqual(Array.from({ length: 3 }, () => 'This connection has as many calls in flight as it may; wait for some to finish, or open another connection.'));
    // Nothing is left waiting: the next message is not refused for it.
    s.call(9, 'query', 'users.list', { limit: 1 }, { callId: 'after-batch' });
    expect((await s.frame((f) => f.id === 9)).error?.message ?? 'answered').not.toContain('waiting to start');
    s.ws.close();
  });
});
