/**
 * The WebSocket transport end to end, against the real server and a real PostgreSQL: auth before any
 * call, cancel by id (abort → calls.cancel → 57014), socket close stops every call, deadlines, admission,
 * limits, bad input, a slow reader, reconnect and resume, shutdown. Raw sockets (the `ws` package) where
 * the test must speak the protocol itself; the client package where it is the client under test.
 */
import { once } from 'node:events';
import { connect, createServer, type AddressInfo, type Socket } from 'node:net';
import { closeApiClient, createApiClient, isRetryableCallError, type ApiClient, type ConnectionState } from '@asyncscope/client';
import { until } from '@asyncscope/concurrency/testing';
import { newUser, seedUsers } from '@asyncscope/api/testing';
import postgres from 'postgres';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { startTestServer, TEST_TOKEN, type TestServer } from './test-server';
import { abortOnceRunning, cancellationProbe, expectAbortedByCaller, expectCancelledHopByHop, expectRolledBack, expectStoppedAtBudget, failure } from './test/cancellation-probe';

/** Frames the test clients sent, to count `calls.cancel` messages. */
const sentFrames: string[] = [];
class RecordingWebSocket extends WebSocket {
  override send(data: Parameters<WebSocket['send']>[0], ...rest: unknown[]): void {
    sentFrames.push(typeof data === 'string' ? data : '(binary)');
    (super.send as (...args: unknown[]) => void)(data, ...rest);
  }
}

const OTHER_TOKEN = 'other-token-0123456789abcdef';
let t: TestServer;
let api: ApiClient;
let observer: postgres.Sql;
const clients: ApiClient[] = [];

beforeAll(async () => {
  t = await startTestServer({ poolMax: 4, extraApiTokens: [OTHER_TOKEN], wsMaxCallsPerSocket: 30, wsMaxSocketsPerToken: 8 });
  api = wsClient();
  observer = postgres(t.database.url, { max: 1, onnotice: () => undefined });
});
afterAll(async () => {
  await Promise.all(clients.map((c) => closeApiClient(c)));
  await observer.end();
  await t.close();
});
/** Raw sockets a test opened: closed after it, so that none counts against the next test's limits. */
const rawSockets = new Set<RawSocket>();
afterEach(async () => {
  for (const s of rawSockets) s.ws.terminate();
  rawSockets.clear();
  // Only the shared client's socket is left.
  await until('the server saw the test sockets close', () => t.server.webSockets() <= 1);
});
beforeEach(async () => {
  await t.database.sql`truncate users, lab_writes restart identity`;
  t.server.runtime.faults.clear();
});

function wsClient(token = TEST_TOKEN, onConnectionState?: (s: ConnectionState) => void): ApiClient {
  const client = createApiClient({ url: `${t.url}/trpc`, token, transport: 'websocket', WebSocket: RecordingWebSocket, maxFrameBytes: 16 * 1024, ...(onConnectionState ? { onConnectionState } : {}) });
  clients.push(client);
  return client;
}

const wsUrl = () => `${t.url.replace('http:', 'ws:')}/trpc?connectionParams=1`;

interface Frame { id: string | number | null; result?: { type: string; data?: unknown; id?: string }; error?: { code: number; message: string; data: { code: string } }; method?: string }

/** A raw socket speaking tRPC's protocol, keeping every frame it receives. */
class RawSocket {
  readonly frames: Frame[] = [];
  readonly closed: Promise<{ code: number; reason: string }>;
  constructor(readonly ws: WebSocket) {
    ws.on('message', (data) => { this.frames.push(JSON.parse((data as Buffer).toString('utf8')) as Frame); });
    ws.on('error', () => undefined);
    this.closed = new Promise((resolve) => {
      ws.once('close', (code, reason) => { resolve({ code, reason: reason.toString() }); });
    });
  }
  static async open(url = wsUrl(), token: string | null = TEST_TOKEN): Promise<RawSocket> {
    const ws = new WebSocket(url);
    const socket = new RawSocket(ws);
    rawSockets.add(socket);
    await once(ws, 'open');
    if (token !== null) socket.send({ method: 'connectionParams', data: { token } });
    return socket;
  }
  send(message: unknown): void {
    this.ws.send(typeof message === 'string' ? message : JSON.stringify(message));
  }
  call(id: number | string, method: string, path: string, input: unknown, extra: Record<string, unknown> = {}): void {
    this.send({ id, method, params: { path, input, ...extra } });
  }
  async frame(match: (f: Frame) => boolean, timeoutMs = 5000): Promise<Frame> {
    return until('a frame', () => this.frames.find(match), timeoutMs);
  }
  close(): void {
    this.ws.close();
  }
}

