/**
 * One long-lived signal passed to many calls must not collect a listener per call. tRPC 11.22's httpLink
 * and httpBatchLink never remove the listener they add to the op's signal (`raceAbortSignals` in
 * @trpc/client's internals/signals.ts); callSignalLink gives each call its own. The first test fences
 * tRPC's behaviour: when it stops leaking, it fails, and the link may go.
 */
import { getEventListeners, setMaxListeners } from 'node:events';
import type { AppRouter } from '@asyncscope/api';
import { createTRPCClient, httpLink } from '@trpc/client';
import { describe, expect, it } from 'vitest';
import { createApiClient } from './links';

const user = { id: 1, name: 'Ada', email: 'ada@example.com', createdAt: '2026-01-01T00:00:00.000Z', updatedAt: '2026-01-01T00:00:00.000Z' };

/** Answers like the server: one result, or a batch of them (tRPC's wire format; no database involved). */
const fakeFetch: typeof fetch = (input) => {
  const url = new URL(typeof input === 'string' ? input : input instanceof URL ? input.href : input.url);
  const batch = url.searchParams.get('batch') === '1';
  const n = batch ? url.pathname.split('/').pop()?.split(',').length ?? 1 : 1;
  const body = batch ? Array.from({ length: n }, () => ({ result: { data: user } })) : { result: { data: user } };
  return Promise.resolve(new Response(JSON.stringify(body), { headers: { 'content-type': 'application/json' } }));
};

/** Never answers; fails with an AbortError when its request's signal fires. */
const hangingFetch: typeof fetch = (_input, init) =>
  new Promise((_, reject) => {
    const fail = (): void => { reject(new DOMException('aborted', 'AbortError')); };
    if (init?.signal?.aborted) fail();
    else init?.signal?.addEventListener('abort', fail);
  });

const CALLS = 200;

describe('a shared AbortSignal over many calls', () => {
  it("tRPC's httpLink alone leaves one listener per call on it (the upstream behaviour we guard against)", async () => {
    const shared = new AbortController().signal;
    setMaxListeners(CALLS + 1, shared); // the listeners pile up on purpose here: no leak warning in the test output
    const api = createTRPCClient<AppRouter>({ links: [httpLink({ url: 'http://test.invalid/trpc', fetch: fakeFetch })] });
    for (let i = 0; i < CALLS; i++) await api.users.byId.query({ id: 1 }, { signal: shared });
    expect(getEventListeners(shared, 'abort').length).toBe(CALLS);
  });

  it.each(['http', 'http-batch'] as const)('createApiClient over %s leaves none', async (transport) => {
    const shared = new AbortController().signal;
    const api = createApiClient({ url: 'http://test.invalid/trpc', token: 't', transport, fetch: fakeFetch });
    for (let i = 0; i < CALLS; i++) expect(await api.users.byId.query({ id: 1 }, { signal: shared, context: { callId: `c-${i}` } })).toEqual(user);
    await Promise.all(Array.from({ length: CALLS }, (_, i) => api.users.byId.query({ id: 1 }, { signal: shared, context: { callId: `p-${i}` } })));
    expect(getEventListeners(shared, 'abort').length).toBe(0);
  });

  it('still aborts the call when the shared signal fires', async () => {
    const controller = new AbortController();
    const api = createApiClient({ url: 'http://test.invalid/trpc', token: 't', fetch: hangingFetch });
    const call = api.users.byId.query({ id: 1 }, { signal: controller.signal });
    controller.abort();
    await expect(call).rejects.toThrow(/abort/i);
    expect(getEventListeners(controller.signal, 'abort').length).toBe(0);
  });

  it('12 calls in flight under one signal: one listener on it, no MaxListenersExceededWarning, all aborted at once', async () => {
    const warnings: Error[] = [];
    const onWarning = (warning: Error): void => { warnings.push(warning); };
    process.on('warning', onWarning);
    try {
      const controller = new AbortController();
      const api = createApiClient({ url: 'http://test.invalid/trpc', token: 't', fetch: hangingFetch });
      const calls = Array.from({ length: 12 }, (_, i) =>
        api.users.byId.query({ id: 1 }, { signal: controller.signal, context: { callId: `w-${i}` } }).then(() => 'answered', (e: unknown) => e));
      await new Promise((r) => setTimeout(r, 20));
      // Unfixed: 12 listeners, and Node warns at the 11th.
      expect(getEventListeners(controller.signal, 'abort').length).toBe(1);
      controller.abort();
      const outcomes = await Promise.all(calls);
      expect(outcomes.every((o) => o instanceof Error && /abort/i.test(o.message))).toBe(true);
      expect(getEventListeners(controller.signal, 'abort').length).toBe(0);
      await new Promise((r) => setImmediate(r)); // warnings are emitted on the next tick
      expect(warnings.filter((w) => w.name === 'MaxListenersExceededWarning')).toEqual([]);
    } finally {
      process.off('warning', onWarning);
    }
  });

  it('the listener goes with the last of the calls sharing the signal, and a later call adds it again', async () => {
    const shared = new AbortController().signal;
    const api = createApiClient({ url: 'http://test.invalid/trpc', token: 't', fetch: fakeFetch });
    await Promise.all(Array.from({ length: 12 }, (_, i) => api.users.byId.query({ id: 1 }, { signal: shared, context: { callId: `a-${i}` } })));
    expect(getEventListeners(shared, 'abort').length).toBe(0);
    const later = api.users.byId.query({ id: 1 }, { signal: shared });
    expect(getEventListeners(shared, 'abort').length).toBe(1);
    expect(await later).toEqual(user);
    expect(getEventListeners(shared, 'abort').length).toBe(0);
  });
});
