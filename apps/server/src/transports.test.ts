/**
 * The same cancellation story on every transport of the client package — per-call HTTP/1.1, batched HTTP
 * with cancel by id, WebSocket: client abort → server signal → statement cancelled (57014) or transaction
 * rolled back → pool returned, on a real PostgreSQL. And tRPC's own links still work against the server.
 */
import { once } from 'node:events';
import { createServer, type AddressInfo } from 'node:net';
import { apiErrorCode, createApiClient, closeApiClient, isRetryableCallError, type ApiClient, type ApiTransport } from '@asyncscope/client';
import type { ActivityEvent, AppRouter } from '@asyncscope/api';
import { createTRPCClient, httpBatchLink, httpBatchStreamLink, httpLink, TRPCClientError } from '@trpc/client';
import { EventSource } from 'eventsource';
import postgres from 'postgres';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { until } from '@asyncscope/concurrency/testing';
import { newUser } from '@asyncscope/api/testing';
import { startTestServer, TEST_TOKEN, type TestServer } from './test-server';
import { expectAbortedByCaller } from './test/cancellation-probe';

/** Frames the WebSocket client sent (to count calls.cancel). */
const sentFrames: string[] = [];
class RecordingWebSocket extends WebSocket {
  override send(data: Parameters<WebSocket['send']>[0], ...rest: unknown[]): void {
    sentFrames.push(typeof data === 'string' ? data : '(binary)');
    (super.send as (...args: unknown[]) => void)(data, ...rest);
  }
}

let t: TestServer;
let observer: postgres.Sql;
const clients = new Map<ApiTransport, ApiClient>();

beforeAll(async () => {
  t = await startTestServer({ poolMax: 4 });
  observer = postgres(t.database.url, { max: 1, onnotice: () => undefined });
  for (const transport of ['http', 'http-batch', 'websocket'] as const) {
    clients.set(transport, createApiClient({ url: `${t.url}/trpc`, token: TEST_TOKEN, transport, EventSource, WebSocket: RecordingWebSocket, maxFrameBytes: 16 * 1024 }));
  }
});
afterAll(async () => {
  await Promise.all([...clients.values()].map((c) => closeApiClient(c)));
  await observer.end();
  await t.close();
});
beforeEach(async () => {
  await t.database.sql`truncate users, lab_writes restart identity`;
});

interface Session { pid: number; state: string | null; query: string }
const sessions = () => observer<Session[]>`select pid, state, query from pg_stat_activity where application_name = 'test-server' and datname = current_database()`;
const running = async (fragment: string) => (await sessions()).filter((s) => s.state === 'active' && s.query.includes(fragment));
const hop = <K extends ActivityEvent['type']>(callId: string, type: K) =>
  t.server.runtime.activity.read(0, 100_000).events.find((e) => e.callId === callId && e.type === type) as Extract<ActivityEvent, { type: K }> | undefined;
const failure = (p: Promise<unknown>) => p.then(() => undefined, (e: unknown) => e);
const client = (transport: ApiTransport) => clients.get(transport) as ApiClient;