const probe = cancellationProbe(() => t, () => observer);
const { sessions, running, eventsOf, hop } = probe;
const idle = () => until('every connection idle', async () => (await sessions()).every((s) => s.state === 'idle'));

describe('auth comes first', () => {
  it('closes a socket with a wrong token (4401), and a call sent with it never runs', async () => {
    const s = await RawSocket.open(wsUrl(), null);
    s.send({ method: 'connectionParams', data: { token: 'wrong-token-0123456789' } });
    s.call(1, 'mutation', 'lab.slowWrite', { label: 'unauthorized', ms: 0 });
    const closed = await s.closed;
    expect(closed).toEqual({ code: 4401, reason: 'unauthorized' });
    expect(s.frames[0]?.error?.data.code).toBe('UNAUTHORIZED');
    expect(s.frames.some((f) => f.id === 1)).toBe(false);
    await new Promise((r) => setTimeout(r, 100));
    expect(await observer`select * from lab_writes where label = 'unauthorized'`).toHaveLength(0);
  });

  it('closes a socket whose first message is a call, not connectionParams: the call never runs', async () => {
    const s = await RawSocket.open(wsUrl(), null);
    s.call(1, 'mutation', 'lab.slowWrite', { label: 'first-message-call', ms: 0 });
    expect((await s.closed).code).toBe(4401);
    await new Promise((r) => setTimeout(r, 100));
    expect(await observer`select * from lab_writes where label = 'first-message-call'`).toHaveLength(0);
  });

  it('refuses a token in the URL, or no connectionParams=1, before any socket exists', async () => {
    for (const url of [`${t.url.replace('http:', 'ws:')}/trpc?token=${TEST_TOKEN}`, `${t.url.replace('http:', 'ws:')}/trpc`, `${t.url.replace('http:', 'ws:')}/trpc?connectionParams=1&token=${TEST_TOKEN}`]) {
      const ws = new WebSocket(url);
      const [, res] = (await once(ws, 'unexpected-response')) as [unknown, { statusCode: number }];
      expect(res.statusCode).toBe(400);
      ws.on('error', () => undefined);
      ws.terminate();
    }
    const ws = new WebSocket(`${t.url.replace('http:', 'ws:')}/elsewhere?connectionParams=1`);
    const [, res] = (await once(ws, 'unexpected-response')) as [unknown, { statusCode: number }];
    expect(res.statusCode).toBe(404);
    ws.on('error', () => undefined);
    ws.terminate();
  });

  it('answers calls once authorized, through the client package', async () => {
    expect((await api.users.list.query()).total).toBe(0);
    const created = await api.users.create.mutate(newUser('Ada'));
    expect((await api.users.byId.query({ id: created.id })).name).toBe('Ada');
  });
});

