/**
 * The WebSocket transport end to end, against the real server and a real PostgreSQL: auth before any
 * call, cancel by id (abort → calls.cancel → 57014), socket close stops every call, deadlines, admission,
 * limits, bad input, a slow reader, reconnect and resume, shutdown. Raw sockets (the `ws` package) where
 * the test must speak the protocol itself; the client package where it is the client under test.
 */
import { once } from 'node:events';
import { closeApiClient, createApiClient, type ApiClient, type ConnectionState } from '@asyncscope/client';
import type { ActivityEvent } from '@asyncscope/api';
import { TRPCClientError } from '@trpc/client';
import postgres from 'postgres';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { startTestServer, TEST_TOKEN, type TestServer } from './test-server';

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
beforeEach(async () => {
  await t.database.sql`truncate users, lab_writes restart identity`;
  t.server.runtime.faults.clear();
});

function wsClient(token = TEST_TOKEN, onConnectionState?: (s: ConnectionState) => void): ApiClient {
  const client = createApiClient({ url: `${t.url}/trpc`, token, transport: 'websocket', WebSocket: RecordingWebSocket, ...(onConnectionState ? { onConnectionState } : {}) });
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
    const found = await until('a frame', () => Promise.resolve(this.frames.find(match)), timeoutMs);
    return found.value;
  }
  close(): void {
    this.ws.close();
  }
}

interface Session { pid: number; state: string | null; query: string }
const sessions = () => observer<Session[]>`select pid, state, query from pg_stat_activity where application_name = 'test-server' and datname = current_database()`;
const running = async (fragment: string) => (await sessions()).filter((s) => s.state === 'active' && s.query.includes(fragment));

async function until<T>(what: string, check: () => Promise<T | undefined | false>, timeoutMs = 5000): Promise<{ value: T; ms: number }> {
  const start = performance.now();
  for (;;) {
    const value = await check();
    if (value !== undefined && value !== false) return { value, ms: performance.now() - start };
    if (performance.now() - start > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

const eventsOf = (callId: string): ActivityEvent[] => t.server.runtime.activity.read(0, 100_000).events.filter((e) => e.callId === callId);
const hop = <K extends ActivityEvent['type']>(callId: string, type: K) => eventsOf(callId).find((e) => e.type === type) as Extract<ActivityEvent, { type: K }> | undefined;
const failure = (p: Promise<unknown>) => p.then(() => undefined, (e: unknown) => e);
const codeOf = (e: unknown) => (e instanceof TRPCClientError ? (e.data as { code?: string } | undefined)?.code : undefined);
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
    const created = await api.users.create.mutate({ name: 'Ada', email: 'ada@example.com' });
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
    const error = await call;
    expect(error).toBeInstanceOf(TRPCClientError);
    expect(performance.now() - abortedAt).toBeLessThan(50); // the caller stops waiting at once


    const fired = await until('the server signal', () => Promise.resolve(hop('ws-abort-1', 'signal.fired')));
    expect(fired.value.reason).toBe('cancelled');
    const started = hop('ws-abort-1', 'statement.started');
    expect(started?.pid).toBeGreaterThan(0);
    await until('the statement leaves pg_stat_activity', async () => !(await sessions()).some((s) => s.pid === started?.pid && s.state === 'active'), 2000);
    expect(performance.now() - abortedAt).toBeLessThan(500);
    const types = eventsOf('ws-abort-1').map((e) => e.type);
    for (const type of ['received', 'started', 'statement.started', 'signal.fired', 'cancel.sent', 'statement.ended', 'settled'] as const) expect(types).toContain(type);
    expect(hop('ws-abort-1', 'statement.ended')).toMatchObject({ sqlstate: '57014', pid: started?.pid });
    expect(hop('ws-abort-1', 'settled')?.code).toBe('CLIENT_CLOSED_REQUEST');
    expect((await canary).sleptMs).toBeGreaterThanOrEqual(400);
    expect(hop('ws-canary-1', 'settled')?.code).toBe('OK');
  });

  it('rolls back a cancelled lab.slowWrite and returns the connection to the pool', async () => {
    const controller = new AbortController();
    const call = failure(api.lab.slowWrite.mutate({ label: 'ws-cancelled-write', ms: 10_000 }, { signal: controller.signal, context: { callId: 'ws-write-1' } }));
    await until('the transaction waits inside Postgres', async () => (await running('pg_sleep')).length > 0);
    controller.abort();
    await call;
    await until('rolled back', () => Promise.resolve(hop('ws-write-1', 'rolled_back')));
    expect(hop('ws-write-1', 'rolled_back')?.sqlstate).toBe('57014');
    expect(await observer`select * from lab_writes where label = 'ws-cancelled-write'`).toHaveLength(0);
    await idle();
    expect(t.server.database.db.statements()).toEqual({ queued: 0, running: 0 });
  });

  it('coalesces the aborts of one tick into one calls.cancel', async () => {
    const controllers = Array.from({ length: 20 }, () => new AbortController());
    const calls = controllers.map((c, i) => failure(api.lab.sleep.query({ ms: 5000 }, { signal: c.signal, context: { callId: `ws-many-${i}` } })));
    await until('all received', () => Promise.resolve(controllers.every((_, i) => hop(`ws-many-${i}`, 'received')) || undefined));
    const cancels = () => sentFrames.filter((f) => f.includes('"calls.cancel"'));
    const before = cancels().length;
    for (const c of controllers) c.abort();
    await Promise.all(calls);
    await until('all settled', () => Promise.resolve(controllers.every((_, i) => hop(`ws-many-${i}`, 'settled')?.code === 'CLIENT_CLOSED_REQUEST') || undefined));
    expect(cancels().length - before).toBe(1);
    expect(cancels().at(-1)).toContain('ws-many-19');
    await idle();
  });
});

describe('deadlines', () => {
  it('honours params.deadlineMs: TIMEOUT at the budget, statement gone', async () => {
    const started = performance.now();
    const error = await failure(api.lab.sleep.query({ ms: 2000 }, { context: { callId: 'ws-budget-1', deadlineAt: Date.now() + 300 } }));
    const took = performance.now() - started;
    expect(codeOf(error)).toBe('TIMEOUT');
    expect(took).toBeGreaterThan(280);
    expect(took).toBeLessThan(700);
    expect(hop('ws-budget-1', 'received')?.budgetMs).toBeLessThanOrEqual(300);
    expect(hop('ws-budget-1', 'signal.fired')?.reason).toBe('timeout');
    await idle();
  });
});
