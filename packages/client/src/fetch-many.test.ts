import { TimeoutError } from '@asyncscope/concurrency';
import { TRPCClientError } from '@trpc/client';
import { describe, expect, it } from 'vitest';
import { apiErrorCode, isApiError } from './errors';
import { fetchMany, type FetchCall } from './fetch-many';
import { createApiClient, MISSING_EVENT_SOURCE } from './links';

/** A fetch that answers every call with `body` (tRPC's JSON for one call over httpLink). */
const answering = (status: number, body: unknown): typeof fetch => () => Promise.resolve(new Response(JSON.stringify(body), { status, headers: { 'content-type': 'application/json' } }));
const badRequest = {
  error: {
    message: 'Invalid input: email: Invalid email address',
    code: -32600,
    data: { code: 'BAD_REQUEST', httpStatus: 400, path: 'users.create', fieldErrors: { email: ['Invalid email address'] }, formErrors: [] },
  },
};

/** A fetchOne whose calls wait for their signal or `ms`, recording how many run at once. */
function slowCalls(ms: (id: number) => number) {
  const state = { running: 0, maxRunning: 0, started: [] as number[], aborted: [] as number[], settled: 0 };
  const fetchOne = (id: number, { signal }: FetchCall) =>
    new Promise<number>((resolve, reject) => {
      state.started.push(id);
      state.maxRunning = Math.max(state.maxRunning, ++state.running);
      const done = (): void => { state.running--; state.settled++; signal.removeEventListener('abort', onAbort); };
      const timer = setTimeout(() => { done(); resolve(id * 10); }, ms(id));
      const onAbort = (): void => { clearTimeout(timer); done(); state.aborted.push(id); reject(signal.reason as Error); };
      signal.addEventListener('abort', onAbort, { once: true });
    });
  return { state, fetchOne };
}

describe('isApiError', () => {
  it('types the server error: code and field errors without casts', async () => {
    const api = createApiClient({ url: 'http://127.0.0.1:1/trpc', token: 't', fetch: answering(400, badRequest) });
    const error: unknown = await api.users.create.mutate({ name: 'A', email: 'nope' }, { signal: new AbortController().signal }).catch((e: unknown) => e);
    expect(isApiError(error)).toBe(true);
    if (!isApiError(error)) return;
    expect(error.data?.code).toBe('BAD_REQUEST');
    expect(error.data?.httpStatus).toBe(400);
    expect(error.data?.fieldErrors).toEqual({ email: ['Invalid email address'] });
    expect(apiErrorCode(error)).toBe('BAD_REQUEST');
  });

  it('is false for what is not a tRPC error, and a network failure has no code', () => {
    expect(isApiError(new Error('x'))).toBe(false);
    expect(isApiError(undefined)).toBe(false);
    expect(isApiError(new TimeoutError(5))).toBe(false);
    expect(apiErrorCode(new TRPCClientError('fetch failed', { cause: new TypeError('fetch failed') }))).toBeUndefined();
  });
});

