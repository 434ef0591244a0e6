/**
 * Shed calls are answered at once (issue 7 §5): when admission would refuse a call, the HTTP layer answers
 * 429 before it reads the body or builds anything for the call — no call scope, no activity events.
 */
import { connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestServer, TEST_TOKEN, type TestServer } from './test-server';

let t: TestServer;
beforeAll(async () => { t = await startTestServer({ maxInFlight: 1, maxQueue: 0 }); });
afterAll(async () => { await t.close(); });

const auth = { authorization: `Bearer ${TEST_TOKEN}` };
const events = (callId: string) => t.server.runtime.activity.read(0, 100_000).events.filter((e) => e.callId === callId);

describe('early load shedding', () => {
  it('answers 429 with the procedure’s JSON error, builds no call for it, and never sheds the dashboard’s procedures', async () => {
    const holder = new AbortController();
    const held = fetch(`${t.url}/trpc/lab.sleep?input=${encodeURIComponent('{"ms":30000}')}`, { headers: auth, signal: holder.signal }).catch(() => undefined);
    try {
      const deadline = performance.now() + 5000;
      while (t.server.runtime.admission.inFlight < 1 && performance.now() < deadline) await new Promise((r) => setTimeout(r, 10));
      const shedBefore = t.server.runtime.admission.shed;

      const res = await fetch(`${t.url}/trpc/users.list`, { headers: { ...auth, 'x-request-id': 'shed-1' }, signal: AbortSignal.timeout(2000) });
      expect(res.status).toBe(429);
      expect(await res.json()).toMatchObject({
        error: { message: expect.stringMatching(/at capacity/) as unknown, data: { code: 'TOO_MANY_REQUESTS', httpStatus: 429, path: 'users.list' } },
      });
      expect(events('shed-1')).toEqual([]); // refused before a call scope existed
      expect(t.server.runtime.admission.shed).toBe(shedBefore + 1);

      // A POST whose body never comes is refused at once too (before the body is read), and its connection closed.
      const answer = await new Promise<string>((resolve) => {
        const socket = connect({ host: '127.0.0.1', port: Number(new URL(t.url).port) });
        let text = '';
        const bound = setTimeout(() => { socket.destroy(); }, 3000);
        socket.setEncoding('utf8');
        socket.on('data', (chunk: string) => { text += chunk; });
        socket.on('error', () => undefined);
        socket.on('close', () => { clearTimeout(bound); resolve(text); });
        socket.write(`POST /trpc/users.create HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${TEST_TOKEN}\r\nContent-Type: application/json\r\nContent-Length: 500\r\n\r\n{`);
      });
      expect(answer).toMatch(/^HTTP\/1\.1 429/);
      expect(answer).toMatch(/connection: close/i);

      // Procedures outside admission still answer (the dashboard watches a full server through them).
      const stats = await fetch(`${t.url}/trpc/activity.stats`, { headers: auth, signal: AbortSignal.timeout(2000) });
      expect(stats.status).toBe(200);
      // Strangers get 401, not 429: the token is checked first.
      const stranger = await fetch(`${t.url}/trpc/users.list`, { signal: AbortSignal.timeout(2000) });
      expect(stranger.status).toBe(401);
    } finally {
      holder.abort();
      await held;
    }
  });
});
