/**
 * Without a server: call ids checked before anything is sent, calls.cancel only for calls that were sent,
 * a closed client stays closed, close codes that make a lost call not worth a retry, one budget floor.
 */
import type { AppRouter } from '@asyncscope/api';
import { createTRPCClient, TRPCClientError, type TRPCLink } from '@trpc/client';
import { observable } from '@trpc/server/observable';
import { describe, expect, it, vi } from 'vitest';
import { budgetMs, CancelBatcher, cancelByIdLink } from './cancel-by-id';
import { apiErrorCode } from './errors';
import { closeApiClient, createApiClient, type ApiTransport } from './links';
import { isRetryableCallError } from './policy';
import { callMetaEncoder, closeCodeOf, ConnectionLostError } from './ws';

const user = { id: 1, name: 'Ada', email: 'ada@example.com', createdAt: '2026-01-01T00:00:00.000Z', updatedAt: '2026-01-01T00:00:00.000Z' };

interface Sent { path: string; callIds: string | null; body: string | null }

/** Answers like the server after `delayMs` (aborted with the request); records every request. */
function recordingFetch(delayMs = 0, cancelResults: unknown[] = []): { fetch: typeof fetch; sent: Sent[] } {
  const sent: Sent[] = [];
  const fetchImpl: typeof fetch = (input, init) => {
    const url = new URL(typeof input === 'string' ? input : input instanceof URL ? input.href : input.url);
    const headers = new Headers(init?.headers);
    const path = url.pathname.split('/').pop() ?? '';
    sent.push({ path, callIds: headers.get('x-call-ids'), body: typeof init?.body === 'string' ? init.body : null });
    const batch = url.searchParams.get('batch') === '1';
    const n = batch ? path.split(',').length : 1;
    const result = path.startsWith('calls.cancel') ? { results: cancelResults } : user;
    const body = batch ? Array.from({ length: n }, () => ({ result: { data: result } })) : { result: { data: result } };
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => { resolve(new Response(JSON.stringify(body), { headers: { 'content-type': 'application/json' } })); }, delayMs);
      init?.signal?.addEventListener('abort', () => { clearTimeout(timer); reject(new DOMException('aborted', 'AbortError')); });
    });
  };
  return { fetch: fetchImpl, sent };
}