describe('fetchMany', () => {
  it('settles every item in input order, with bounded concurrency and progress', async () => {
    const { state, fetchOne } = slowCalls((id) => (id % 3) * 5);
    const ids = Array.from({ length: 20 }, (_, i) => i + 1);
    const progress: number[] = [];
    const outcomes = await fetchMany(ids, { concurrency: 4, onProgress: (p) => { progress.push(p.done); } }, (id, call) =>
      id === 7 ? Promise.reject(new Error('seven')) : fetchOne(id, call),
    );
    expect(outcomes.map((o) => o.id)).toEqual(ids);
    expect(outcomes[6]).toMatchObject({ id: 7, status: 'rejected' });
    expect(outcomes.flatMap((o) => (o.status === 'fulfilled' ? [o.value] : []))).toEqual(ids.filter((id) => id !== 7).map((id) => id * 10));
    expect(state.maxRunning).toBe(4);
    expect(progress).toEqual(ids.map((_, i) => i + 1));
  });

  it('names each call and passes its deadline to the server', async () => {
    const contexts: FetchCall['context'][] = [];
    await fetchMany([1, 2], { callIdPrefix: 'run', timeoutMs: 1000 }, (id, { context }) => { contexts.push(context); return Promise.resolve(id); });
    expect(contexts.map((c) => c.callId)).toEqual(['run-0', 'run-1']);
    for (const c of contexts) expect(c.deadlineAt).toBeGreaterThan(Date.now());
  });

  it('gives each item its deadline and retries only retryable failures', async () => {
    const attempts = new Map<number, number>();
    const unavailable = () => Object.assign(new TRPCClientError<never>('shed'), { data: { code: 'SERVICE_UNAVAILABLE' } });
    const outcomes = await fetchMany([1, 2, 3], { retries: 2, minDelayMs: 1, maxDelayMs: 2, timeoutMs: 100 }, (id, { signal }) => {
      const n = (attempts.get(id) ?? 0) + 1;
      attempts.set(id, n);
      if (id === 1) return n < 3 ? Promise.reject(unavailable()) : Promise.resolve('ok'); // recovers on the last retry
      if (id === 2) return Promise.reject(new Error('not retryable'));
      return new Promise((_, reject) => { signal.addEventListener('abort', () => { reject(signal.reason as Error); }, { once: true }); }); // hangs
    });
    expect(outcomes[0]).toEqual({ id: 1, status: 'fulfilled', value: 'ok' });
    expect(attempts.get(1)).toBe(3);
    expect(attempts.get(2)).toBe(1);
    expect(outcomes[2]).toMatchObject({ id: 3, status: 'rejected' });
    expect((outcomes[2] as { reason: unknown }).reason).toBeInstanceOf(TimeoutError);
  });

  it('on abort, stops every call in flight, starts no more, and rejects only once they have all settled', async () => {
    const { state, fetchOne } = slowCalls(() => 10_000);
    const controller = new AbortController();
    const run = fetchMany(Array.from({ length: 10 }, (_, i) => i), { concurrency: 3, signal: controller.signal }, fetchOne);
    await new Promise((r) => setTimeout(r, 20));
    controller.abort(new Error('stop'));
    await expect(run).rejects.toThrow('stop');
    expect(state.started).toEqual([0, 1, 2]);
    expect(state.aborted.sort()).toEqual([0, 1, 2]);
    expect(state.running).toBe(0); // nothing left running behind the rejection
  });

  it('failFast: the first failure cancels the rest and is what it rejects with', async () => {
    const { state, fetchOne } = slowCalls(() => 10_000);
    const run = fetchMany([0, 1, 2, 3], { concurrency: 2, failFast: true }, (id, call) => (id === 1 ? new Promise<number>((_, reject) => setTimeout(() => { reject(new Error('one failed')); }, 10)) : fetchOne(id, call)));
    await expect(run).rejects.toThrow('one failed');
    expect(state.started).toEqual([0]);
    expect(state.running).toBe(0);
  });

  it('leaves no listener on the caller’s signal', async () => {
    const controller = new AbortController();
    let listeners = 0;
    const add = controller.signal.addEventListener.bind(controller.signal);
    const remove = controller.signal.removeEventListener.bind(controller.signal);
    controller.signal.addEventListener = ((...args: Parameters<typeof add>) => { listeners++; add(...args); }) as typeof add;
    controller.signal.removeEventListener = ((...args: Parameters<typeof remove>) => { listeners--; remove(...args); }) as typeof remove;
    await fetchMany([1, 2, 3, 4], { concurrency: 2, signal: controller.signal, timeoutMs: 1000 }, (id) => Promise.resolve(id));
    expect(listeners).toBe(0);
  });

  it('rejects at once for a signal already aborted, and for a bad concurrency', async () => {
    await expect(fetchMany([1], { signal: AbortSignal.abort(new Error('already')) }, () => Promise.resolve(1))).rejects.toThrow('already');
    await expect(fetchMany([1], { concurrency: 0 }, () => Promise.resolve(1))).rejects.toThrow(RangeError);
    expect(await fetchMany([], {}, () => Promise.resolve(1))).toEqual([]);
  });
});

describe('subscriptions without an EventSource (Node 20 and 22 have no global one)', () => {
  it('throw at subscribe(), naming what to pass — never fail silently', async () => {
    expect((globalThis as { EventSource?: unknown }).EventSource).toBeUndefined();
    const page = { items: [], total: 0 };
    const api = createApiClient({ url: 'http://127.0.0.1:1/trpc', token: 't', fetch: answering(200, { result: { data: page } }) });
    expect(() => api.users.stream.subscribe(undefined, {})).toThrow(MISSING_EVENT_SOURCE);
    expect(MISSING_EVENT_SOURCE).toMatch(/createApiClient\(\{ …, EventSource \}\)/);
    // Calls still work without one.
    await expect(api.users.list.query(undefined, { signal: new AbortController().signal })).resolves.toEqual(page);
  });
});
