/**
 * Cancel by call id over plain HTTP, as any client (curl, the official tRPC links) would do it: the calls of a
 * batched request are named by x-call-ids, and `calls.cancel` — another request, on another connection —
 * stops one of them inside Postgres while its batch siblings finish. Against the real server and PostgreSQL.
 */
import type { ActivityEvent } from '@asyncscope/api';
import postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { until } from '@asyncscope/concurrency/testing';
import { startTestServer, TEST_TOKEN, type TestServer } from './test-server';

const OTHER_TOKEN = 'other-token-0123456789abcdef';

let t: TestServer;
let observer: postgres.Sql;
beforeAll(async () => {
  t = await startTestServer({ poolMax: 4, extraApiTokens: [OTHER_TOKEN] });
  observer = postgres(t.database.url, { max: 1, onnotice: () => undefined });
});
afterAll(async () => {
  await observer.end();
  await t.close();
});

const eventsOf = (callId: string): ActivityEvent[] => t.server.runtime.activity.read(0, 100_000).events.filter((e) => e.callId === callId);
const activePids = async () =>
  (await observer<{ pid: number }[]>`select pid from pg_stat_activity where application_name = 'test-server' and datname = current_database() and state = 'active' and query like '%pg_sleep%'`).map((r) => r.pid);


function cancel(callIds: string[], token = TEST_TOKEN) {
  return fetch(`${t.url}/trpc/calls.cancel`, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: JSON.stringify({ callIds }),
    signal: AbortSignal.timeout(5000),
  }).then(async (res) => ({ status: res.status, body: (await res.json()) as { result?: { data: { results: unknown } } } }));
}

/** A batched GET of lab.sleep calls, as httpBatchLink sends it, each named in x-call-ids. */
function batchOfSleeps(ids: string[], ms: number[], token = TEST_TOKEN) {
  const input = Object.fromEntries(ms.map((m, i) => [String(i), { ms: m }]));
  const paths = ms.map(() => 'lab.sleep').join(',');
  return fetch(`${t.url}/trpc/${paths}?batch=1&input=${encodeURIComponent(JSON.stringify(input))}`, {
    headers: { authorization: `Bearer ${token}`, 'x-call-ids': ids.join(',') },
    signal: AbortSignal.timeout(20_000),
  }).then(async (res) => (await res.json()) as { result?: unknown; error?: { data: { code: string } } }[]);
}

describe('cancel by call id over HTTP', () => {
  it('stops one call of a batch inside Postgres (57014) while its siblings finish', async () => {
    const batch = batchOfSleeps(['b-long', 'b-short'], [15_000, 600]);
    await until('both statements running', async () => (await activePids()).length === 2);
    const pid = eventsOf('b-long').find((e) => e.type === 'statement.started');
    const answer = await cancel(['b-long']);
    expect(answer.status).toBe(200);
    expect(answer.body.result?.data.results).toEqual([{ callId: 'b-long', status: 'cancelled' }]);
    await until('its statement gone', async () => !(await activePids()).includes((pid as { pid: number }).pid), 1000);
    const [long, short] = await batch;
    expect(long?.error?.data.code).toBe('CLIENT_CLOSED_REQUEST');
    expect(short?.result).toMatchObject({ data: { sleptMs: expect.any(Number) as number } });
    expect(eventsOf('b-long').map((e) => e.type)).toEqual(['received', 'started', 'statement.started', 'signal.fired', 'cancel.sent', 'statement.ended', 'settled']);
    expect(eventsOf('b-long').find((e) => e.type === 'signal.fired')).toMatchObject({ reason: 'cancelled' });
    expect(eventsOf('b-long').find((e) => e.type === 'statement.ended')).toMatchObject({ sqlstate: '57014' });
    expect((await cancel(['b-long', 'b-short'])).body.result?.data.results).toEqual([
      { callId: 'b-long', status: 'already-settled' },
      { callId: 'b-short', status: 'already-settled' },
    ]);
  });

  it('ids belong to their caller: another token’s call by the same id is its own, and its cancel reaches only its own', async () => {
    const mine = batchOfSleeps(['same-id'], [1500]);
    await until('my call running', async () => (await activePids()).length === 1);
    // No CONFLICT: the other caller's id space is its own.
    const theirs = batchOfSleeps(['same-id'], [15_000], OTHER_TOKEN);
    await until('both running', async () => (await activePids()).length === 2);
    expect((await cancel(['same-id'], OTHER_TOKEN)).body.result?.data.results).toEqual([{ callId: 'same-id', status: 'cancelled' }]);
    expect((await theirs)[0]?.error?.data.code).toBe('CLIENT_CLOSED_REQUEST');
    // Mine ran to its end, untouched; and a cancel for an id nobody of that caller has is 'unknown'.
    expect((await mine)[0]?.result).toBeDefined();
    expect((await cancel(['nobody-has-this'], OTHER_TOKEN)).body.result?.data.results).toEqual([{ callId: 'nobody-has-this', status: 'unknown' }]);
  });

  it('refuses a second call with an id in flight (CONFLICT); an unknown token cannot cancel at all (401)', async () => {
    const first = batchOfSleeps(['dup'], [600]);
    await until('the call running', async () => (await activePids()).length === 1);
    const [second] = await batchOfSleeps(['dup'], [0]);
    expect(second?.error?.data.code).toBe('CONFLICT');
    expect((await cancel(['dup'], 'not-a-token-at-all-000')).status).toBe(401);
    const [result] = await first;
    expect(result?.result).toBeDefined();
  });
});