describe('a client abort stops the work on the server', () => {
  it('abort → calls.cancel → statement cancelled (57014), hop by hop, while a canary on the same socket completes', async () => {
    const controller = new AbortController();
    const call = failure(api.lab.sleep.query({ ms: 10_000 }, { signal: controller.signal, context: { callId: 'ws-abort-1' } }));
    const canary = api.lab.sleep.query({ ms: 400 }, { context: { callId: 'ws-canary-1' } });
    await until('the statements run', async () => (await running('pg_sleep')).length >= 2);
    const abortedAt = performance.now();
    controller.abort();
    expectAbortedByCaller(await call);
    expect(performance.now() - abortedAt).toBeLessThan(50); // the caller stops waiting at once
    await expectCancelledHopByHop(probe, 'ws-abort-1', abortedAt, 'cancelled');
    const types = eventsOf('ws-abort-1').map((e) => e.type);
    for (const type of ['received', 'started', 'cancel.sent'] as const) expect(types).toContain(type);
    expect((await canary).sleptMs).toBeGreaterThanOrEqual(400);
    expect(hop('ws-canary-1', 'settled')?.code).toBe('OK');
  });

  it('rolls back a cancelled lab.slowWrite and returns the connection to the pool', async () => {
    const error = await abortOnceRunning(probe, (signal) => api.lab.slowWrite.mutate({ label: 'ws-cancelled-write', ms: 10_000 }, { signal, context: { callId: 'ws-write-1' } }));
    expectAbortedByCaller(error);
    await expectRolledBack(probe, observer, 'ws-write-1', 'ws-cancelled-write');
    await idle();
    expect(t.server.database.client.statements()).toEqual({ queued: 0, running: 0 });
  });

  it('coalesces the aborts of one tick into one calls.cancel', async () => {
    const controllers = Array.from({ length: 20 }, () => new AbortController());
    const calls = controllers.map((c, i) => failure(api.lab.sleep.query({ ms: 5000 }, { signal: c.signal, context: { callId: `ws-many-${i}` } })));
    await until('all received', () => controllers.every((_, i) => hop(`ws-many-${i}`, 'received')));
    const cancels = () => sentFrames.filter((f) => f.includes('"calls.cancel"'));
    const before = cancels().length;
    for (const c of controllers) c.abort();
    await Promise.all(calls);
    await until('all settled', () => controllers.every((_, i) => hop(`ws-many-${i}`, 'settled')?.code === 'CLIENT_CLOSED_REQUEST'));
    expect(cancels().length - before).toBe(1);
    expect(cancels().at(-1)).toContain('ws-many-19');
    await idle();
  });
});

describe('deadlines', () => {
  it('honours params.deadlineMs: TIMEOUT at the budget, statement gone', async () => {
    await expectStoppedAtBudget(probe, 'ws-budget-1', (deadlineAt) => api.lab.sleep.query({ ms: 2000 }, { context: { callId: 'ws-budget-1', deadlineAt } }));
    await idle();
  });
});

describe('a socket that goes away stops every call it carried', () => {
  it('20 calls in flight (4 running, 16 waiting for a connection): close → all stopped, statements gone, pool idle', async () => {
    const s = await RawSocket.open();
    for (let i = 0; i < 20; i++) s.call(i + 1, 'query', 'lab.sleep', { ms: 10_000 }, { callId: `ws-close-${i}` });
    await until('4 statements run', async () => (await running('pg_sleep')).length === 4);
    expect(t.server.database.client.statements().queued).toBe(16);
    const closedAt = performance.now();
    s.close();
    await until('every call settled', () => Array.from({ length: 20 }, (_, i) => hop(`ws-close-${i}`, 'settled')).every((h) => h?.code === 'CLIENT_CLOSED_REQUEST'));
    await until('no statement left', async () => (await running('pg_sleep')).length === 0, 2000);
    expect(performance.now() - closedAt).toBeLessThan(1000);
    expect(Array.from({ length: 20 }, (_, i) => hop(`ws-close-${i}`, 'signal.fired')?.reason)).toEqual(Array(20).fill('client-closed'));
    await idle();
    expect(t.server.database.client.statements()).toEqual({ queued: 0, running: 0 });
    expect(t.server.runtime.admission.inFlight).toBe(0);
  });
});

