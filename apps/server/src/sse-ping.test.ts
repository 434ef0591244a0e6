/**
 * A quiet SSE stream is kept alive: a proxy in front (HAProxy's `timeout server`, nginx's proxy_read_timeout) cuts a
 * response that sends nothing for its idle timeout, so the server sends tRPC's `ping` event on a stream that has had
 * nothing to say for SSE_PING_INTERVAL_MS. The interval is fixed when the router is built (initTRPC), so this waits
 * the real one (15 s).
 */
import { SSE_PING_INTERVAL_MS } from '@asyncscope/api';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startTestServer, TEST_TOKEN, type TestServer } from './test-server';

let t: TestServer;
beforeAll(async () => { t = await startTestServer(); });
afterAll(async () => { await t.close(); });

it('a quiet activity.events stream gets a ping within the ping interval, and stays open', async () => {
  const ticketRes = await fetch(`${t.url}/trpc/auth.ticket`, { method: 'POST', headers: { authorization: `Bearer ${TEST_TOKEN}`, 'content-type': 'application/json' } });
  const ticket = ((await ticketRes.json()) as { result: { data: { ticket: string } } }).result.data.ticket;
  const controller = new AbortController();
  const deadline = setTimeout(() => { controller.abort(new Error('no ping in time')); }, SSE_PING_INTERVAL_MS + 5_000);
  try {
    const opened = performance.now();
    const res = await fetch(`${t.url}/trpc/activity.events?connectionParams=${encodeURIComponent(JSON.stringify({ ticket }))}`, { headers: { accept: 'text/event-stream' }, signal: controller.signal });
    expect(res.status).toBe(200);
    if (!res.body) throw new Error('no body');
    const decoder = new TextDecoder();
    let text = '';
    let pingAt: number | undefined;
    // No calls are made: after tRPC's `connected` event the stream has nothing to send but pings.
    for await (const chunk of res.body) {
      text += decoder.decode(chunk as Uint8Array, { stream: true });
      if (/^event: ping$/m.test(text)) {
        pingAt = performance.now() - opened;
        break;
      }
    }
    expect(pingAt, `no ping; the stream sent: ${text.slice(0, 500)}`).toBeDefined();
    // Not before the interval (the stream was quiet), and soon after it.
    expect(pingAt).toBeGreaterThanOrEqual(SSE_PING_INTERVAL_MS - 100);
    expect(pingAt).toBeLessThan(SSE_PING_INTERVAL_MS + 3_000);
    expect(text).not.toMatch(/^event: (return|serialized-error)$/m);
  } finally {
    clearTimeout(deadline);
    controller.abort();
  }
}, 30_000);
