/**
 * The dashboard over HTTPS (TLS_CERT / TLS_KEY), in Chromium with a certificate made by the test: the page
 * over HTTP/2 and its own traffic over its WebSocket (wss), so the lab's "HTTP/2" calls are multiplexed — 24 of them
 * inside PostgreSQL at once, where HTTP/1.1 holds a page to 6 connections per origin — and
 * "Cancel all" resets their streams: every statement is cancelled and the pool goes idle.
 */
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { browserMissing, makeTestCertificate, screenshot, startDashboard, until, type Dashboard, type ServerProcess, type Session } from './harness';

const TOKEN = 'e2e-http2-token-0123456789';
const APP_NAME = 'dashboard-e2e-h2';
const CALLS = 24;

const missing = browserMissing();
if (missing) console.warn(`[dashboard http2 e2e] SKIPPED: ${missing}`);

describe.skipIf(missing !== null)('the dashboard over HTTPS and HTTP/2 (Chromium, real server)', () => {
  let dash: Dashboard | undefined;
  let server: ServerProcess;
  let page: Page;
  const sleeping = async (): Promise<number> => (dash ? (await dash.sleeping()).length : 0);
  const sessions = (): Promise<Session[]> => (dash ? dash.sessions() : Promise.resolve([]));

  beforeAll(async () => {
    dash = await startDashboard({
      token: TOKEN,
      applicationName: APP_NAME,
      poolMax: CALLS + 6,
      // The browser trusts this test's certificate only (by its public key), as a person would add it to their machine.
      tls: await makeTestCertificate(),
      seed: async (db) => { await db.sql`insert into users (name, email) select 'User ' || i, 'user' || i || '@example.com' from generate_series(1, 50) i`; },
      // The first test opens the page itself (and checks how it was served).
      open: false,
    });
    ({ server, page } = dash);
  }, 90_000);

  afterAll(async () => {
    await dash?.close();
  });

  it('loads the page over h2, its own traffic over the WebSocket (wss), and offers the HTTP/2 choice', async () => {
    expect(server.url.startsWith('https://')).toBe(true);
    const response = await page.goto(`${server.url}/#token=${TOKEN}`);
    expect(response?.status()).toBe(200);
    expect(response?.headers()['content-security-policy']).toContain("default-src 'self'");
    await until('the event stream', async () => (await page.getByTestId('connection').textContent())?.includes('event stream live'), 20_000);
    await until('server stats', async () => (await page.getByTestId('pool-idle').textContent())?.match(/idle \d+/));
    // The page's own traffic rides its WebSocket (wss://, an HTTP/1.1 upgrade beside the h2 connection).
    await until('the page socket open', async () => (await page.getByTestId('connection').getAttribute('data-socket')) === 'open');
    expect(await page.getByTestId('connection').textContent()).toContain('Connected over WebSocket');
    const nav = await page.evaluate(() => (performance.getEntriesByType('navigation')[0] as PerformanceNavigationTiming | undefined)?.nextHopProtocol);
    expect(nav).toBe('h2');
    // The lab sees the page is on h2: the HTTP/2 choice is open, per-call "HTTP/1.1" would be h2 all the same.
    expect(await page.getByTestId('transport-http2').isEnabled()).toBe(true);
    expect(await page.getByTestId('transport-http').isDisabled()).toBe(true);
    await screenshot(page, 'h2-lab-choices');
  });

  it(`${CALLS} lab calls run inside Postgres at once (HTTP/1.1 would allow 6), and Cancel all cancels every statement`, async () => {
    const fields: Record<string, string> = { count: String(CALLS), concurrency: String(CALLS), timeout: '30000', retries: '0', latency: '8000', 'error-rate': '0' };
    for (const [field, value] of Object.entries(fields)) await page.getByTestId(`lab-${field}`).fill(value);
    await page.getByLabel('settled', { exact: true }).check();
    await page.getByTestId('transport-http2').check();
    const launchedAt = Date.now();
    await page.getByTestId('launch').click();

    // Every call reached the server and has its statement inside PostgreSQL, at the same time.
    await until(`${CALLS} statements sleeping in Postgres at once`, async () => (await sleeping()) === CALLS, 15_000);
    expect(Date.now() - launchedAt).toBeLessThan(8000); // not one wave after another
    await screenshot(page, 'h2-24-running');

    await page.getByTestId('cancel-all').click();
    const cancelledAt = Date.now();
    // Each abort reset its own stream; the server fired each call's signal and cancelled its statement.
    await until('no statement left in Postgres', async () => (await sleeping()) === 0, 5000);
    expect(Date.now() - cancelledAt).toBeLessThan(3000);
    await until('the run to finish', async () => (await page.getByTestId('launch').textContent()) === 'Launch', 10_000);
    await until('the pool idle', async () => (await sessions()).every((s) => s.state === 'idle'));
    // The page's session survived the resets: the event stream is still live, and new calls go through.
    expect(await page.getByTestId('connection').textContent()).toContain('event stream live');
    // A short run that completes, so its calls have a protocol to report (aborted fetches report none).
    for (const [field, value] of Object.entries({ count: '4', concurrency: '4', latency: '0' })) await page.getByTestId(`lab-${field}`).fill(value);
    await page.getByTestId('launch').click();
    await until('the short run done', async () => (await page.getByTestId('count-succeeded').locator('.legend-count').textContent()) === '4', 10_000);
    const protocols = await page.evaluate(() => [...new Set((performance.getEntriesByType('resource') as PerformanceResourceTiming[]).filter((e) => e.name.includes('/trpc/') && e.nextHopProtocol !== '').map((e) => e.nextHopProtocol))]);
    expect(protocols).toEqual(['h2']);
  }, 30_000);
});