describe.each(['http', 'http-batch', 'websocket'] as const)('over %s', (transport) => {
  it('abort → server signal → statement cancelled (57014) → connection back in the pool', async () => {
    const api = client(transport);
    const id = `tr-${transport}-sleep`;
    const controller = new AbortController();
    const call = failure(api.lab.sleep.query({ ms: 10_000 }, { signal: controller.signal, context: { callId: id } }));
    await until('the statement runs', () => Promise.resolve(hop(id, 'statement.started')));
    const abortedAt = performance.now();
    controller.abort();
    expectAbortedByCaller(await call);
    const pid = hop(id, 'statement.started')?.pid;
    await until('the statement is gone', async () => !(await sessions()).some((s) => s.pid === pid && s.state === 'active'), 2000);
    const ms = performance.now() - abortedAt;
    expect(ms).toBeLessThan(500);
    // Postgres shows the backend idle a moment before the driver has read the 57014 and recorded the hop.
    expect((await until('the statement.ended hop', () => Promise.resolve(hop(id, 'statement.ended')))).sqlstate).toBe('57014');
    expect(['client-closed', 'cancelled']).toContain(hop(id, 'signal.fired')?.reason);
    await until('settled', () => Promise.resolve(hop(id, 'settled')?.code === 'CLIENT_CLOSED_REQUEST' || undefined));
    await until('the pool is idle', async () => (await sessions()).every((s) => s.state === 'idle'));
    expect(t.server.database.client.statements()).toEqual({ queued: 0, running: 0 });
  });

  it('abort of a slow write → rolled back, nothing saved, no session idle in transaction', async () => {
    const api = client(transport);
    const id = `tr-${transport}-write`;
    const controller = new AbortController();
    const call = failure(api.lab.slowWrite.mutate({ label: id, ms: 10_000 }, { signal: controller.signal, context: { callId: id } }));
    await until('the transaction waits inside Postgres', async () => (await running('pg_sleep')).length > 0);
    controller.abort();
    await call;
    await until('rolled back', () => Promise.resolve(hop(id, 'rolled_back')));
    expect(await observer`select * from lab_writes where label = ${id}`).toHaveLength(0);
    await until('no idle-in-transaction session', async () => !(await sessions()).some((s) => s.state?.startsWith('idle in transaction')));
  });
});

describe.each(['http', 'http-batch', 'websocket'] as const)('deadlineAt over %s', (transport) => {
  it('fails the call with TIMEOUT at its budget, and its statement is gone', async () => {
    const id = `tr-${transport}-deadline`;
    const started = performance.now();
    // 'single' matters to 'http' only: there a call without a signal would be batched, with no budget sent.
    const error = await failure(client(transport).lab.sleep.query({ ms: 3000 }, { context: { callId: id, deadlineAt: Date.now() + 300, transport: 'single' } }));
    const took = performance.now() - started;
    expect(apiErrorCode(error)).toBe('TIMEOUT');
    expect(took).toBeGreaterThan(250);
    expect(took).toBeLessThan(1000);
    await until('settled on the server', () => Promise.resolve(hop(id, 'settled')));
    // http-batch: the client's own watch may stop the request first (client-closed) or cancel it by id.
    expect(['timeout', 'cancelled', 'client-closed']).toContain(hop(id, 'signal.fired')?.reason);
    await until('the pool is idle', async () => (await sessions()).every((s) => s.state === 'idle'));
  });
});

describe('batched HTTP, cancel by id', () => {
  it('two calls in one batch: aborting one cancels its statement (57014), the other completes', async () => {
    const api = client('http-batch');
    const controller = new AbortController();
    const aborted = failure(api.lab.sleep.query({ ms: 10_000 }, { signal: controller.signal, context: { callId: 'batch-abort' } }));
    const kept = api.lab.sleep.query({ ms: 500 }, { context: { callId: 'batch-kept' } });
    await until('both run', () => Promise.resolve(hop('batch-abort', 'statement.started') && hop('batch-kept', 'statement.started')));
    controller.abort();
    expectAbortedByCaller(await aborted);
    await until('the aborted one is cancelled in Postgres', () => Promise.resolve(hop('batch-abort', 'statement.ended')));
    expect(hop('batch-abort', 'statement.ended')?.sqlstate).toBe('57014');
    expect(hop('batch-abort', 'signal.fired')?.reason).toBe('cancelled');
    expect((await kept).sleptMs).toBeGreaterThanOrEqual(500);
    expect(hop('batch-kept', 'settled')?.code).toBe('OK');
  });
});

