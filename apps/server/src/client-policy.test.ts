import { apiErrorCode, callWithPolicy, createApiClient } from '@asyncscope/client';
import { TimeoutError } from '@asyncscope/concurrency';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { startTestServer, TEST_TOKEN, type TestServer } from './test-server';

let t: TestServer;
beforeAll(async () => { t = await startTestServer(); });
afterAll(async () => { await t.close(); });
beforeEach(() => { t.server.runtime.faults.clear(); });

const api = () => createApiClient({ url: `${t.url}/trpc`, token: TEST_TOKEN });
const callIds = (prefix: string) =>
  [...new Set(t.server.runtime.activity.read(0, 100_000).events.filter((e) => e.callId.startsWith(prefix) && e.type === 'received').map((e) => e.callId))];

describe('callWithPolicy against the real server', () => {
  it('retries a retryable failure with backoff, naming each attempt, and succeeds', async () => {
    t.server.runtime.faults.set('users.list', { latencyMs: 0, errorRate: 1 });
    const client = api();
    const retries: number[] = [];
    const page = await callWithPolicy(({ signal, context }) => client.users.list.query(undefined, { signal, context }), {
      callId: 'retry-1',
      retries: 3,
      minDelayMs: 10,
      onRetry: (info) => {
        retries.push(info.attempt);
        if (info.attempt === 1) t.server.runtime.faults.clear(); // the fault goes away after two failures
      },
    });
    expect(page.total).toBe(0);
    expect(retries).toEqual([0, 1]);
    expect(callIds('retry-1')).toEqual(['retry-1', 'retry-1~1', 'retry-1~2']);
  });

  it('does not retry what is not retryable', async () => {
    const client = api();
    let attempts = 0;
    const error: unknown = await callWithPolicy(
      ({ signal, context }) => {
        attempts++;
        return client.users.byId.query({ id: 999_999 }, { signal, context });
      },
      { callId: 'no-retry-1', retries: 3, minDelayMs: 1 },
    ).catch((e: unknown) => e);
    expect(apiErrorCode(error)).toBe('NOT_FOUND');
    expect(attempts).toBe(1);
  });

  it('bounds the whole call, retries included, by its timeout — and the server stops too', async () => {
    // 300 ms per failing attempt against a 500 ms budget: the second attempt is always running when the
    // budget ends (with 200 ms, load could push the deadline between attempts and leave nothing to stop).
    t.server.runtime.faults.set('users.list', { latencyMs: 300, errorRate: 1 });
    const client = api();
    const started = performance.now();
    const error: unknown = await callWithPolicy(({ signal, context }) => client.users.list.query(undefined, { signal, context }), {
      callId: 'deadline-1',
      timeoutMs: 500,
      retries: 10,
      minDelayMs: 10,
    }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(TimeoutError);
    expect(performance.now() - started).toBeLessThan(900);
    // The last attempt was told the remaining budget and stopped inside Postgres.
    const ids = callIds('deadline-1');
    expect(ids.length).toBeGreaterThanOrEqual(2);
    const last = ids.at(-1) ?? '';
    const settled = await new Promise((resolve) => {
      const check = () => {
        const event = t.server.runtime.activity.read(0, 100_000).events.find((e) => e.callId === last && e.type === 'settled');
        if (event) resolve(event);
        else setTimeout(check, 10);
      };
      check();
    });
    expect(settled).toMatchObject({ type: 'settled' });
    expect(['TIMEOUT', 'CLIENT_CLOSED_REQUEST']).toContain((settled as { code: string }).code);
  });
});
