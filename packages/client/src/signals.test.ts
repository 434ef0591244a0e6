/**
 * One long-lived signal passed to many calls must not collect a listener per call. tRPC 11.22's httpLink
 * and httpBatchLink never remove the listener they add to the op's signal (`raceAbortSignals` in
 * @trpc/client's internals/signals.ts); callSignalLink gives each call its own. The first test fences
 * tRPC's behaviour: when it stops leaking, it fails, and the link may go.
 */
import { getEventListeners } from 'node:events';
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

const CALLS = 200;

describe('a shared AbortSignal over many calls', () => {
  it("tRPC's httpLink alone leaves one listener per call on it (the upstream behaviour we guard against)", async () => {
    const shared = new AbortController().signal;
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
    const hanging: typeof fetch = (_input, init) =>
      new Promise((_, reject) => {
        const fail = (): void => { reject(new DOMException('aborted', 'AbortError')); };
        if (init?.signal?.aborted) fail();
        else init?.signal?.addEventListener('abort', fail);
      });
    const api = createApiClient({ url: 'http://test.invalid/trpc', token: 't', fetch: hanging });
    const call = api.users.byId.query({ id: 1 }, { signal: controller.signal });
    controller.abort();
    await expect(call).rejects.toThrow(/abort/i);
    expect(getEventListeners(controller.signal, 'abort').length).toBe(0);
  });
});
