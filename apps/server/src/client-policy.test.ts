import { apiErrorCode, callWithPolicy, createApiClient } from '@asyncscope/client';
import { TimeoutError } from '@asyncscope/concurrency';
import { until } from '@asyncscope/concurrency/testing';
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
    // 300 ms per failing attempt against a 500 ms budget: normally the second attempt is running when the
    // budget ends (the first, if load slows it past 500 ms).
    t.server.runtime.faults.set('users.list', { latencyMs: 300, errorRate: 1 });
    const client = api();
    const started = performance.now();
    const deadlineAt = Date.now() + 500;
    const error: unknown = await callWithPolicy(({ signal, context }) => client.users.list.query(undefined, { signal, context }), {
      callId: 'deadline-1',
      timeoutMs: 500,
      retries: 10,
      minDelayMs: 10,
    }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(TimeoutError);
    expect(performance.now() - started).toBeLessThan(900);
    // Every attempt the server saw settles; one still running at the deadline was told the remaining budget
    // and stopped inside the server (TIMEOUT, or CLIENT_CLOSED_REQUEST when the client's abort came first),
    // one that ended before it failed with the injected fault.
    const ids = callIds('deadline-1');
    expect(ids.length).toBeGreaterThanOrEqual(1);
    const settled = await until('every attempt settled', () => {
      const events = t.server.runtime.activity.read(0, 100_000).events.filter((e) => ids.includes(e.callId) && e.type === 'settled');
      return events.length === ids.length ? events : undefined;
    });
    const atDeadline = settled.filter((e) => e.at >= deadlineAt - 20);
    expect(atDeadline.length).toBeGreaterThanOrEqual(1);
    for (const e of atDeadline) expect(['TIMEOUT', 'CLIENT_CLOSED_REQUEST']).toContain((e as { code: string }).code);
  });
});