describe('call ids and per-socket limits', () => {
  it('refuses a second call with an id already in flight (CONFLICT); the first goes on', async () => {
    const s = await RawSocket.open();
    s.call(1, 'query', 'lab.sleep', { ms: 300 }, { callId: 'ws-dup' });
    await until('the first runs', () => hop('ws-dup', 'started'));
    s.call(2, 'query', 'lab.sleep', { ms: 10 }, { callId: 'ws-dup' });
    expect((await s.frame((f) => f.id === 2)).error?.data.code).toBe('CONFLICT');
    expect((await s.frame((f) => f.id === 1)).result?.type).toBe('data');
    s.close();
  });

  it('refuses the call over WS_MAX_CALLS_PER_SOCKET (30) with TOO_MANY_REQUESTS, and only that one', async () => {
    const s = await RawSocket.open();
    for (let i = 1; i <= 31; i++) s.call(i, 'query', 'lab.sleep', { ms: 200 }, { callId: `ws-slot-${i}` });
    const refused = await s.frame((f) => f.id === 31);
    expect(refused.error?.data.code).toBe('TOO_MANY_REQUESTS');
    expect(refused.error?.message).toMatch(/connection has as many calls in flight/);
    await until('the 30 others answer', () => Promise.resolve(s.frames.filter((f) => typeof f.id === 'number' && f.id <= 30 && f.result?.type === 'data').length === 30 || undefined), 10_000);
    // Slots come back: the socket takes calls again.
    s.call(32, 'query', 'users.list', {});
    expect((await s.frame((f) => f.id === 32)).result?.type).toBe('data');
    s.close();
  });

  it('closes the socket over WS_MAX_SOCKETS_PER_TOKEN (8) with 4429; other tokens are not counted; closing frees a place', async () => {
    await api.users.list.query(); // the shared client's socket is open: 1 of the 8
    const mine = await Promise.all(Array.from({ length: 7 }, () => RawSocket.open()));
    // Every one authenticated (answers a call).
    await Promise.all(mine.map(async (s, i) => { s.call(i, 'query', 'users.list', {}); await s.frame((f) => f.id === i); }));
    const extra = await RawSocket.open();
    expect(await extra.closed).toEqual({ code: 4429, reason: 'too many sockets for this token' });
    expect(extra.frames[0]?.error?.data.code).toBe('TOO_MANY_REQUESTS');
    const other = await RawSocket.open(wsUrl(), OTHER_TOKEN);
    other.call(1, 'query', 'users.list', {});
    expect((await other.frame((f) => f.id === 1)).result?.type).toBe('data');
    mine[0]?.close();
    await mine[0]?.closed;
    await until('the server saw it close', () => t.server.webSockets() === 8);
    const again = await RawSocket.open();
    again.call(1, 'query', 'users.list', {});
    expect((await again.frame((f) => f.id === 1)).result?.type).toBe('data');
    for (const s of [...mine, other, again]) s.close();
  });
});

