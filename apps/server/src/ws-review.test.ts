/**
 * WebSocket transport edge cases found in review, each on a real server and PostgreSQL: a cancel still goes
 * through while the server drains; a stream is not "ended" by a page or an id that merely contains the
 * word; streams count against the per-socket limit; strangers waiting to authenticate are bounded per
 * address. (A stream that resumes under its id, and one stopped by a cancel: packages/api calls.test.ts.)
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { openTestSocket, socketWithRunningCall } from './test/ws-socket';
import { until } from '@asyncscope/concurrency/testing';
import { startTestServer, TEST_TOKEN, type TestServer } from './test-server';



describe('on a server of its own', () => {
  let t: TestServer;
  beforeAll(async () => { t = await startTestServer({ poolMax: 4, wsMaxCallsPerSocket: 5 }); });
  afterAll(async () => { await t.close(); });
  const auth = { authorization: `Bearer ${TEST_TOKEN}` };

  it('a page or a call id containing "error" or "stopped" does not make the server forget a running stream', async () => {
    await t.database.sql`insert into users (name, email) values ('error', 'stopped@example.com')`;
    const s = await openTestSocket(t.url);
    s.call(7, 'subscription', 'activity.events', { replay: false });
    await until('the stream started', () => s.frames.find((f) => f.id === 7 && f.result?.type === 'started'));
    // Frames that contain the words: a call named "error" (its hops go out on stream 7), a user named "error".
    await fetch(`${t.url}/trpc/users.list?input=${encodeURIComponent('{"limit":5}')}`, { headers: { ...auth, 'x-request-id': 'error' } });
    s.call(8, 'query', 'users.list', { limit: 5 }, { callId: 'stopped' });
    await until('the list answered', () => s.frames.find((f) => f.id === 8));
    await until('stream 7 carried them', () => s.frames.some((f) => f.id === 7 && JSON.stringify(f).includes('"callId":"error"')));
    // Stream 7 is still known: a second subscription with its id gets our refusal, not tRPC's "Duplicate id".
    s.call(7, 'subscription', 'activity.events', { replay: false });
    const refusal = await until('the refusal', () => s.frames.find((f) => f.id === 7 && f.error));
    expect(refusal.error?.message).toMatch(/already running on this socket/);
    s.ws.close();
    await t.database.sql`truncate users restart identity`;
  });

  it('streams count against the per-socket limit (WS_MAX_CALLS_PER_SOCKET = 5): the 6th is refused, the socket stays', async () => {
    const s = await openTestSocket(t.url);
    for (let id = 1; id <= 6; id++) s.call(id, 'subscription', 'activity.events', { replay: false });
    const refused = await until('a refusal', () => s.frames.find((f) => f.error));
    expect(refused).toMatchObject({ id: 6, error: { data: { code: 'TOO_MANY_REQUESTS' } } });
    expect(s.frames.filter((f) => f.result?.type === 'started')).toHaveLength(5);
    s.call(20, 'query', 'activity.stats', undefined);
    await until('the socket still answers', () => s.frames.find((f) => f.id === 20 && f.result));
    s.ws.close();
  });

  it('bounds the sockets one address may have waiting to authenticate (32): the 33rd upgrade is refused with 429', async () => {
    const strangers = await Promise.all(Array.from({ length: 32 }, () => openTestSocket(t.url, null)));
    const refused = await new Promise<number>((resolve) => {
      const ws = new WebSocket(`${t.url.replace('http:', 'ws:')}/trpc?connectionParams=1`);
      ws.on('unexpected-response', (_req, res) => { resolve(res.statusCode ?? 0); });
      ws.on('open', () => { resolve(101); ws.close(); });
      ws.on('error', () => undefined);
    });
    expect(refused).toBe(429);
    // One that authenticates frees its place.
    strangers[0]?.ws.send(JSON.stringify({ method: 'connectionParams', data: { token: TEST_TOKEN } }));
    await new Promise((r) => setTimeout(r, 100));
    const next = await openTestSocket(t.url);
    next.call(1, 'query', 'activity.stats', undefined);
    await until('served', () => next.frames.find((f) => f.id === 1 && f.result));
    for (const s of [...strangers, next]) s.ws.close();
  });

  it('lets calls.cancel through while the server drains', async () => {
    await using own = await startTestServer({ poolMax: 2, shutdownTimeoutMs: 10_000 });
    const { socket: s, hop: ownHop } = await socketWithRunningCall(own, 'drain-long', 8000);
    const started = performance.now();
    const closing = own.server.close();
    await new Promise((r) => setTimeout(r, 100));
    s.call(2, 'mutation', 'calls.cancel', { callIds: ['drain-long'] });
    await closing;
    expect(s.frames.find((f) => f.id === 2)).toMatchObject({ result: { data: { results: [{ callId: 'drain-long', status: 'cancelled' }] } } });
    expect(ownHop('settled')).toMatchObject({ code: 'CLIENT_CLOSED_REQUEST' });
    expect(performance.now() - started).toBeLessThan(3000); // the cancel ended the drain, not the 10 s deadline
  });
});
