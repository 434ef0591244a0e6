/**
 * The dashboard in front of a cluster, all real: 3 built server instances (one PostgreSQL database, one
 * nats-server with JetStream, LAB on, each serving the built dashboard) behind HAProxy running the repository's
 * sample config, and Chromium opening the page THROUGH the balancer. The fetch lab's calls go one HTTP request
 * each (the page's own WebSocket lands on one instance; HAProxy balances every request, leastconn), so they
 * spread over the instances, and the page must still see every call's server hops (through the broker) and
 * which instance served it. Then one instance is SIGKILLed and the server panel must show it gone.
 * Screenshots in test-artifacts/ (e2e-cluster-*.png).
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { until as poll } from '@asyncscope/concurrency/testing';
import { createTestDatabase, type TestDatabase } from '@asyncscope/db/testing';
import { missingBinaries, startHaproxy, startInstances, startNats, type Haproxy, type Instances, type Nats } from '@asyncscope/harness/cluster';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { browserMissing, DIST_DIR, launchBrowser, screenshot, SERVER_DIR, until, type Browser } from './harness';

const WIDTHS = [1024, 1440] as const;
const CALLS = 24;

/** Why it cannot run here (no Chromium, no nats-server or haproxy), or null. */
const missing: string | null = browserMissing() ?? (missingBinaries() || null);
if (missing) console.warn(`[dashboard cluster e2e] SKIPPED: ${missing}`);

/** One row of the lab's table as the page shows it. */
interface RowSeen {
  row: number;
  state: string;
  recv: string;
  /** The backend pid of its statement (the SQL hop). */
  sql: string;
  /** How its statement ended. */
  end: string;
  settled: string;
  instance: string | null;
}

/** Every row the page rendered: its state badge, its received and settled hops, the instance it names. */
function rowsSeen(page: Page): Promise<RowSeen[]> {
  return page.evaluate(() =>
    Array.from(document.querySelectorAll('.tbody [data-testid^="row-"]')).map((r) => ({
      row: Number(r.getAttribute('data-testid')?.slice(4)),
      state: r.querySelector('[data-testid="state"]')?.textContent ?? '',
      recv: r.querySelector('[data-slot="recv"]')?.textContent ?? '',
      sql: r.querySelector('[data-slot="sql"]')?.textContent ?? '',
      end: r.querySelector('[data-slot="end"]')?.textContent ?? '',
      settled: r.querySelector('[data-slot="settled"]')?.textContent ?? '',
      instance: r.querySelector('[data-testid="instance"]')?.getAttribute('data-instance') ?? null,
    })),
  );
}

/** A call that went well, as its row shows it: succeeded, and every server hop there (received, SQL, statement end, settled). */
function expectServed(r: RowSeen): void {
  expect(r).toMatchObject({ state: 'succeeded', recv: '✓', end: 'ok', settled: 'OK' });
  expect(r.sql).toMatch(/^\d+$/);
}

/** The server panel's instances table: each row's full id and state. */
function instancesSeen(page: Page): Promise<{ id: string; state: string }[]> {
  return page.getByTestId('instances').getByTestId('instance').evaluateAll((rows) => rows.map((r) => ({ id: r.getAttribute('data-instance') ?? '', state: r.getAttribute('data-state') ?? '' })));
}