describe('a cancel-all of 1,000 calls on one socket', () => {
  it('sends them in frames under the server limit, cancels them in one or two calls.cancel, and leaves nothing running', async () => {
    const api = client('websocket');
    const controller = new AbortController();
    const ids = Array.from({ length: 1000 }, (_, i) => `all-${i}`);
    const calls = ids.map((id) => failure(api.lab.sleep.query({ ms: 10_000 }, { signal: controller.signal, context: { callId: id } })));
    await until('every call reached the server', () => Promise.resolve(ids.every((id) => hop(id, 'received')) || undefined), 10_000);
    const cancels = () => sentFrames.filter((f) => f.includes('"calls.cancel"')).length;
    const before = cancels();
    const abortedAt = performance.now();
    controller.abort();
    await Promise.all(calls);
    expect(performance.now() - abortedAt).toBeLessThan(2000); // every caller released without waiting for the server
    await until('every call settled', () => Promise.resolve(ids.every((id) => hop(id, 'settled')?.code === 'CLIENT_CLOSED_REQUEST') || undefined), 10_000);
    expect(cancels() - before).toBeLessThanOrEqual(2);
    await until('nothing running', async () => (await running('pg_sleep')).length === 0);
    expect(t.server.runtime.admission.inFlight).toBe(0);
    // The socket survived (no frame over the limit).
    expect((await api.users.list.query({ limit: 1 })).total).toBe(0);
  });
});

describe("tRPC's own links against the same server", () => {
  const headers = { authorization: `Bearer ${TEST_TOKEN}` };
  it.each([
    ['httpLink', () => httpLink({ url: `${t.url}/trpc`, headers })],
    ['httpBatchLink', () => httpBatchLink({ url: `${t.url}/trpc`, headers })],
    ['httpBatchStreamLink', () => httpBatchStreamLink({ url: `${t.url}/trpc`, headers })],
  ] as const)('%s: queries and mutations work', async (_name, link) => {
    const api = createTRPCClient<AppRouter>({ links: [link()] });
    const [created, list] = await Promise.all([api.users.create.mutate(newUser('Ada')), api.users.list.query()]);
    expect(created.name).toBe('Ada');
    expect(list.total).toBeGreaterThanOrEqual(0);
    expect((await api.users.byId.query({ id: created.id })).email).toBe('ada@example.com');
  });
});

const causeOf = (error: unknown) => (error as { cause?: { name?: string; closeCode?: number } }).cause;
/** A client of its own (closed after the test), on the recording socket. */
function ownClient(transport: ApiTransport, extra: Partial<Parameters<typeof createApiClient>[0]> = {}): ApiClient {
  return createApiClient({ url: `${t.url}/trpc`, token: TEST_TOKEN, transport, EventSource, WebSocket: RecordingWebSocket, maxFrameBytes: 16 * 1024, ...extra });
}

describe.each(['http-batch', 'websocket'] as const)('a call aborted before it was sent, over %s', (transport) => {
  it('fails at once, sends no calls.cancel (no early cancel left on the server), and its id can be reused at once', async () => {
    const api = client(transport);
    const id = `tr-${transport}-unsent`;
    const framesBefore = sentFrames.length;
    const controller = new AbortController();
    const aborted = failure(api.lab.sleep.query({ ms: 5000 }, { signal: controller.signal, context: { callId: id } }));
    controller.abort();
    expectAbortedByCaller(await aborted);
    // Without the fix, a calls.cancel for `id` reaches the server first and kills this call (CLIENT_CLOSED_REQUEST).
    const again = await api.lab.sleep.query({ ms: 50 }, { context: { callId: id } });
    expect(again.sleptMs).toBeGreaterThanOrEqual(50);
    expect(hop(id, 'settled')?.code).toBe('OK');
    await new Promise((r) => setTimeout(r, 50));
    expect(sentFrames.slice(framesBefore).some((f) => f.includes('"calls.cancel"') && f.includes(`"${id}"`))).toBe(false);
  });
});

