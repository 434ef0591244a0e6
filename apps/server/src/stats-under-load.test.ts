/**
 * The server panel's numbers must arrive while the pool is saturated: activity.stats reads the pool's
 * connections on the health check's own connection, not through the pool its calls are waiting for.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestServer, TEST_TOKEN, type TestServer } from './test-server';

let t: TestServer;
beforeAll(async () => { t = await startTestServer({ poolMax: 2 }); });
afterAll(async () => { await t.close(); });

const auth = { authorization: `Bearer ${TEST_TOKEN}` };
interface Stats { database: { poolConnectionsRead: boolean; poolConnectionsAgeMs: number | null }; pool: { state: string; count: number }[]; statements: { queued: number; running: number } }
const stats = async (): Promise<Stats> =>
  ((await (await fetch(`${t.url}/trpc/activity.stats`, { headers: auth, signal: AbortSignal.timeout(5000) })).json()) as { result: { data: Stats } }).result.data;

describe('activity.stats with every pool connection busy', () => {
  it('reports the pool as it is now (2 active), fast, while calls wait for a connection', async () => {
    const controller = new AbortController();
    const sleeps = Array.from({ length: 5 }, (_, i) =>
      fetch(`${t.url}/trpc/lab.sleep?input=${encodeURIComponent(JSON.stringify({ ms: 5000 }))}`, { headers: { ...auth, 'x-request-id': `busy-${i}` }, signal: controller.signal }).catch(() => undefined));
    try {
      await expect.poll(async () => (await stats()).statements, { timeout: 5000 }).toMatchObject({ running: 2, queued: 3 });
      const started = performance.now();
      const s = await stats();
      expect(performance.now() - started).toBeLessThan(500);
      expect(s.database.poolConnectionsRead).toBe(true);
      expect(s.database.poolConnectionsAgeMs).toBeLessThan(500);
      expect(s.pool.find((p) => p.state === 'active')?.count).toBe(2);
    } finally {
      controller.abort();
      await Promise.all(sleeps);
    }
  });
});