describe.skipIf(missing !== null)('the dashboard through HAProxy in front of 3 instances (Chromium, nats-server, one PostgreSQL)', () => {
  const controller = new AbortController();
  const { signal } = controller;
  const cleanups: (() => Promise<void>)[] = [];
  let db: TestDatabase;
  let nats: Nats;
  let instances: Instances;
  let haproxy: Haproxy;
  let browser: Browser;
  let page: Page;
  /** The instance the page's WebSocket reached (its event stream and server panel come from it). */
  let self: string;
  /** Uncaught errors in the page: none expected, an instance's death included. */
  const pageErrors: string[] = [];

  beforeAll(async () => {
    db = await createTestDatabase(inject('pgAdminUrl'), inject('pgTemplate'), { applicationName: 'dashboard-cluster-observer', poolMax: 2 });
    cleanups.push(() => db[Symbol.asyncDispose]());
    await db.sql`insert into users (name, email) select 'User ' || i, 'user' || i || '@example.com' from generate_series(1, 100) i`;
    nats = await startNats({ signal });
    cleanups.push(() => nats.stop());
    instances = await startInstances(3, {
      databaseUrl: db.url,
      eventsUrl: nats.url,
      serverDir: SERVER_DIR,
      env: { DASHBOARD_DIR: DIST_DIR, LAB: 'on', LOG_LEVEL: 'warn', SHUTDOWN_TIMEOUT_MS: '2000', DB_POOL_MAX: '10' },
      signal,
    });
    cleanups.push(() => instances.close());
    haproxy = await startHaproxy({ backends: instances.list().map((i) => ({ name: i.id, url: i.url })), signal });
    cleanups.push(() => haproxy.stop());
    const ids = instances.list().map((i) => i.id);
    await haproxyUntil('HAProxy sees the 3 instances UP', async () => {
      const up = new Set((await haproxy.servers()).filter((s) => s.status === 'UP').map((s) => s.name));
      return ids.every((id) => up.has(id));
    });
    browser = await launchBrowser();
    cleanups.push(() => browser.close());
    page = browser.page;
    page.on('pageerror', (error) => { pageErrors.push(error.message); });
    await page.setViewportSize({ width: 1440, height: 1000 });
    await page.goto(`${haproxy.url}/#token=${instances.token}`);
    await until('the event stream through the balancer', async () => (await page.getByTestId('connection').textContent())?.includes('event stream live'), 20_000);
  }, 60_000);

  afterAll(async () => {
    controller.abort();
    // Every process stopped, last started first, each even when another fails to stop.
    const failures: unknown[] = [];
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup().catch((error: unknown) => failures.push(error));
    if (failures.length > 0) throw new AggregateError(failures, `${failures.length} cleanup(s) failed`);
  }, 30_000);

  /**
   * Polls HAProxy's runtime API every 250 ms (its checks run every second; each ask is a socket, and Node 20's
   * net.connect leaves an abort listener on the harness's signal per socket, so ask sparingly).
   */
  function haproxyUntil(what: string, check: () => Promise<boolean | undefined>): Promise<true> {
    return poll(what, async () => (await check()) === true || undefined, { timeoutMs: 15_000, intervalMs: 250, signal });
  }

  async function openPanel(): Promise<void> {
    const toggle = page.getByRole('button', { name: 'Server panel', exact: true });
    if ((await toggle.getAttribute('aria-expanded')) === 'false') await toggle.click();
    await page.getByTestId('instances').waitFor();
  }

  async function runLab(count: number): Promise<void> {
    await page.getByTestId('transport-http').check();
    const values = { count: String(count), concurrency: '6', timeout: '10000', retries: '0', latency: '150', 'error-rate': '0' };
    for (const [field, value] of Object.entries(values)) await page.getByTestId(`lab-${field}`).fill(value);
    await page.getByTestId('launch').click();
    await until('the run to finish', async () => (await page.getByTestId('launch').textContent()) === 'Launch', 30_000);
  }

  /** The run's rows once each has its settled hop and names its instance (what the page shows at the end, if not). */
  async function settledRows(count: number): Promise<RowSeen[]> {
    let last: RowSeen[] = [];
    try {
      return await until(`${count} rows settled on the server, each naming its instance`, async () => {
        last = await rowsSeen(page);
        return last.length === count && last.every((r) => r.settled !== '' && r.instance !== null) ? last : undefined;
      }, 10_000);
    } catch (error) {
      throw new Error(`${(error as Error).message}\nthe rows: ${JSON.stringify(last)}`);
    }
  }

  it('the server panel lists the 3 instances, all up', async () => {
    await openPanel();
    const ids = instances.list().map((i) => i.id).sort();
    const seen = await until('3 instances up in the panel', async () => {
      const rows = await instancesSeen(page);
      return rows.length === 3 && rows.every((r) => r.state === 'up') ? rows : undefined;
    }, 10_000);
    expect(seen.map((r) => r.id).sort()).toEqual(ids);
    self = (await page.getByTestId('instance-id').getAttribute('title'))?.match(/^Instance (\S+):/)?.[1] ?? '';
    expect(ids).toContain(self);
    // This instance first, marked; the totals count 3 up; the events ride the broker, connected.
    expect(seen[0]?.id).toBe(self);
    expect(await page.getByTestId('instances-total').locator('td').first().textContent()).toBe('3 up');
    expect(await page.getByTestId('events-status').getAttribute('data-connected')).toBe('true');
  });

  it(`the fetch lab over HTTP: ${CALLS} calls spread over the 3 instances, every row with its server hops and its instance`, async () => {
    // Tall enough that the virtualised table renders every row, to read them all from the page.
    await page.setViewportSize({ width: 1440, height: 1600 });
    await runLab(CALLS);
    const rows = await settledRows(CALLS);
    expect(rows.map((r) => r.row).sort((a, b) => a - b)).toEqual(Array.from({ length: CALLS }, (_, i) => i + 1));
    for (const r of rows) expectServed(r);
    const served = new Map<string, number>();
    for (const r of rows) served.set(r.instance ?? '', (served.get(r.instance ?? '') ?? 0) + 1);
    console.info(`[dashboard cluster e2e] rows per instance: ${JSON.stringify(Object.fromEntries(served))}; the page's socket on ${self}`);
    expect([...served.keys()].sort()).toEqual(instances.list().map((i) => i.id).sort());
    // The column names them too: a short label, the full id in the title.
    expect(await page.locator('.thead .c-inst').textContent()).toBe('inst.');
    const titles = await page.locator('.tbody [data-testid="instance"]').evaluateAll((els) => els.map((el) => [el.getAttribute('data-instance'), el.getAttribute('title')]));
    for (const [id, title] of titles) expect(title).toBe(`Served by ${id ?? ''}`);

    for (const width of [...WIDTHS].reverse()) {
      await page.setViewportSize({ width, height: 1000 });
      await sleep(200); // one frame of layout after the resize, for the screenshot
      await screenshot(page, `e2e-cluster-lab-${width}`);
      // The labels tell the instances apart on screen: none is cut by its cell (10 characters once were).
      const cut = await page.locator('.tbody .c-inst').evaluateAll((cells) => cells.filter((c) => c.scrollWidth > c.clientWidth).map((c) => c.textContent));
      expect(cut, `inst. labels cut at ${width} px`).toEqual([]);
    }
  });

  it('SIGKILL one instance: the server panel shows it gone within seconds, the others up; the lab goes on over the two left', async () => {
    await openPanel();
    for (const width of WIDTHS) {
      await page.setViewportSize({ width, height: 1000 });
      await sleep(200);
      await screenshot(page, `e2e-cluster-server-panel-${width}`);
    }
    // Not the page's own instance: its socket (and with it the panel) would move to another one.
    const victim = instances.list().find((i) => i.id !== self);
    if (!victim) throw new Error('no instance other than the page\'s');
    const killedAt = Date.now();
    await instances.kill(victim);
    const seen = await until('the killed instance gone in the panel', async () => {
      const rows = await instancesSeen(page);
      return rows.find((r) => r.id === victim.id)?.state === 'gone' ? rows : undefined;
    }, 10_000);
    const goneAfterMs = Date.now() - killedAt;
    console.info(`[dashboard cluster e2e] ${victim.id} shown gone ${goneAfterMs} ms after its SIGKILL`);
    expect(seen.filter((r) => r.id !== victim.id).map((r) => r.state)).toEqual(['up', 'up']);
    expect(await page.getByTestId('instances-total').locator('td').first().textContent()).toBe('2 up');
    expect(await page.locator('.section-head', { hasText: 'Instances' }).textContent()).toBe('Instances (3, 1 gone)');
    for (const width of WIDTHS) {
      await page.setViewportSize({ width, height: 1000 });
      await sleep(200);
      await screenshot(page, `e2e-cluster-server-panel-gone-${width}`);
    }

    // HAProxy takes it out of rotation (two failed checks); the next run is served by the two left.
    await haproxyUntil('HAProxy sees it DOWN', async () => (await haproxy.servers()).find((s) => s.name === victim.id)?.status.startsWith('DOWN'));
    await page.setViewportSize({ width: 1440, height: 1600 });
    await runLab(12);
    const rows = await settledRows(12);
    for (const r of rows) expectServed(r);
    const survivors = instances.list().filter((i) => i !== victim).map((i) => i.id).sort();
    expect([...new Set(rows.map((r) => r.instance))].sort()).toEqual(survivors);
    expect(pageErrors).toEqual([]);
  });
});