describe('WebSocket closures: the close code decides whether a retry makes sense', () => {
  it('a message over MAX_BODY_BYTES closes the socket with 1009: the call fails with closeCode 1009, not retryable', async () => {
    const api = ownClient('websocket', { maxFrameBytes: 64 * 1024 });
    try {
      await api.users.list.query({ limit: 1 });
      const error = await failure(api.users.create.mutate({ name: 'x'.repeat(20 * 1024), email: 'big@example.com' }, { context: { callId: 'tr-too-big' } }));
      expect(error).toBeInstanceOf(TRPCClientError);
      expect(causeOf(error)).toMatchObject({ name: 'ConnectionLostError', closeCode: 1009 });
      expect(isRetryableCallError(error)).toBe(false);
    } finally {
      await closeApiClient(api);
    }
  });

  it('a wrong token closes the socket with 4401: the call fails promptly, not retryable, and its deadline still ends it', async () => {
    const api = createApiClient({ url: `${t.url}/trpc`, token: 'wrong-token-0123456789abcdef', transport: 'websocket', WebSocket: RecordingWebSocket, maxFrameBytes: 16 * 1024 });
    try {
      const started = performance.now();
      const error = await failure(api.users.list.query({ limit: 1 }, { context: { callId: 'tr-bad-token', deadlineAt: Date.now() + 3000 } }));
      expect(performance.now() - started).toBeLessThan(2000);
      expect(error).toBeInstanceOf(TRPCClientError);
      expect(isRetryableCallError(error)).toBe(false);
      // Either it was in flight when the 4401 came (ConnectionLostError 4401), or it waited for a socket that kept
      // being refused and ended at its deadline: never retryable, never hanging.
      // Or, sent as the refused socket closed, tRPC's own "Active connection is not open" (not retryable either).
      if (apiErrorCode(error) === undefined) {
        const cause = causeOf(error);
        if (cause?.name === 'ConnectionLostError') expect(cause.closeCode).toBe(4401);
        else expect((error as Error).message).toMatch(/Active connection is not open/);
      } else expect(apiErrorCode(error)).toBe('TIMEOUT');
      expect(hop('tr-bad-token', 'received')).toBeUndefined();
    } finally {
      await closeApiClient(api);
    }
  });
});

describe('closeApiClient over the WebSocket', () => {
  it('fails the call in flight at once (not retryable, no calls.cancel), stops it on the server, and a later call opens no socket', async () => {
    const api = ownClient('websocket');
    const id = 'tr-close-in-flight';
    const call = failure(api.lab.sleep.query({ ms: 10_000 }, { context: { callId: id } }));
    await until('the statement runs', () => Promise.resolve(hop(id, 'statement.started')));
    const sockets = t.server.webSockets();
    const framesBefore = sentFrames.length;
    const closedAt = performance.now();
    const closing = closeApiClient(api);
    const error = await call;
    expect(performance.now() - closedAt).toBeLessThan(100);
    await closing;
    expect(causeOf(error)?.name).toBe('ClientClosedError');
    expect(isRetryableCallError(error)).toBe(false);
    // The socket's close stopped the call on the server.
    await until('the statement is cancelled', () => Promise.resolve(hop(id, 'statement.ended')), 2000);
    expect(hop(id, 'statement.ended')?.sqlstate).toBe('57014');
    await until('the socket is gone', () => Promise.resolve(t.server.webSockets() === sockets - 1 || undefined));
    const later = await failure(api.users.list.query({ limit: 1 }));
    expect(causeOf(later)?.name).toBe('ClientClosedError');
    await new Promise((r) => setTimeout(r, 300));
    expect(t.server.webSockets()).toBe(sockets - 1);
    expect(sentFrames.slice(framesBefore).some((f) => f.includes('"calls.cancel"'))).toBe(false);
  });
});

describe('a WebSocket call with deadlineAt while there is no server', () => {
  it('fails with TIMEOUT at its deadline instead of waiting for a socket', async () => {
    const free = createServer();
    free.listen(0, '127.0.0.1');
    await once(free, 'listening');
    const port = (free.address() as AddressInfo).port;
    await new Promise((r) => free.close(r));
    const api = createApiClient({ url: `http://127.0.0.1:${port}/trpc`, token: TEST_TOKEN, transport: 'websocket', WebSocket: RecordingWebSocket });
    try {
      const started = performance.now();
      const error = await failure(api.users.list.query({ limit: 1 }, { context: { deadlineAt: Date.now() + 300 } }));
      expect(apiErrorCode(error)).toBe('TIMEOUT');
      expect(performance.now() - started).toBeLessThan(500);
    } finally {
      await closeApiClient(api);
    }
  });
});