/** A WebSocket that never opens (a host that does not answer): counts how many were made. */
class NeverOpens {
  static CONNECTING = 0;
  static OPEN = 1;
  static CLOSING = 2;
  static CLOSED = 3;
  static made = 0;
  readyState = 0;
  binaryType = 'blob';
  readonly #listeners = new Map<string, Set<(event: unknown) => void>>();
  constructor(readonly url: string) { NeverOpens.made++; }
  addEventListener(type: string, listener: (event: unknown) => void): void {
    const set = this.#listeners.get(type) ?? new Set();
    set.add(listener);
    this.#listeners.set(type, set);
  }
  removeEventListener(type: string, listener: (event: unknown) => void): void { this.#listeners.get(type)?.delete(listener); }
  send(): void { throw new Error('not open'); }
  /** Like `ws` closing a socket still connecting: an error, then a close (1006). */
  close(): void {
    if (this.readyState === 3) return;
    this.readyState = 3;
    for (const l of this.#listeners.get('error') ?? []) l({ type: 'error', target: this, message: 'closed before the connection was established' });
    for (const l of this.#listeners.get('close') ?? []) l({ type: 'close', target: this, code: 1006, reason: '', wasClean: false });
  }
}

const failure = (p: Promise<unknown>) => p.then(() => { throw new Error('expected the call to fail'); }, (e: unknown) => e as TRPCClientError<never>);
const tick = (ms = 20) => new Promise((r) => setTimeout(r, ms));

describe('context.callId is checked in the first link', () => {
  it.each(['http', 'http-batch', 'websocket'] as const)('over %s: an invalid id fails at once with BAD_REQUEST naming the rule, nothing sent', async (transport: ApiTransport) => {
    const { fetch, sent } = recordingFetch();
    const api = createApiClient({ url: 'http://test.invalid/trpc', token: 't', transport, fetch, WebSocket: NeverOpens });
    for (const bad of ['a,b', 'has space', '', 'x'.repeat(129)]) {
      const error = await failure(api.users.byId.query({ id: 1 }, { context: { callId: bad } }));
      expect(error).toBeInstanceOf(TRPCClientError);
      expect(apiErrorCode(error)).toBe('BAD_REQUEST');
      expect(error.message).toMatch(/1 to 128 letters, digits or _ \. : ~ # -/);
      expect(isRetryableCallError(error)).toBe(false);
    }
    expect(sent).toEqual([]);
    await closeApiClient(api);
  });

  it('a valid id next to it in the same tick still goes out under its own name', async () => {
    const { fetch, sent } = recordingFetch();
    const api = createApiClient({ url: 'http://test.invalid/trpc', token: 't', transport: 'http-batch', fetch });
    const [bad, good] = await Promise.allSettled([api.users.byId.query({ id: 1 }, { context: { callId: 'x,y' } }), api.users.byId.query({ id: 1 }, { context: { callId: 'good-1' } })]);
    expect(bad.status).toBe('rejected');
    expect(good.status).toBe('fulfilled');
    expect(sent.map((s) => s.callIds)).toEqual(['good-1']);
  });
});

describe('calls.cancel only for calls that were sent (http-batch)', () => {
  it('a call aborted before its batch left sends no cancel; its id can be reused at once', async () => {
    const { fetch, sent } = recordingFetch(30);
    const api = createApiClient({ url: 'http://test.invalid/trpc', token: 't', transport: 'http-batch', fetch });
    const controller = new AbortController();
    const aborted = failure(api.users.byId.query({ id: 1 }, { signal: controller.signal, context: { callId: 'reused' } }));
    controller.abort();
    expect((await aborted).cause).toMatchObject({ name: 'AbortError' });
    // Same tick as the dispatch: tRPC puts both in one batch; the dropped one goes under a throwaway id.
    expect(await api.users.byId.query({ id: 1 }, { context: { callId: 'reused' } })).toEqual(user);
    await tick(60);
    const batches = sent.filter((s) => !s.path.startsWith('calls.cancel'));
    expect(batches.flatMap((s) => s.callIds?.split(',') ?? []).filter((id) => id === 'reused')).toHaveLength(1);
    // Only the throwaway id (sent, and never reused) is cancelled; never 'reused'.
    const cancelled = sent.filter((s) => s.path.startsWith('calls.cancel')).map((s) => s.body ?? '');
    expect(cancelled.join()).not.toContain('"reused"');
  });

  it('a call aborted alone before it was sent: nothing at all goes out', async () => {
    const { fetch, sent } = recordingFetch(30);
    const api = createApiClient({ url: 'http://test.invalid/trpc', token: 't', transport: 'http-batch', fetch });
    const controller = new AbortController();
    const aborted = failure(api.users.byId.query({ id: 1 }, { signal: controller.signal, context: { callId: 'alone' } }));
    controller.abort();
    await aborted;
    await tick(60);
    expect(sent.filter((s) => s.path.startsWith('calls.cancel'))).toEqual([]);
  });

  it('the server\'s answer to that cancel goes to onCancelOutcome (an instance that is gone included)', async () => {
    const { fetch } = recordingFetch(200, [{ callId: 'on-gone', status: 'instance-gone' }]);
    const outcomes: unknown[] = [];
    const api = createApiClient({ url: 'http://test.invalid/trpc', token: 't', transport: 'http-batch', fetch, onCancelOutcome: (o) => { outcomes.push(...o); } });
    const controller = new AbortController();
    const aborted = failure(api.users.byId.query({ id: 1 }, { signal: controller.signal, context: { callId: 'on-gone' } }));
    await tick();
    controller.abort();
    await aborted;
    // The cancel's own answer takes the fake server's 200 ms too.
    await vi.waitFor(() => { expect(outcomes).toEqual([{ callId: 'on-gone', status: 'instance-gone' }]); }, { timeout: 2000 });
  });

  it('a call aborted after its batch left is cancelled by its id', async () => {
    const { fetch, sent } = recordingFetch(200);
    const api = createApiClient({ url: 'http://test.invalid/trpc', token: 't', transport: 'http-batch', fetch });
    const controller = new AbortController();
    const aborted = failure(api.users.byId.query({ id: 1 }, { signal: controller.signal, context: { callId: 'went-out' } }));
    await tick();
    controller.abort();
    await aborted;
    await tick();
    const cancels = sent.filter((s) => s.path.startsWith('calls.cancel'));
    expect(cancels).toHaveLength(1);
    expect(cancels[0]?.body).toContain('"went-out"');
  });
});

describe('the WebSocket encoder reports each call it writes', () => {
  it('calls onSent with the call id, once per encoding', () => {
    const sent: string[] = [];
    const encoder = callMetaEncoder(new Map([[1, { callId: 'row-7' }]]), Date.now, (id) => { sent.push(id); });
    encoder.encode([{ id: 1, method: 'query', params: { path: 'x' } }, { id: 2, method: 'query', params: { path: 'y' } }]);
    encoder.encode({ method: 'connectionParams', data: { token: 't' } });
    expect(sent).toEqual(['row-7']);
  });
});

describe('closeApiClient', () => {
  it.each(['http', 'http-batch'] as const)('over %s: a call in flight fails at once (ClientClosedError, not retryable), later calls fail without a request', async (transport) => {
    const { fetch, sent } = recordingFetch(10_000);
    const api = createApiClient({ url: 'http://test.invalid/trpc', token: 't', transport, fetch });
    const inFlight = failure(api.users.byId.query({ id: 1 }, { signal: new AbortController().signal, context: { callId: 'in-flight' } }));
    await tick();
    const closedAt = performance.now();
    await closeApiClient(api);
    const error = await inFlight;
    expect(performance.now() - closedAt).toBeLessThan(100);
    expect(error.cause).toMatchObject({ name: 'ClientClosedError' });
    expect(apiErrorCode(error)).toBe('CLIENT_CLOSED_REQUEST');
    expect(isRetryableCallError(error)).toBe(false);
    const before = sent.length;
    const later = await failure(api.users.byId.query({ id: 1 }));
    expect(later.cause).toMatchObject({ name: 'ClientClosedError' });
    await tick();
    expect(sent.length).toBe(before); // no calls.cancel, no new request
  });

  it('over websocket: a call waiting for the socket fails at once, and a later call opens no socket', async () => {
    NeverOpens.made = 0;
    const api = createApiClient({ url: 'http://test.invalid/trpc', token: 't', transport: 'websocket', WebSocket: NeverOpens });
    const waiting = failure(api.users.byId.query({ id: 1 }));
    await tick();
    const made = NeverOpens.made;
    await closeApiClient(api);
    expect((await waiting).cause).toMatchObject({ name: 'ClientClosedError' });
    expect((await failure(api.users.byId.query({ id: 1 }))).cause).toMatchObject({ name: 'ClientClosedError' });
    await tick(300);
    expect(NeverOpens.made).toBe(made);
  });

  it('a closed CancelBatcher sends nothing, even what was queued', async () => {
    const sent: string[][] = [];
    const batcher = new CancelBatcher();
    batcher.connect((ids) => { sent.push(ids); return Promise.resolve(); });
    batcher.add('queued');
    batcher.close();
    batcher.add('after');
    await tick();
    expect(sent).toEqual([]);
  });
});

describe('a WebSocket call with deadlineAt while the socket is down', () => {
  it('fails with TIMEOUT at its deadline (nothing was sent, so no cancel)', async () => {
    const api = createApiClient({ url: 'http://test.invalid/trpc', token: 't', transport: 'websocket', WebSocket: NeverOpens });
    const started = performance.now();
    const error = await failure(api.users.byId.query({ id: 1 }, { context: { deadlineAt: Date.now() + 150 } }));
    expect(apiErrorCode(error)).toBe('TIMEOUT');
    expect(performance.now() - started).toBeLessThan(400);
    await closeApiClient(api);
  });
});

describe('isRetryableCallError after a socket closure', () => {
  const lost = (code: number) => new TRPCClientError<never>('closed', { cause: new ConnectionLostError(code) });
  it('does not retry auth (4401, 4408), bad data or policy (1007, 1008), too big (1009)', () => {
    for (const code of [4401, 4408, 1007, 1008, 1009]) expect(isRetryableCallError(lost(code)), String(code)).toBe(false);
  });
  it('retries going away, a drop, a slow reader, too many sockets, an unknown code', () => {
    for (const code of [1001, 1006, 4413, 4429, 1011]) expect(isRetryableCallError(lost(code)), String(code)).toBe(true);
    expect(isRetryableCallError(new TRPCClientError<never>('closed', { cause: new ConnectionLostError() }))).toBe(true);
  });
  it('reads the code from a CloseEvent anywhere in the cause chain', () => {
    const closeEvent = { type: 'close', code: 4401, reason: 'unauthorized', wasClean: true };
    const trpcClosed = Object.assign(new Error('WebSocket closed', { cause: closeEvent }), { name: 'TRPCWebSocketClosedError' });
    expect(closeCodeOf(trpcClosed)).toBe(4401);
    expect(isRetryableCallError(new TRPCClientError<never>('closed', { cause: trpcClosed }))).toBe(false);
    expect(closeCodeOf(new ConnectionLostError(undefined, { cause: closeEvent }))).toBe(4401);
  });
});

describe('budgetMs', () => {
  it('is what is left, rounded, at least 1 ms', () => {
    expect(budgetMs(1500, 1000)).toBe(500);
    expect(budgetMs(1000.6, 1000)).toBe(1);
    expect(budgetMs(900, 1000)).toBe(1);
  });
});

describe('the deadline watch with sentGraceMs (WebSocket)', () => {
  /** A transport that never answers; marks the call sent when `sendIt`. */
  const silent = (batcher: CancelBatcher, sendIt: boolean): TRPCLink<AppRouter> => () => ({ op }) =>
    observable(() => {
      if (sendIt) batcher.markSent((op.context as { callId: string }).callId);
      return () => undefined;
    });
  const setup = (sendIt: boolean) => {
    const cancelled: string[][] = [];
    const batcher = new CancelBatcher();
    batcher.connect((ids) => { cancelled.push(ids); return Promise.resolve(); });
    const api = createTRPCClient<AppRouter>({ links: [cancelByIdLink(batcher, { watchDeadlines: true, sentGraceMs: 200 }), silent(batcher, sendIt)] });
    return { api, cancelled };
  };
  it('a call never sent ends at its deadline, with no cancel', async () => {
    const { api, cancelled } = setup(false);
    const started = performance.now();
    const error = await failure(api.users.byId.query({ id: 1 }, { context: { callId: 'w-unsent', deadlineAt: Date.now() + 100 } }));
    expect(apiErrorCode(error)).toBe('TIMEOUT');
    expect(performance.now() - started).toBeLessThan(250);
    await tick();
    expect(cancelled).toEqual([]);
  });
  it("a sent call waits the grace for the server's TIMEOUT, then ends and is cancelled by id", async () => {
    const { api, cancelled } = setup(true);
    const started = performance.now();
    const error = await failure(api.users.byId.query({ id: 1 }, { context: { callId: 'w-sent', deadlineAt: Date.now() + 100 } }));
    expect(apiErrorCode(error)).toBe('TIMEOUT');
    expect(performance.now() - started).toBeGreaterThanOrEqual(290);
    await tick();
    expect(cancelled).toEqual([['w-sent']]);
  });
});
