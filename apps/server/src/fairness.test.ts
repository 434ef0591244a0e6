/**
 * Fair admission over real HTTP (issue 7 §5, the greedy batch): a client that queues many slow calls must
 * not starve another client. Clients are told apart by remote address; on Linux all of 127/8 is loopback,
 * so the normal client connects from 127.0.0.2.
 */
import { request } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestServer, TEST_TOKEN, type TestServer } from './test-server';

let t: TestServer;
beforeAll(async () => {
  t = await startTestServer({ maxInFlight: 2, maxQueue: 1000, maxQueuePerClient: 100, poolMax: 4 });
});
afterAll(async () => { await t.close(); });

interface Answer { status: number; text: string }

/** One GET from `localAddress`; aborted by `signal`. */
function get(path: string, localAddress: string, signal: AbortSignal): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const url = new URL(path, t.url);
    const req = request({ host: url.hostname, port: url.port, path: url.pathname + url.search, localAddress, agent: false, signal, headers: { authorization: `Bearer ${TEST_TOKEN}` } }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => { text += chunk; });
      res.on('end', () => { resolve({ status: res.statusCode ?? 0, text }); });
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

const sleepBatch = (calls: number, ms: number) => {
  const paths = Array.from({ length: calls }, () => 'lab.sleep').join(',');
  const input = Object.fromEntries(Array.from({ length: calls }, (_, i) => [i, { ms }]));
  return `/trpc/${paths}?batch=1&input=${encodeURIComponent(JSON.stringify(input))}`;
};

describe('fair admission between clients', () => {
  it('a greedy client’s queued batch calls do not starve a normal client', async () => {
    const greedy = new AbortController();
    // 60 calls of 150 ms on 2 slots: ~4.5 s of work queued by one client (three batches, three connections).
    const batches = [0, 1, 2].map(() => get(sleepBatch(20, 150), '127.0.0.1', greedy.signal).catch(() => undefined));
    try {
      const deadline = performance.now() + 5000;
      while (t.server.runtime.admission.queued < 50 && performance.now() < deadline) await new Promise((r) => setTimeout(r, 10));
      expect(t.server.runtime.admission.queued).toBeGreaterThanOrEqual(50);
      const took: number[] = [];
      for (let i = 0; i < 4; i++) {
        const started = performance.now();
        // In FIFO order this call would wait for the ~58 calls ahead of it: ~4 s.
        const answer = await get('/trpc/users.list', '127.0.0.2', AbortSignal.timeout(3000));
        expect(answer.status).toBe(200);
        took.push(performance.now() - started);
      }
      // Fair: each waits for about one greedy call (150 ms) to end; generous bounds for a loaded machine.
      expect(Math.max(...took)).toBeLessThan(1500);
      expect(t.server.runtime.admission.queued).toBeGreaterThan(20); // the greedy client was still queued meanwhile
    } finally {
      greedy.abort();
      await Promise.all(batches);
    }
    const deadline = performance.now() + 5000;
    while (t.server.runtime.admission.inFlight + t.server.runtime.admission.queued > 0 && performance.now() < deadline) {
      await new Promise((r) => setTimeout(r, 10));
    }
    expect(t.server.runtime.admission.queued).toBe(0);
  });

  it('a client beyond its own queue cap gets 429 at once, while another client is still admitted', async () => {
    const greedy = new AbortController();
    // 120 calls: 2 run, 100 wait (the per-client cap), 18 are refused.
    // Long sleeps: nothing finishes (and so nothing leaves the queue) while the test looks; aborted at the end.
    const batches = [0, 1, 2, 3, 4, 5].map(() => get(sleepBatch(20, 5000), '127.0.0.1', greedy.signal).catch(() => undefined));
    try {
      const { admission } = t.server.runtime;
      const deadline = performance.now() + 5000;
      while (admission.queuedFor('127.0.0.1') < 100 && performance.now() < deadline) await new Promise((r) => setTimeout(r, 10));
      expect(admission.queuedFor('127.0.0.1')).toBe(100);
      // One more batch from the same client: every call refused, so the batch is answered at once.
      const started = performance.now();
      const over = await get(sleepBatch(5, 5000), '127.0.0.1', AbortSignal.timeout(3000));
      expect(performance.now() - started).toBeLessThan(1000);
      const codes = (JSON.parse(over.text) as { error?: { data: { code: string } } }[]).map((r) => r.error?.data.code);
      expect(codes).toEqual(Array.from({ length: 5 }, () => 'TOO_MANY_REQUESTS'));
      expect(t.server.runtime.admission.queuedFor('127.0.0.1')).toBeLessThanOrEqual(100);
      // Another client still queues (its own cap is untouched), and is served once a slot frees.
      const normal = get('/trpc/users.list', '127.0.0.2', AbortSignal.timeout(5000));
      const queuedBy = performance.now() + 3000;
      while (admission.queuedFor('127.0.0.2') < 1 && performance.now() < queuedBy) await new Promise((r) => setTimeout(r, 10));
      expect(admission.queuedFor('127.0.0.2')).toBe(1);
      greedy.abort(); // the long sleeps stop, slots free up
      expect((await normal).status).toBe(200);
    } finally {
      greedy.abort();
      await Promise.all(batches);
    }
  });
});
