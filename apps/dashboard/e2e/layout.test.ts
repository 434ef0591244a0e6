/**
 * What a person sees, at the widths people use (1024 px up): the delete confirmation, nothing clipped or
 * cut off, and what the lab leaves behind on the server. The built app against the real server and a real
 * PostgreSQL, in Chromium; screenshots in test-artifacts/ (ux-*.png).
 */
import type { TestDatabase } from '@asyncscope/db/testing';
import type { Locator, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { browserMissing, screenshot, startDashboard, until, type Browser, type Dashboard, type ServerProcess } from './harness';

const TOKEN = 'e2e-layout-token-0123456789';
const WIDTHS = [1024, 1440] as const;

const missing = browserMissing();
if (missing) console.warn(`[dashboard layout e2e] SKIPPED: ${missing}`);

/** Every way `el` can be hidden from a person horizontally: text cut inside it, or outside an ancestor that clips, or the window. */
function clippedIn(page: Page, selector: string): Promise<string[]> {
  return page.evaluate((sel) => {
    const problems: string[] = [];
    const describe = (el: Element): string => `${el.tagName.toLowerCase()}${el.className && typeof el.className === 'string' ? `.${el.className.trim().split(/\s+/).join('.')}` : ''} "${(el.textContent).trim().slice(0, 40)}"`;
    for (const el of Array.from(document.querySelectorAll(sel))) {
      const box = el.getBoundingClientRect();
      if (box.width === 0 && box.height === 0) continue; // not rendered (another tab, display: none)
      if (el.closest('.sr-only')) continue; // for screen readers only, clipped on purpose
      const own = getComputedStyle(el);
      if (el.scrollWidth > el.clientWidth + 1 && own.overflowX !== 'visible') problems.push(`${describe(el)} cuts its content (${el.scrollWidth} > ${el.clientWidth} px)`);
      else if (el instanceof HTMLElement && (own.overflowX === 'hidden' || own.overflowX === 'clip') && !el.querySelector('.sr-only')) {
        // scrollWidth is rounded, and an ellipsis can take the last letters for a fraction of a pixel: measure the text.
        const range = document.createRange();
        range.selectNodeContents(el);
        const text = range.getBoundingClientRect().width;
        const room = el.clientWidth - parseFloat(own.paddingLeft) - parseFloat(own.paddingRight);
        if (text > room + 0.01) problems.push(`${describe(el)} cuts its text (${text.toFixed(2)} > ${room} px)`);
      }
      // Inside a sideways scroller the element can be scrolled to; the scroller itself must stay in the window.
      let scrolled = false;
      for (let a = el.parentElement; a && a !== document.body; a = a.parentElement) if (['auto', 'scroll'].includes(getComputedStyle(a).overflowX)) scrolled = true;
      if (!scrolled && (box.left < -0.5 || box.right > window.innerWidth + 0.5)) problems.push(`${describe(el)} leaves the window (${Math.round(box.left)}–${Math.round(box.right)} of ${window.innerWidth} px)`);
      for (let a = el.parentElement; a && a !== document.body; a = a.parentElement) {
        const style = getComputedStyle(a);
        if (style.overflowX === 'visible') continue;
        const outer = a.getBoundingClientRect();
        // Inside a scroller the element can be scrolled to; only `hidden`/`clip` lose it for good.
        if ((style.overflowX === 'hidden' || style.overflowX === 'clip') && (box.left < outer.left - 0.5 || box.right > outer.right + 0.5)) {
          problems.push(`${describe(el)} is cut by ${describe(a)}`);
        }
        if (style.overflowX === 'auto' || style.overflowX === 'scroll') break;
      }
    }
    return problems;
  }, selector);
}

/** Whether what a person sees at the centre of `locator` is that element (not something over it). */
async function seenAt(page: Page, locator: Locator): Promise<{ x: number; y: number }> {
  const box = await locator.boundingBox();
  if (!box) throw new Error('not rendered');
  const x = box.x + box.width / 2;
  const y = box.y + box.height / 2;
  const hit = await locator.evaluate((el, [px, py]) => {
    const top = document.elementFromPoint(px ?? 0, py ?? 0);
    return top !== null && (top === el || el.contains(top));
  }, [x, y]);
  expect(hit).toBe(true);
  expect(x).toBeLessThan(await page.evaluate(() => window.innerWidth));
  return { x, y };
}

/** Two more instances for the cluster view: one up, one gone (SIGKILLed 5 s ago). */
const OTHER_UP = 'e2e-web-b.internal:4102';
const OTHER_GONE = 'e2e-web-c.internal:4103';

type Json = Record<string, unknown>;
/** A frame's JSON, or undefined (the socket's keep-alive PING/PONG are plain text). */
const parsed = (text: string): unknown => {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
};
const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * The page's socket, with the server's answers rewritten as one instance of a 3-instance cluster would send
 * them: activity.stats lists two more instances (one gone) and the broker's state, and the run's hops are
 * spread over the three by row number. Once `gone.died` is set, the gone instance's rows get no hop past
 * their statement's start and their cancels are answered `instance-gone`, as a killed owner's would be. One
 * process cannot make a cluster (apps/cluster runs a real one behind HAProxy); this checks what the page
 * makes of one, at the widths people use.
 */
async function asCluster(page: Page, broker: { connected: boolean; dropped: number }, gone: { died: boolean }): Promise<void> {
  const rowOf = (callId: unknown): number => Number(/-(\d+)(?:[~#].*)?$/.exec(String(callId))?.[1] ?? 0);
  await page.routeWebSocket(/\/trpc/, (ws) => {
    const server = ws.connectToServer();
    const statsIds = new Set<unknown>();
    const cancelIds = new Set<unknown>();
    let self = 'e2e-web-a.internal:4101';
    ws.onMessage((message) => {
      if (typeof message === 'string') {
        for (const m of [parsed(message)].flat()) {
          if (isObject(m) && isObject(m.params) && m.params.path === 'activity.stats') statsIds.add(m.id);
          if (isObject(m) && isObject(m.params) && m.params.path === 'calls.cancel') cancelIds.add(m.id);
        }
      }
      server.send(message);
    });
    server.onMessage((message) => {
      const m = typeof message === 'string' ? parsed(message) : undefined;
      if (!isObject(m) || !isObject(m.result)) {
        ws.send(message);
        return;
      }
      const data = m.result.data;
      if (statsIds.delete(m.id) && isObject(data)) {
        self = typeof data.instance === 'string' ? data.instance : self;
        const one = { state: 'up', ageMs: 300, maxInFlight: data.maxInFlight, maxQueue: data.maxQueue, poolMax: data.poolMax, eventLoopDelayMs: 2.4 };
        data.instance = self;
        data.instances = [
          { ...one, instance: self, inFlight: data.inFlight, queued: data.queued, shed: data.shed, poolBusy: isObject(data.statements) ? data.statements.running : 0 },
          { ...one, instance: OTHER_UP, inFlight: 37, queued: 12, shed: 3, poolBusy: 2, eventLoopDelayMs: 18.6 },
          { ...one, instance: OTHER_GONE, state: 'gone', ageMs: 5400, inFlight: 20, queued: 0, shed: 1250, poolBusy: 2, eventLoopDelayMs: 340 },
        ];
        data.events = { mode: 'broker', connected: broker.connected, published: 48_210, dropped: broker.dropped };
      } else if (cancelIds.delete(m.id) && isObject(data) && Array.isArray(data.results) && gone.died) {
        for (const r of data.results as Json[]) if (rowOf(r.callId) % 3 === 2) r.status = 'instance-gone';
      } else if (isObject(data) && isObject(data.data) && Array.isArray(data.data.events)) {
        // A batch of activity.events (tracked): the run's row n is served by instance n % 3.
        const early = new Set(['received', 'queued', 'started', 'statement.started']);
        data.data.events = (data.data.events as Json[]).filter((e) => {
          const n = rowOf(e.callId);
          e.instance = [self, OTHER_UP, OTHER_GONE][n % 3];
          return !(gone.died && n % 3 === 2 && !early.has(String(e.type)));
        });
      }
      ws.send(JSON.stringify(m));
    });
  });
}

describe.skipIf(missing !== null)('the dashboard at 1024 and 1440 px (Chromium, real server)', () => {
  let dash: Dashboard | undefined;
  let db: TestDatabase;
  let server: ServerProcess;
  let browser: Browser;
  let page: Page;
  const users: Record<string, number> = {};

  beforeAll(async () => {
    dash = await startDashboard({
      token: TOKEN,
      applicationName: 'dashboard-layout',
      // Pool of 2: calls beyond two wait for a connection, so a cancel takes them out of the pool queue ("dequeued").
      poolMax: 2,
      seed: async (db) => {
        const names: [string, string][] = [
          ['Ada Lovelace', 'ada@example.com'],
          ['Katherine Johnson', 'katherine.johnson@nasa.example.com'],
          ['Grace Brewster Murray Hopper', 'grace.hopper@navy.example.org'],
          ['Alan Turing', 'alan@example.com'],
        ];
        for (const [name, email] of names) {
          const [row] = await db.sql<{ id: number }[]>`insert into users (name, email) values (${name}, ${email}) returning id`;
          users[name] = row?.id ?? 0;
        }
      },
    });
    ({ db, server, browser, page } = dash);
  }, 90_000);

  afterAll(async () => {
    await dash?.close();
  });

  const userRow = (name: string) => page.getByRole('row').filter({ has: page.getByRole('cell', { name, exact: true }) });
  const exists = async (id: number | undefined) => (await db.sql`select 1 from users where id = ${id ?? 0}`).length === 1;

  for (const width of WIDTHS) {
    it(`${width} px: the delete confirmation names the user, shows Keep and Delete in full, focuses Keep; Keep and Escape keep the user`, async () => {
      await page.setViewportSize({ width, height: 800 });
      await page.getByRole('tab', { name: 'Users' }).click();
      const row = userRow('Ada Lovelace');
      await row.waitFor();
      await row.getByRole('button', { name: 'Delete Ada Lovelace' }).click();

      const confirm = page.getByRole('group', { name: 'Delete Ada Lovelace?' });
      await confirm.waitFor();
      const keep = confirm.getByRole('button', { name: 'Keep', exact: true });
      const del = confirm.getByRole('button', { name: 'Delete', exact: true });
      expect(await keep.isVisible()).toBe(true);
      expect(await del.isVisible()).toBe(true);
      expect(await confirm.textContent()).toContain('Delete Ada Lovelace?');
      // The safe choice has the focus: Enter right after the click keeps the user.
      expect(await keep.evaluate((el) => el === document.activeElement)).toBe(true);
      expect(await clippedIn(page, '.user-table .confirm, .user-table .confirm *')).toEqual([]);
      await screenshot(page, `ux-users-confirm-${width}`);

      // Pressed where a person sees it: the confirmation closes, the user stays.
      const at = await seenAt(page, keep);
      await page.mouse.click(at.x, at.y);
      await until('the confirmation closed', async () => (await confirm.count()) === 0);
      expect(await exists(users['Ada Lovelace'])).toBe(true);
      expect(await row.count()).toBe(1);

      // Escape is Keep too, and the focus goes back to the row's Delete.
      await row.getByRole('button', { name: 'Delete Ada Lovelace' }).click();
      await confirm.waitFor();
      await page.keyboard.press('Escape');
      await until('the confirmation closed by Escape', async () => (await confirm.count()) === 0);
      expect(await row.getByRole('button', { name: 'Delete Ada Lovelace' }).evaluate((el) => el === document.activeElement)).toBe(true);
      expect(await exists(users['Ada Lovelace'])).toBe(true);
    });
  }

  it('Delete in the confirmation deletes (keyboard only: Tab from Keep to Delete, Enter)', async () => {
    await page.setViewportSize({ width: 1024, height: 800 });
    const row = userRow('Alan Turing');
    await row.getByRole('button', { name: 'Delete Alan Turing' }).click();
    const confirm = page.getByRole('group', { name: 'Delete Alan Turing?' });
    await confirm.waitFor();
    await page.keyboard.press('Tab');
    expect(await confirm.getByRole('button', { name: 'Delete', exact: true }).evaluate((el) => el === document.activeElement)).toBe(true);
    await page.keyboard.press('Enter');
    await until('the user gone from the database', async () => !(await exists(users['Alan Turing'])));
    await until('the row gone', async () => (await page.getByRole('cell', { name: 'Alan Turing', exact: true }).count()) === 0 && (await confirm.count()) === 0);
  });

  /** The server's injected faults, asked directly (what every client gets). */
  const serverFaults = async (): Promise<Record<string, unknown>> => {
    const res = await fetch(`${server.url}/trpc/lab.faults`, { headers: { authorization: `Bearer ${TOKEN}` } });
    return ((await res.json()) as { result: { data: Record<string, unknown> } }).result.data;
  };
  const sleeping = async (): Promise<number> => (dash ? (await dash.sleeping()).length : 0);
  async function setLab(target: Page, values: Record<string, string>): Promise<void> {
    // A test that failed midway may have left its run going: end it first, so one failure stays one.
    if (await target.getByTestId('cancel-all').isEnabled()) {
      await target.getByTestId('cancel-all').click();
      await runFinished(target);
    }
    for (const [field, value] of Object.entries(values)) await target.getByTestId(`lab-${field}`).fill(value);
  }
  async function runFinished(target: Page): Promise<void> {
    await until('the run to finish', async () => (await target.getByTestId('launch').textContent()) === 'Launch', 30_000);
  }

  for (const width of WIDTHS) {
    it(`${width} px: nothing leaves the window or is cut off, the Users headings do not overlap, names and "per page" fit`, async () => {
      await page.setViewportSize({ width, height: 800 });
      expect(await page.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(width);

      await page.getByRole('tab', { name: 'Users' }).click();
      await userRow('Ada Lovelace').waitFor();
      const headings = await page.evaluate(() =>
        Array.from(document.querySelectorAll('.user-table th')).map((th) => {
          const range = document.createRange();
          range.selectNodeContents(th);
          const text = range.getBoundingClientRect();
          const cell = th.getBoundingClientRect();
          return { text: th.textContent.trim(), left: text.left, right: text.right, cellLeft: cell.left, cellRight: cell.right };
        }),
      );
      const visible = headings.filter((h) => h.text !== '' && h.text !== 'actions');
      expect(visible.map((h) => h.text)).toEqual(['id', 'name', 'email', 'created']);
      for (const h of visible) {
        expect(h.left, `${h.text} starts inside its column`).toBeGreaterThanOrEqual(h.cellLeft - 0.5);
        expect(h.right, `${h.text} ends inside its column`).toBeLessThanOrEqual(h.cellRight + 0.5);
      }
      for (let i = 1; i < visible.length; i++) expect(visible[i]?.left ?? 0, `${visible[i]?.text} after ${visible[i - 1]?.text}`).toBeGreaterThanOrEqual(visible[i - 1]?.right ?? 0);
      expect(await clippedIn(page, '.user-table th, .user-table td, .pager, .pager *, .users .card, .stream-controls *, .header, .header *, .tabs')).toEqual([]);
      const perPageLines = await page.locator('.page-size').evaluate((el) => {
        const text = Array.from(el.childNodes).find((n) => n.nodeType === Node.TEXT_NODE && (n.textContent ?? '').includes('per page'));
        if (!text) return 0;
        const range = document.createRange();
        range.selectNodeContents(text);
        return range.getClientRects().length;
      });
      expect(perPageLines, '"per page" on one line').toBe(1);
      await screenshot(page, `ux-dashboard-users-${width}`);

      await page.getByRole('tab', { name: 'Fetch lab' }).click();
      await page.getByTestId('launch').waitFor();
      expect(await clippedIn(page, '.controls-row, .controls-row > *, .advice, .summary, .thead .tr > div, .header, .tabs')).toEqual([]);
      const tickBoxes = await page.locator('.thead .tick').evaluateAll((els) => els.map((el) => { const r = el.getBoundingClientRect(); return { left: r.left, right: r.right }; }));
      for (let i = 1; i < tickBoxes.length; i++) expect(tickBoxes[i]?.left ?? 0, 'timeline tick labels apart').toBeGreaterThan(tickBoxes[i - 1]?.right ?? 0);
      await screenshot(page, `ux-dashboard-lab-${width}`);
      // The server panel: shown whole, or collapsed behind a button that shows it whole.
      const toggle = page.getByRole('button', { name: 'Server panel', exact: true });
      if ((await page.locator('aside.server').count()) === 0 || !(await page.locator('aside.server').isVisible())) {
        expect(await toggle.getAttribute('aria-expanded')).toBe('false');
        await toggle.click();
        await page.locator('aside.server').waitFor();
      }
      expect(await toggle.getAttribute('aria-expanded')).toBe('true');
      await until('server stats', async () => (await page.getByTestId('pool-idle').textContent())?.match(/idle \d+/));
      expect(await clippedIn(page, 'aside.server, aside.server *')).toEqual([]);
      await screenshot(page, `ux-dashboard-lab-${width}-server-panel`);
    });
  }

  it('the edit row and the stream have their own Cancel (“Cancel edit”, “Cancel stream”); the edit row’s name field shows the name', async () => {
    await page.setViewportSize({ width: 1024, height: 800 });
    await page.getByRole('tab', { name: 'Users' }).click();
    const id = users['Katherine Johnson'] ?? 0;
    await userRow('Katherine Johnson').getByRole('button', { name: /^Edit/ }).click();
    const name = page.getByTestId(`edit-name-${id}`);
    await name.waitFor();
    expect(await page.getByRole('button', { name: 'Cancel', exact: true }).count()).toBe(0);
    expect(await page.getByRole('button', { name: 'Cancel stream', exact: true }).count()).toBe(1);
    expect(await page.getByRole('button', { name: 'Cancel edit', exact: true }).count()).toBe(1);
    const field = await name.evaluate((el) => ({ width: el.getBoundingClientRect().width, fits: el.scrollWidth <= el.clientWidth }));
    expect(field.width, 'name field width (px)').toBeGreaterThanOrEqual(200);
    expect(field.fits).toBe(true);
    expect(await clippedIn(page, '.user-table tr.editing td, .user-table tr.editing .btn, .stream-controls, .stream-controls *')).toEqual([]);
    await screenshot(page, 'ux-users-edit-1024');
    await page.getByRole('button', { name: 'Cancel edit', exact: true }).click();
    await until('the edit row closed', async () => (await name.count()) === 0);
  });

  it('the hop columns show UNAVAIL and dequeued in full', async () => {
    await page.setViewportSize({ width: 1440, height: 800 });
    await page.getByRole('tab', { name: 'Fetch lab' }).click();
    // Every call fails with SERVICE_UNAVAILABLE: the result slot says UNAVAIL.
    await setLab(page, { count: '4', concurrency: '4', timeout: '10000', retries: '0', latency: '0', 'error-rate': '100' });
    await page.getByTestId('launch').click();
    await runFinished(page);
    await until('UNAVAIL on the rows', async () => (await page.locator('[data-slot="settled"]', { hasText: 'UNAVAIL' }).count()) === 4, 10_000);
    expect(await clippedIn(page, '.tbody .slot')).toEqual([]);

    // Pool of 2: two statements sleep, two calls wait for a connection; cancel all takes those out of the queue.
    await setLab(page, { count: '6', concurrency: '4', timeout: '30000', retries: '0', latency: '8000', 'error-rate': '0' });
    await page.getByTestId('launch').click();
    await until('2 statements sleeping', async () => (await sleeping()) === 2, 15_000);
    // A call the server received that waits for one of the two connections: its row says so ("pool…").
    // The row number of such a call, if any.
    // Only once the page shows both sleeping statements running (a pid in their SQL slot): a row shown waiting
    // before that may be one whose start has not reached the page yet (it waited a moment behind the fault
    // store's reload, say), already running, whose cancel is then "sent".
    const waitingForConnection = () =>
      page.evaluate(() => {
        const rows = Array.from(document.querySelectorAll('[data-testid^="row-"]'));
        const running = rows.filter((r) => {
          const sql = r.querySelector('[data-testid="hops"] [data-slot="sql"]');
          return sql !== null && sql.getAttribute('data-wait') !== 'pool' && sql.textContent !== '';
        });
        if (running.length !== 2) return undefined;
        const row = rows.find((r) => {
          const hops = r.querySelector('[data-testid="hops"]');
          return (hops?.querySelector('[data-slot="recv"]')?.textContent ?? '') !== '' && hops?.querySelector('[data-slot="sql"]')?.getAttribute('data-wait') === 'pool';
        });
        return row ? Number(row.getAttribute('data-testid')?.slice(4)) : undefined;
      });
    const waiting = await until('a call waiting for a connection', async () => await waitingForConnection(), 15_000);
    // Cancel that call alone: the two sleeping statements keep both connections, so it is still waiting when
    // its cancel arrives (with "cancel all" a connection freed by a sibling could take it first: "sent").
    await page.getByRole('button', { name: `Cancel call #${waiting}`, exact: true }).click();
    const waitingRow = page.getByTestId(`row-${waiting}`);
    await until('dequeued on its row', async () => (await waitingRow.locator('[data-slot="cancel"]', { hasText: 'dequeued' }).count()) > 0, 10_000);
    await page.getByTestId('cancel-all').click();
    await runFinished(page);
    expect(await clippedIn(page, '.tbody .slot')).toEqual([]);
    await screenshot(page, 'ux-lab-hops-1440');
  });

  it('a run’s latency fault is shown across the top while it runs, and cleared when the run ends', async () => {
    await setLab(page, { count: '4', concurrency: '2', timeout: '10000', retries: '0', latency: '700', 'error-rate': '0' });
    await page.getByTestId('launch').click();
    const banner = page.getByTestId('fault-banner');
    await until('the fault shown', async () => (await banner.isVisible()) && (await banner.textContent())?.includes('users.byId +700 ms'), 10_000);
    expect(await serverFaults()).toHaveProperty(['users.byId']);
    await screenshot(page, 'ux-fault-banner-1440');
    await runFinished(page);
    await until('the server has no fault left', async () => Object.keys(await serverFaults()).length === 0, 10_000);
    await until('the banner gone', async () => (await banner.count()) === 0, 10_000);
  });

  it('a pinned fault stays after the run; unpinning clears it', async () => {
    await page.getByTestId('pin-faults').check();
    await setLab(page, { count: '2', concurrency: '2', timeout: '10000', retries: '0', latency: '300', 'error-rate': '0' });
    await page.getByTestId('launch').click();
    await runFinished(page);
    await new Promise((r) => setTimeout(r, 1000)); // time enough for a clear that should not happen
    expect(await serverFaults()).toEqual({ 'users.byId': { latencyMs: 300, errorRate: 0 } });
    expect(await page.getByTestId('fault-banner').textContent()).toContain('Kept after the run');
    await page.getByTestId('pin-faults').uncheck();
    await until('the server has no fault left', async () => Object.keys(await serverFaults()).length === 0, 10_000);
  });

  it('closing the page during a run clears the fault its lab set', async () => {
    const other = await browser.context.newPage();
    await other.goto(`${server.url}/#token=${TOKEN}`);
    await until('the other tab live', async () => (await other.getByTestId('connection').textContent())?.includes('event stream live'), 20_000);
    await setLab(other, { count: '20', concurrency: '2', timeout: '30000', retries: '0', latency: '5000', 'error-rate': '0' });
    await other.getByTestId('launch').click();
    await until('the fault set', async () => 'users.byId' in (await serverFaults()), 10_000);
    await other.close({ runBeforeUnload: true });
    await until('the server has no fault left', async () => Object.keys(await serverFaults()).length === 0, 10_000);
  });

  for (const width of WIDTHS) {
    it(`${width} px, a cluster of 3 (one gone): the instances table and the rows' instances fit, the gone one is shown gone`, async () => {
      const cluster = await browser.context.newPage();
      try {
        await cluster.setViewportSize({ width, height: 800 });
        // At 1024 px the broker is down: the panel warns (calls go on), it does not turn into an error page.
        const gone = { died: false };
        await asCluster(cluster, width === 1024 ? { connected: false, dropped: 1234 } : { connected: true, dropped: 0 }, gone);
        await cluster.goto(`${server.url}/#token=${TOKEN}`);
        await until('the event stream', async () => (await cluster.getByTestId('connection').textContent())?.includes('event stream live'), 20_000);
        await setLab(cluster, { count: '9', concurrency: '9', timeout: '10000', retries: '0', latency: '400', 'error-rate': '0' });
        await cluster.getByTestId('launch').click();
        await runFinished(cluster);
        const cells = cluster.locator('.tbody [data-testid="instance"]');
        await until('every row names its instance', async () => (await cells.evaluateAll((els) => els.filter((el) => el.textContent !== '').length)) === 9, 10_000);
        expect(await cluster.locator('.thead .c-inst').textContent()).toBe('inst.');
        expect(await cluster.getByTestId('row-2').getByTestId('instance').textContent()).toBe('4103');
        expect(await cluster.getByTestId('row-2').getByTestId('instance').getAttribute('title')).toContain(`${OTHER_GONE} (gone`);
        expect(await cluster.getByTestId('row-2').locator('.inst-gone').count()).toBe(1);
        expect(await cluster.getByTestId('row-1').getByTestId('instance').textContent()).toBe('4102');
        expect(await clippedIn(cluster, '.thead .tr > div, .tbody .c-inst, .tbody .slot, .header, .tabs')).toEqual([]);
        await cluster.getByTestId('row-2').getByRole('button', { name: '#2', exact: true }).click();
        expect(await cluster.getByTestId('inspector-instance').textContent()).toBe(`served by ${OTHER_GONE} (gone)`);
        expect(await clippedIn(cluster, '.inspector-head, .inspector-head *')).toEqual([]);
        await screenshot(cluster, `ux-cluster-lab-${width}`);

        const toggle = cluster.getByRole('button', { name: 'Server panel', exact: true });
        if ((await toggle.getAttribute('aria-expanded')) === 'false') await toggle.click();
        const table = cluster.getByTestId('instances');
        await table.waitFor();
        const states = await table.getByTestId('instance').evaluateAll((rows) => rows.map((r) => ({ state: r.getAttribute('data-state'), className: r.getAttribute('class') })));
        expect(states.map((r) => r.state)).toEqual(['up', 'up', 'gone']);
        expect(states[2]?.className).toBe('instance-gone');
        expect(await table.getByTestId('instance').nth(2).textContent()).toContain('gone 5 s');
        // Totals over the two that are up: the gone one's 1,250 shed left out.
        const total = cluster.getByTestId('instances-total').locator('td');
        expect(await total.first().textContent()).toBe('2 up');
        const selfShed = Number(await table.getByTestId('instance').first().locator('td').nth(4).textContent());
        expect(await total.nth(3).textContent()).toBe(String(selfShed + 3));
        expect(await cluster.locator('.section-head', { hasText: 'Instances' }).textContent()).toBe('Instances (3, 1 gone)');
        const events = cluster.getByTestId('events-status');
        expect(await events.getAttribute('data-connected')).toBe(String(width !== 1024));
        expect(await events.textContent()).toMatch(width === 1024 ? /^Broker disconnected.*1,234 dropped/ : /^Events: broker connected$/);
        expect(await clippedIn(cluster, 'aside.server, aside.server *')).toEqual([]);
        // The table fits the panel as it is: nothing to scroll to.
        expect(await cluster.locator('.instances-x').evaluate((el) => el.scrollWidth <= el.clientWidth)).toBe(true);
        await screenshot(cluster, `ux-cluster-server-panel-${width}`);

        // The gone instance died mid-statement: a cancel of its call says so on the row and in the inspector.
        gone.died = true;
        if (width === 1024) await toggle.click(); // the lab's table whole again
        await setLab(cluster, { count: '3', concurrency: '3', timeout: '20000', retries: '0', latency: '5000', 'error-rate': '0' });
        await cluster.getByTestId('launch').click();
        const row2 = cluster.getByTestId('row-2');
        await until('row 2 in SQL on the gone instance', async () => (await row2.locator('[data-slot="sql"]').textContent()) !== '' && (await row2.getByTestId('instance').textContent()) === '4103', 15_000);
        await cluster.getByRole('button', { name: 'Cancel call #2', exact: true }).click();
        const goneSlot = row2.locator('[data-slot="settled"][data-outcome="instance-gone"]');
        await until('GONE on row 2', async () => (await goneSlot.count()) === 1, 10_000);
        expect(await goneSlot.textContent()).toBe('GONE');
        await row2.getByRole('button', { name: '#2', exact: true }).click();
        expect(await cluster.getByTestId('inspector-cancel-outcome').textContent()).toMatch(/^calls\.cancel: instance-gone — the server instance that ran it is gone/);
        expect(await clippedIn(cluster, '.tbody .slot, .inspector-head, .inspector-head *')).toEqual([]);
        await screenshot(cluster, `ux-cluster-instance-gone-${width}`);
        await cluster.getByTestId('cancel-all').click();
        await runFinished(cluster);
      } finally {
        await cluster.close();
      }
    });
  }

  it('with the server down, the Users tab says what happened instead of “Failed to fetch”', async () => {
    await page.getByRole('tab', { name: 'Users' }).click();
    await userRow('Ada Lovelace').waitFor();
    await server.stop();
    const error = page.locator('.users-list p.field-error');
    const text = await until('the list error', async () => ((await error.count()) > 0 ? await error.textContent() : undefined), 20_000);
    expect(text).not.toContain('Failed to fetch');
    expect(text).toMatch(/server is unreachable/);
    await screenshot(page, 'ux-users-server-down-1440');
  });
});