describe('bad input: a typed error or a clean close, never a crash, nothing else affected', () => {
  it('answers malformed JSON, unknown methods, huge or missing ids, bad call ids and binary frames with typed errors; the socket stays usable', async () => {
    const s = await RawSocket.open();
    const bystander = await RawSocket.open();
    bystander.call(1, 'query', 'lab.sleep', { ms: 300 }, { callId: 'ws-bystander' });
    s.send('{not json');
    expect((await s.frame((f) => f.error?.data.code === 'PARSE_ERROR')).id).toBeNull();
    s.send({ id: 7, method: 'explode', params: { path: 'users.list', input: {} } });
    const unknown = await s.frame((f) => f.id === 7);
    expect(unknown.error?.data.code).toBe('BAD_REQUEST');
    expect(unknown.error?.message).toContain('"explode"');
    s.send({ id: 'x'.repeat(100_00), method: 'query', params: { path: 'users.list', input: {} } });
    expect((await s.frame((f) => f.error?.message.includes('message id') === true)).id).toBeNull();
    s.send({ method: 'query', params: { path: 'users.list', input: {} } });
    await until('two id errors', () => s.frames.filter((f) => f.error?.message.includes('message id')).length === 2);
    s.call(8, 'query', 'users.list', {}, { callId: 'bad id with spaces' });
    expect((await s.frame((f) => f.id === 8)).error?.message).toContain('params.callId');
    s.call(9, 'query', 'users.list', {}, { deadlineMs: -5 });
    expect((await s.frame((f) => f.id === 9)).error?.message).toContain('params.deadlineMs');
    s.ws.send(Buffer.from([0xde, 0xad, 0xbe, 0xef]), { binary: true });
    await s.frame((f) => f.error?.data.code === 'UNPROCESSABLE_CONTENT');
    s.send({ method: 'connectionParams', data: { token: TEST_TOKEN } });
    await s.frame((f) => f.error?.message.includes('connectionParams') === true);
    s.send([]);
    await s.frame((f) => f.error?.message === 'An empty batch.');
    // A batch: each message checked and run on its own.
    s.send([{ id: 10, method: 'query', params: { path: 'users.list', input: {} } }, { id: 11, method: 'nope' }]);
    expect((await s.frame((f) => f.id === 10)).result?.type).toBe('data');
    expect((await s.frame((f) => f.id === 11)).error?.data.code).toBe('BAD_REQUEST');
    // What tRPC's own parser refuses: a jsonrpc other than "2.0", a lastEventId that is not a string.
    s.send({ id: 14, jsonrpc: '1.0', method: 'query', params: { path: 'users.list', input: {} } });
    expect((await s.frame((f) => f.id === 14)).error?.message).toContain('jsonrpc');
    s.send({ id: 15, method: 'subscription', params: { path: 'users.stream', input: {}, lastEventId: 5 } });
    expect((await s.frame((f) => f.id === 15)).error?.message).toContain('params.lastEventId');
    s.call(12, 'query', 'users.nope', {});
    expect((await s.frame((f) => f.id === 12)).error?.data.code).toBe('NOT_FOUND');
    s.call(13, 'query', 'users.list', {});
    expect((await s.frame((f) => f.id === 13)).result?.type).toBe('data');
    expect((await bystander.frame((f) => f.id === 1)).result?.type).toBe('data');
    expect(s.ws.readyState).toBe(WebSocket.OPEN);
    s.close();
    bystander.close();
  });

  it('closes a socket that keeps sending garbage (1008), after an error frame for each', async () => {
    const s = await RawSocket.open();
    for (let i = 0; i < 25; i++) s.send('garbage');
    expect(await s.closed).toEqual({ code: 1008, reason: 'too many malformed messages (20)' });
    expect(s.frames.filter((f) => f.error?.data.code === 'PARSE_ERROR')).toHaveLength(20);
  });

  it('closes a socket that sends a message over MAX_BODY_BYTES (1009); the server and other sockets go on', async () => {
    const s = await RawSocket.open();
    const other = await RawSocket.open();
    s.call(1, 'mutation', 'users.create', { name: 'x'.repeat(20_000), email: 'big@example.com' });
    expect((await s.closed).code).toBe(1009);
    other.call(1, 'query', 'users.list', {});
    expect((await other.frame((f) => f.id === 1)).result?.type).toBe('data');
    other.close();
  });

  it("a cancel naming another token's call answers 'unknown', and that call goes on", async () => {
    const victim = await RawSocket.open();
    victim.call(1, 'query', 'lab.sleep', { ms: 600 }, { callId: 'ws-victim' });
    await until('it runs', () => hop('ws-victim', 'statement.started'));
    const attacker = await RawSocket.open(wsUrl(), OTHER_TOKEN);
    attacker.call(1, 'mutation', 'calls.cancel', { callIds: ['ws-victim'] });
    expect((await attacker.frame((f) => f.id === 1)).result?.data).toEqual({ results: [{ callId: 'ws-victim', status: 'unknown' }] });
    expect((await victim.frame((f) => f.id === 1)).result?.type).toBe('data');
    expect(hop('ws-victim', 'settled')?.code).toBe('OK');
    victim.close();
    attacker.close();
  });
});

/** A TCP proxy in front of the server whose connections the test can cut (a network drop, not a close). */
async function cuttableProxy(target: string): Promise<{ url: string; cut(): void; close(): Promise<void> }> {
  const { port, hostname } = new URL(target);
  const pairs = new Set<[Socket, Socket]>();
  const server = createServer((client) => {
    const upstream = connect(Number(port), hostname);
    const pair: [Socket, Socket] = [client, upstream];
    pairs.add(pair);
    for (const s of pair) {
      s.on('error', () => undefined);
      s.on('close', () => { pairs.delete(pair); for (const o of pair) o.destroy(); });
    }
    client.pipe(upstream);
    upstream.pipe(client);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    cut: () => { for (const pair of pairs) for (const s of pair) s.destroy(); },
    close: async () => {
      for (const pair of pairs) for (const s of pair) s.destroy();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

describe('reconnect', () => {
  it('after a drop: calls in flight fail at once with a retryable error, the client reconnects, users.stream resumes with no duplicate and no gap', async () => {
    await seedUsers(t.database.sql, 3000);
    const proxy = await cuttableProxy(t.url);
    const states: ConnectionState[] = [];
    const client = createApiClient({ url: `${proxy.url}/trpc`, token: TEST_TOKEN, transport: 'websocket', WebSocket, maxFrameBytes: 16 * 1024, onConnectionState: (s) => { states.push(s); } });
    try {
      await client.users.list.query();
      const ids: number[] = [];
      let pages = 0;
      let cutAfter = -1;
      const inFlight = failure(client.lab.sleep.query({ ms: 10_000 }, { context: { callId: 'ws-drop-1' } }));
      await until('the call runs', () => hop('ws-drop-1', 'statement.started'));
      const done = new Promise<void>((resolve, reject) => {
        const sub = client.users.stream.subscribe({ pageSize: 10 }, {
          onData: (page) => {
            pages++;
            for (const u of page.data.items) ids.push(u.id);
            // A drop mid-stream, while pages are on the wire.
            if (pages === 5) { cutAfter = ids.length; proxy.cut(); }
            // `sent` counts from where a (resumed) stream started: the last id tells the end.
            if (ids.at(-1) === 3000) { sub.unsubscribe(); resolve(); }
          },
          onError: reject,
        });
      });
      const dropped = await inFlight;
      expect(isRetryableCallError(dropped)).toBe(true);
      expect((dropped as Error).message).toMatch(/WebSocket closed/);
      // The server saw the drop too: the call stopped, its statement gone.
      await until('the dropped call settled', () => hop('ws-drop-1', 'settled')?.code === 'CLIENT_CLOSED_REQUEST');
      await done;
      expect(cutAfter).toBe(50);
      expect(ids).toHaveLength(3000);
      expect(new Set(ids).size).toBe(3000);
      expect(ids).toEqual(Array.from({ length: 3000 }, (_, i) => ids[0] as number + i));
      expect(states.some((s) => s.state === 'connecting' && s.error !== null)).toBe(true);
      expect(states.at(-1)?.state).toBe('open');
      // And calls work again on the new socket.
      expect((await client.users.list.query({ limit: 1 })).total).toBe(3000);
    } finally {
      await closeApiClient(client);
      await proxy.close();
    }
  });
});

describe('subscriptions on the socket', () => {
  it('subscription.stop ends the stream on the server (settled, no more pages); a second subscription with a running id is refused', async () => {
    await seedUsers(t.database.sql, 3000, 'Sub');
    const s = await RawSocket.open();
    s.call(1, 'subscription', 'users.stream', { pageSize: 1, callId: 'ws-stop-1' });
    await s.frame((f) => f.id === 1 && f.result?.type === 'data');
    s.call(1, 'subscription', 'users.stream', { pageSize: 1 });
    expect((await s.frame((f) => f.id === 1 && f.error !== undefined)).error?.message).toContain('already running');
    s.send({ id: 1, method: 'subscription.stop' });
    const settled = await until('the stream settled', () => hop('ws-stop-1', 'settled'));
    expect(settled.code).toBe('CLIENT_CLOSED_REQUEST');
    const pages = s.frames.filter((f) => f.id === 1 && f.result?.type === 'data').length;
    expect(pages).toBeLessThan(3000);
    await new Promise((r) => setTimeout(r, 100));
    expect(s.frames.filter((f) => f.id === 1 && f.result?.type === 'data').length).toBeLessThanOrEqual(pages + 1);
    // The socket goes on.
    s.call(2, 'query', 'users.list', { limit: 1 });
    expect((await s.frame((f) => f.id === 2)).result?.type).toBe('data');
  });
});
