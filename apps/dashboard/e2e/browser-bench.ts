/**
 * The dashboard in a browser, measured: prints figures (and PASS/FAIL against issue 12's goals); not a test.
 *
 *   npx pnpm --filter @asyncscope/dashboard bench:browser
 *
 * Starts what the e2e tests start (e2e/harness.ts): the built server as `pnpm start` runs it, serving the built
 * dashboard (dist/), on its own database cloned from a migrated template on an embedded PostgreSQL (or on
 * BENCH_DATABASE_URL's server), and Chromium at 1440 px. Then, in the fetch lab over its default transport:
 *
 * 1. latency, after WARMUP_CALLS calls: LATENCY_CALLS `users.byId` calls at concurrency 4, no fault: per call,
 *    the time the dashboard shows on its row (client: attempt sent → answer) against the server's own time for
 *    the same call (its `settled` hop: received → answered), p50/p95 of both and of the difference;
 * 2. frames: a FRAME_CALLS-call run (concurrency FRAME_CONCURRENCY, no fault): requestAnimationFrame deltas
 *    over the whole run (p50/p95/max), long tasks (> 50 ms) and the run's total time;
 * 3. the floor under 1.: the same calls from a bare WebSocket client (tRPC's wire format by hand, no dashboard)
 *    in a blank page of the same origin, at concurrency 4 and one at a time, sent → answered: what the browser
 *    and the machine cost a call before the dashboard does anything, and so the dashboard's own share of 1.
 *
 * For 1. and 3. it also prints the CPU time each process spent per call (Chromium's renderers, browser, GPU and
 * network processes by CDP's SystemInfo.getProcessInfo; the server from /proc): on 2 shared cores the latency
 * follows whoever is busiest, and CPU per call says who that is with less of the machine's noise in it.
 *
 * BENCH_DASHBOARD_DIR=<dir> serves another build of the dashboard (the server's DASHBOARD_DIR) instead of dist/.
 * Set PROFILE=<dir> to also record a CPU profile of the page (Chrome DevTools' format, .cpuprofile) per phase
 * and print its top self-time functions (build with `vite build --minify false` for readable names).
 * Set TRACE=<dir> to record a Chrome trace of the page per phase (open it in DevTools' Performance panel) and
 * print where the renderer's main thread spent its time (self time per trace event: script, style, layout,
 * paint, …); the CPU profile's "(program)" is the part of this that is not JavaScript.
 */
import { randomBytes } from 'node:crypto';
import { chmod, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import postgres from 'postgres';
import { createDbClient, runMigrations, startEmbeddedPostgres } from '@asyncscope/db';
import { databaseUrl, dropDatabase } from '@asyncscope/db/testing';
import type { CDPSession, Page } from 'playwright-core';
import { browserMissing, percentile, screenshot, startDashboard, until } from './harness';

// Its settings come from the environment (it is a script, like the e2e tests it borrows from).
const env = process.env;
/**
 * Calls at concurrency 4 before anything is measured. After 200, the server and the page were still warming up
 * (the server's CPU per call over the measured run about twice what it was after 2,000; apps/dashboard/README.md);
 * 2,000 take about 6 s, the warm-up the issue's server benchmarks get.
 */
const WARMUP_CALLS = Number(env.WARMUP_CALLS ?? 2000);
const LATENCY_CALLS = Number(env.LATENCY_CALLS ?? 400);
const FRAME_CALLS = Number(env.FRAME_CALLS ?? 10_000);
const FRAME_CONCURRENCY = Number(env.FRAME_CONCURRENCY ?? 20);
const TRANSPORT = env.LAB_TRANSPORT ?? 'websocket';
const PROFILE_DIR = env.PROFILE;
const TRACE_DIR = env.TRACE;
const TRACE_INVALIDATIONS = Boolean(env.TRACE_INVALIDATIONS);
const ADMIN_URL = env.BENCH_DATABASE_URL;
/** Another build of the dashboard to serve (e.g. the previous commit's, for a before/after in one sitting). */
const DASHBOARD_DIR = env.BENCH_DASHBOARD_DIR;

const TOKEN = `bench-${randomBytes(9).toString('hex')}`;
const GOAL_EXTRA_MS = 5;
const GOAL_FRAME_P95 = 20;
const GOAL_FRAME_MAX = 100;

interface Database {
  adminUrl: string;
  template: string;
  where: string;
  close(): Promise<void>;
}

/** What vitest's globalSetup gives the e2e tests: a PostgreSQL server and a migrated template database. */
async function openDatabase(): Promise<Database> {
  let adminUrl = ADMIN_URL;
  let stopEmbedded = (): Promise<void> => Promise.resolve();
  let where = `PostgreSQL at ${ADMIN_URL ? new URL(ADMIN_URL).host : ''} (BENCH_DATABASE_URL)`;
  if (!adminUrl) {
    const dir = await mkdtemp(join(tmpdir(), 'asyncscope-browser-bench-'));
    await chmod(dir, 0o755); // as root the cluster runs as `postgres`, which must enter the folder
    const pg = await startEmbeddedPostgres({ dataDir: dir, ephemeral: true });
    adminUrl = pg.url;
    where = 'embedded PostgreSQL';
    stopEmbedded = async () => {
      await pg.stop();
      await rm(dir, { recursive: true, force: true });
    };
  }
  const template = `browser_bench_${randomBytes(3).toString('hex')}`;
  const admin = postgres(adminUrl, { max: 1, onnotice: () => undefined });
  try {
    await admin.unsafe(`create database "${template}"`);
  } finally {
    await admin.end();
  }
  const db = createDbClient({ url: databaseUrl(adminUrl, template), poolMax: 1, statementTimeoutMs: 0, applicationName: 'asyncscope-browser-bench-setup' });
  try {
    await runMigrations(db.orm);
  } finally {
    await db.close();
  }
  const url = adminUrl;
  return {
    adminUrl,
    template,
    where,
    close: async () => {
      await dropDatabase(url, template);
      await stopEmbedded();
    },
  };
}

function stats(values: readonly number[]): { n: number; p50: number; p95: number; max: number } {
  const sorted = [...values].sort((a, b) => a - b);
  return { n: sorted.length, p50: percentile(sorted, 50), p95: percentile(sorted, 95), max: sorted.at(-1) ?? Number.NaN };
}

/** CPU seconds so far per Chromium process type (renderers summed) and of the server (Linux /proc). */
type CpuTimes = Record<string, number>;

async function cpuTimes(cdp: CDPSession, serverPid: number | undefined): Promise<CpuTimes> {
  const { processInfo } = (await cdp.send('SystemInfo.getProcessInfo')) as { processInfo: { type: string; cpuTime: number }[] };
  const out: CpuTimes = {};
  for (const { type, cpuTime } of processInfo) {
    const name = type.replace(/^network\.mojom\.NetworkService$/, 'network').replace(/\.mojom\..*$/, '');
    out[name] = (out[name] ?? 0) + cpuTime;
  }
  // utime and stime: fields 14 and 15 of /proc/<pid>/stat, in clock ticks (100 a second on Linux).
  const stat = serverPid === undefined ? '' : await readFile(`/proc/${serverPid}/stat`, 'utf8').catch(() => '');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  if (fields.length > 13) out.server = (Number(fields[11]) + Number(fields[12])) / 100;
  return out;
}

/** "renderer 812 µs · browser 95 µs · …": CPU per call between two readings, busiest first. */
function cpuPerCall(before: CpuTimes, after: CpuTimes, calls: number): string {
  return Object.keys(after)
    .map((k) => [k, ((after[k] ?? 0) - (before[k] ?? 0)) * 1e6 / calls] as const)
    .filter(([, us]) => us >= 1)
    .sort((a, b) => b[1] - a[1])
    .map(([k, us]) => `${k} ${us.toFixed(0)} µs`)
    .join(' · ');
}

const f1 = (n: number): string => (Number.isFinite(n) ? n.toFixed(1) : '–');
const verdict = (ok: boolean): string => (ok ? 'PASS' : 'FAIL');

async function setLab(page: Page, values: Record<string, string>): Promise<void> {
  for (const [field, value] of Object.entries(values)) await page.getByTestId(`lab-${field}`).fill(value);
  await page.getByLabel('settled', { exact: true }).check();
  await page.getByTestId(`transport-${TRANSPORT}`).check();
}

async function runToEnd(page: Page, timeoutMs: number): Promise<void> {
  await page.getByTestId('launch').click();
  // Polled in the page, a few times a second: the harness's `until` (20 locator reads a second) would itself
  // cost the page's main thread what is measured here.
  const launchReads = (idle: boolean, polling: number, timeout: number) =>
    page.waitForFunction((want) => (document.querySelector('[data-testid="launch"]')?.textContent === 'Launch') === want, idle, { polling, timeout });
  await launchReads(false, 20, 10_000);
  await launchReads(true, 250, timeoutMs);
}

/** Every row's shown time and its server-settled time, read from the (virtualised) table by scrolling it. */
function readRows(page: Page): Promise<{ n: number; client: string; server: string | null }[]> {
  return page.evaluate(async () => {
    const body = document.querySelector<HTMLElement>('.tbody');
    if (!body) throw new Error('no table');
    const out = new Map<number, { n: number; client: string; server: string | null }>();
    const frame = (): Promise<void> => new Promise((r) => requestAnimationFrame(() => { requestAnimationFrame(() => { r(); }); }));
    for (let top = 0; ; top += Math.max(100, body.clientHeight - 60)) {
      body.scrollTop = top;
      await frame();
      for (const el of Array.from(document.querySelectorAll<HTMLElement>('[data-testid^="row-"]'))) {
        const n = Number(el.dataset.testid?.slice(4));
        out.set(n, { n, client: el.querySelector('.c-time')?.textContent ?? '', server: el.querySelector('[data-slot="settled"]')?.getAttribute('title') ?? null });
      }
      if (top + body.clientHeight >= body.scrollHeight) break;
    }
    body.scrollTop = 0;
    return [...out.values()];
  });
}

/** The rows at the top of the table (the run's first calls), read without scrolling through the rest. */
function readFirstRows(page: Page, count: number): Promise<{ n: number; client: string; server: string | null }[]> {
  return page.evaluate(async (count) => {
    const body = document.querySelector<HTMLElement>('.tbody');
    if (!body) throw new Error('no table');
    const out = new Map<number, { n: number; client: string; server: string | null }>();
    for (let top = 0; out.size < count && top < body.scrollHeight; top += Math.max(100, body.clientHeight - 60)) {
      body.scrollTop = top;
      await new Promise<void>((r) => requestAnimationFrame(() => { requestAnimationFrame(() => { r(); }); }));
      for (const el of Array.from(document.querySelectorAll<HTMLElement>('[data-testid^="row-"]'))) {
        const n = Number(el.dataset.testid?.slice(4));
        if (n <= count) out.set(n, { n, client: el.querySelector('.c-time')?.textContent ?? '', server: el.querySelector('[data-slot="settled"]')?.getAttribute('title') ?? null });
      }
    }
    body.scrollTop = 0;
    return [...out.values()];
  }, count);
}

/** A row's shown times, in ms: the dashboard's (attempt sent → answer) and the server's own (its settled hop). */
function shownTimes(rows: readonly { client: string; server: string | null }[]): { client: number; server: number }[] {
  return rows
    .map((r) => ({ client: parseShownMs(r.client), server: parseShownMs(/after (.+?)( —|$)/.exec(r.server ?? '')?.[1] ?? '') }))
    .filter((p) => Number.isFinite(p.client) && Number.isFinite(p.server));
}

/** "12 ms" / "<1 ms" / "1.20 s" → ms. */
function parseShownMs(text: string): number {
  if (text.startsWith('<1')) return 0.5;
  const m = /([\d.]+)\s*(ms|s)/.exec(text);
  if (!m) return Number.NaN;
  return Number(m[1]) * (m[2] === 's' ? 1000 : 1);
}

/**
 * `calls` users.byId calls at `concurrency` from a bare WebSocket client on `page` (tRPC's wire format by hand:
 * the connectionParams message, then one query per call): per call, sent → answered in ms. What the browser
 * and this machine cost a call with no dashboard doing anything: the floor under the dashboard's figures.
 */
function bareClientTimes(page: Page, serverUrl: string, calls: number, concurrency: number): Promise<number[]> {
  const url = `${serverUrl.replace(/^http/, 'ws')}/trpc?connectionParams=1`;
  return page.evaluate(
    async ({ url, token, calls, concurrency }) => {
      const ws = new WebSocket(url);
      await new Promise((resolve, reject) => {
        ws.onopen = resolve;
        ws.onerror = () => { reject(new Error(`could not open ${url}`)); };
      });
      ws.send(JSON.stringify({ method: 'connectionParams', data: { token } }));
      const waiting = new Map<number, { answered: (at: number) => void; failed: (error: Error) => void }>();
      // A bench stops by itself: a socket that closes, or an answer that never comes, ends the run with an error.
      const failAll = (why: string): void => {
        for (const call of waiting.values()) call.failed(new Error(why));
        waiting.clear();
      };
      ws.onclose = () => { failAll('the socket closed'); };
      ws.onmessage = (event: MessageEvent<string>) => {
        const id = (JSON.parse(event.data) as { id?: number }).id;
        const done = id === undefined ? undefined : waiting.get(id);
        if (id !== undefined && done) {
          waiting.delete(id);
          done.answered(performance.now());
        }
      };
      const times: number[] = [];
      let next = 0;
      const worker = async (): Promise<void> => {
        while (next < calls) {
          const id = ++next;
          const answered = new Promise<number>((resolve, reject) => {
            const timer = setTimeout(() => { waiting.delete(id); reject(new Error(`no answer to call ${id} within 10 s`)); }, 10_000);
            waiting.set(id, {
              answered: (at) => { clearTimeout(timer); resolve(at); },
              failed: (error) => { clearTimeout(timer); reject(error); },
            });
          });
          const sent = performance.now();
          ws.send(JSON.stringify({ id, method: 'query', params: { path: 'users.byId', input: { id: 1 + (id % 1000) } } }));
          times.push((await answered) - sent);
          // The next call in a task of its own, as the lab starts its calls.
          await new Promise((resolve) => setTimeout(resolve, 0));
        }
      };
      try {
        await Promise.all(Array.from({ length: concurrency }, worker));
      } finally {
        ws.onclose = null;
        ws.close();
      }
      return times;
    },
    { url, token: TOKEN, calls, concurrency },
  );
}

/** requestAnimationFrame deltas over `ms` while nothing runs: what the machine allows the page at all. */
function idleFrames(page: Page, ms: number): Promise<number[]> {
  return page.evaluate(
    (duration) =>
      new Promise<number[]>((resolve) => {
        const out: number[] = [];
        let last = 0;
        const end = performance.now() + duration;
        const frame = (t: number): void => {
          if (last > 0) out.push(t - last);
          last = t;
          if (t < end) requestAnimationFrame(frame);
          else resolve(out);
        };
        requestAnimationFrame(frame);
      }),
    ms,
  );
}

async function startProfile(cdp: CDPSession | null): Promise<void> {
  if (!cdp) return;
  await cdp.send('Profiler.enable');
  await cdp.send('Profiler.setSamplingInterval', { interval: 200 });
  await cdp.send('Profiler.start');
}

interface ProfileNode { id: number; callFrame: { functionName: string; url: string; lineNumber: number; columnNumber: number }; hitCount?: number }

/** Stops the profiler, saves the profile, prints the functions with the most self time. */
async function stopProfile(cdp: CDPSession | null, name: string): Promise<void> {
  if (!cdp || !PROFILE_DIR) return;
  const { profile } = await cdp.send('Profiler.stop');
  await mkdir(PROFILE_DIR, { recursive: true });
  const file = join(PROFILE_DIR, `${name}.cpuprofile`);
  await writeFile(file, JSON.stringify(profile));
  const nodes = profile.nodes as ProfileNode[];
  const byId = new Map(nodes.map((n) => [n.id, n]));
  const samples = profile.samples ?? [];
  const deltas = profile.timeDeltas ?? [];
  const self = new Map<string, number>();
  let total = 0;
  samples.forEach((id, i) => {
    const node = byId.get(id);
    if (!node) return;
    const dt = deltas[i] ?? 0;
    total += dt;
    const { functionName, url, lineNumber, columnNumber } = node.callFrame;
    const key = `${functionName || '(anonymous)'} ${url ? `${url.split('/').pop() ?? ''}:${lineNumber + 1}:${columnNumber + 1}` : ''}`.trim();
    self.set(key, (self.get(key) ?? 0) + dt);
  });
  const top = [...self.entries()].sort((a, b) => b[1] - a[1]).slice(0, 25);
  console.log(`  CPU profile ${file}: ${(total / 1000).toFixed(0)} ms sampled; top self time:`);
  for (const [key, us] of top) console.log(`    ${(us / 1000).toFixed(1).padStart(8)} ms ${((100 * us) / total).toFixed(1).padStart(5)} %  ${key}`);
}

interface TraceEvent { name: string; ph: string; pid: number; tid: number; ts: number; dur?: number; args?: { name?: string; data?: unknown } }

/** Starts a Chrome trace of the page (devtools.timeline: what DevTools' Performance panel records). */
async function startTrace(page: Page): Promise<void> {
  if (!TRACE_DIR) return;
  await page.context().browser()?.startTracing(page, { categories: ['devtools.timeline', 'disabled-by-default-devtools.timeline', 'v8.execute', 'blink', 'cc', ...(TRACE_INVALIDATIONS ? ['disabled-by-default-devtools.timeline.invalidationTracking'] : [])] });
}

/** Stops the trace, saves it, prints the renderer main thread's busy time and its self time per event name. */
async function stopTrace(page: Page, name: string): Promise<void> {
  const browser = page.context().browser();
  if (!TRACE_DIR || !browser) return;
  const buffer = await browser.stopTracing();
  await mkdir(TRACE_DIR, { recursive: true });
  const file = join(TRACE_DIR, `${name}.json`);
  await writeFile(file, buffer);
  const events = (JSON.parse(buffer.toString('utf8')) as { traceEvents: TraceEvent[] }).traceEvents;
  // The page's main thread: the CrRendererMain with the most complete events (other renderers idle).
  const mains = new Set(events.filter((e) => e.ph === 'M' && e.name === 'thread_name' && e.args?.name === 'CrRendererMain').map((e) => `${e.pid}:${e.tid}`));
  const byThread = new Map<string, TraceEvent[]>();
  for (const e of events) {
    const key = `${e.pid}:${e.tid}`;
    if (e.ph !== 'X' || e.dur === undefined || !mains.has(key)) continue;
    const list = byThread.get(key);
    if (list) list.push(e);
    else byThread.set(key, [e]);
  }
  const main = [...byThread.values()].sort((a, b) => b.length - a.length)[0] ?? [];
  main.sort((a, b) => a.ts - b.ts || (b.dur ?? 0) - (a.dur ?? 0));
  // Self time: an event's duration less its children's (complete events nest on one thread).
  const self = new Map<string, number>();
  const stack: { e: TraceEvent; end: number }[] = [];
  let busy = 0;
  for (const e of main) {
    const end = e.ts + (e.dur ?? 0);
    while (stack.length > 0 && (stack.at(-1)?.end ?? 0) <= e.ts) stack.pop();
    const parent = stack.at(-1);
    if (parent) self.set(parent.e.name, (self.get(parent.e.name) ?? 0) - (e.dur ?? 0));
    else busy += e.dur ?? 0;
    self.set(e.name, (self.get(e.name) ?? 0) + (e.dur ?? 0));
    stack.push({ e, end });
  }
  const span = main.length > 0 ? (main.at(-1)?.ts ?? 0) - (main[0]?.ts ?? 0) : 0;
  console.log(`  trace ${file}: renderer main thread busy ${(busy / 1000).toFixed(0)} of ${(span / 1000).toFixed(0)} ms; top self time:`);
  for (const [key, us] of [...self.entries()].sort((a, b) => b[1] - a[1]).slice(0, 20)) {
    console.log(`    ${(us / 1000).toFixed(1).padStart(8)} ms ${((100 * us) / Math.max(1, busy)).toFixed(1).padStart(5)} %  ${key}`);
  }
  if (!TRACE_INVALIDATIONS) return;
  // What made style, layout or paint work, and why (Blink's invalidation tracking).
  const invalidations = new Map<string, number>();
  for (const e of events) {
    if (!e.name.endsWith('InvalidationTracking')) continue;
    const data = (e.args as { data?: { nodeName?: string; reason?: string } } | undefined)?.data;
    const key = `${e.name.replace('InvalidationTracking', '')}: ${data?.nodeName ?? '?'} (${data?.reason ?? 'no reason given'})`;
    invalidations.set(key, (invalidations.get(key) ?? 0) + 1);
  }
  console.log('  invalidations (TRACE_INVALIDATIONS):');
  for (const [key, n] of [...invalidations.entries()].sort((a, b) => b[1] - a[1]).slice(0, 15)) console.log(`    ${String(n).padStart(6)}  ${key}`);
}

async function main(): Promise<void> {
  const missing = browserMissing();
  if (missing) throw new Error(`cannot run: ${missing}`);
  const started = Date.now();
  const db = await openDatabase();
  try {
    const dash = await startDashboard({
      token: TOKEN,
      applicationName: 'browser-bench',
      poolMax: 10,
      database: { adminUrl: db.adminUrl, template: db.template },
      ...(DASHBOARD_DIR ? { env: { DASHBOARD_DIR } } : {}),
      seed: async (d) => { await d.sql`insert into users (name, email) select 'User ' || i, 'user' || i || '@example.com' from generate_series(1, 1000) i`; },
    });
    try {
      const { page } = dash;
      await page.setViewportSize({ width: 1440, height: 900 });
      // tsx (esbuild, keepNames) wraps the named functions of the page.evaluate bodies below in a `__name` helper
      // that the page does not have.
      await page.evaluate('globalThis.__name = (f) => f');
      const cdp = PROFILE_DIR ? await page.context().newCDPSession(page) : null;
      const browserCdp = await page.context().browser()?.newBrowserCDPSession();
      if (!browserCdp) throw new Error('no browser-level CDP session');
      const serverPid = dash.server.proc.pid;
      const cpu = (): Promise<CpuTimes> => cpuTimes(browserCdp, serverPid);
      console.log(`browser bench: ${db.where}; the built server (pool 10) and dashboard; Chromium ${page.context().browser()?.version() ?? ''} at 1440 px; lab transport ${TRANSPORT}${DASHBOARD_DIR ? `; dashboard from ${DASHBOARD_DIR}` : ''}`);

      // Warm-up: the lab's socket opens, the server's statements get prepared, the page's and the server's code get
      // compiled and optimized (WARMUP_CALLS).
      await setLab(page, { count: String(WARMUP_CALLS), concurrency: '4', timeout: '10000', retries: '0', latency: '0', 'error-rate': '0' });
      await runToEnd(page, 60_000);

      // 1. Per-call latency at concurrency 4.
      await setLab(page, { count: String(LATENCY_CALLS), concurrency: '4', timeout: '10000', retries: '0', latency: '0', 'error-rate': '0' });
      // CPU over the run, which includes up to 250 ms of the launch button's polling after it (a few µs per call
      // at 400 calls); with PROFILE or TRACE, also what the profiler or the trace costs the page while it runs.
      const cpu0 = await cpu();
      await startProfile(cdp);
      await startTrace(page);
      const t0 = Date.now();
      await runToEnd(page, 120_000);
      const latencyRunMs = Date.now() - t0;
      const cpu1 = await cpu();
      await stopProfile(cdp, 'latency');
      await stopTrace(page, 'latency');
      // The last hops arrive over the event stream just after the run ends.
      await until('every row with its server hop', async () => (await readRows(page)).filter((r) => r.server !== null).length >= LATENCY_CALLS, 10_000);
      const pairs = shownTimes(await readRows(page));
      const client = stats(pairs.map((p) => p.client));
      const server = stats(pairs.map((p) => p.server));
      const extra = stats(pairs.map((p) => p.client - p.server));
      console.log(`\n1. users.byId, ${LATENCY_CALLS} calls at concurrency 4 after ${WARMUP_CALLS} to warm up (${pairs.length} rows read; run took ${latencyRunMs} ms, ${f1((LATENCY_CALLS * 1000) / latencyRunMs)} calls/s)`);
      console.log('                         p50      p95      max   (ms, as the rows show them: whole ms)');
      console.log(`  dashboard (browser) ${f1(client.p50).padStart(7)}  ${f1(client.p95).padStart(7)}  ${f1(client.max).padStart(7)}`);
      console.log(`  server (settled hop) ${f1(server.p50).padStart(6)}  ${f1(server.p95).padStart(7)}  ${f1(server.max).padStart(7)}`);
      console.log(`  browser − server    ${f1(extra.p50).padStart(7)}  ${f1(extra.p95).padStart(7)}  ${f1(extra.max).padStart(7)}`);
      console.log(`  CPU per call (the run, from the button to its end): ${cpuPerCall(cpu0, cpu1, LATENCY_CALLS)}`);
      console.log(`  goal: browser ≤ server + ${GOAL_EXTRA_MS} ms (p50 of the difference): ${verdict(extra.p50 <= GOAL_EXTRA_MS)}`);

      // 2. Frames during a long run.
      await setLab(page, { count: String(FRAME_CALLS), concurrency: String(FRAME_CONCURRENCY), timeout: '10000', retries: '0', latency: '0', 'error-rate': '0' });
      await page.evaluate(() => {
        const w = window as unknown as { benchFrames: number[]; benchLongTasks: number[]; benchStop: boolean };
        w.benchFrames = [];
        w.benchLongTasks = [];
        w.benchStop = false;
        new PerformanceObserver((list) => { for (const e of list.getEntries()) w.benchLongTasks.push(e.duration); }).observe({ type: 'longtask' });
        let last = 0;
        const frame = (t: number): void => {
          if (last > 0) w.benchFrames.push(t - last);
          last = t;
          if (!w.benchStop) requestAnimationFrame(frame);
        };
        requestAnimationFrame(frame);
      });
      await startProfile(cdp);
      await startTrace(page);
      const t1 = Date.now();
      await runToEnd(page, 600_000);
      const frameRunMs = Date.now() - t1;
      const measured = await page.evaluate(() => {
        const w = window as unknown as { benchFrames: number[]; benchLongTasks: number[]; benchStop: boolean };
        w.benchStop = true;
        return { frames: w.benchFrames, longTasks: w.benchLongTasks };
      });
      await stopProfile(cdp, 'frames');
      await stopTrace(page, 'frames');
      const frames = stats(measured.frames);
      const cpuIdle0 = await cpu();
      const idle = stats(await idleFrames(page, 3000));
      const cpuIdle1 = await cpu();
      const succeeded = await page.getByTestId('count-succeeded').locator('.legend-count').textContent();
      console.log(`\n2. fetch lab, ${FRAME_CALLS.toLocaleString('en-US')} calls at concurrency ${FRAME_CONCURRENCY}, no fault: ${succeeded ?? '?'} succeeded in ${(frameRunMs / 1000).toFixed(1)} s`);
      console.log(`  frame times (requestAnimationFrame deltas, ${frames.n} frames): p50 ${f1(frames.p50)} ms, p95 ${f1(frames.p95)} ms, max ${f1(frames.max)} ms`);
      console.log(`  long tasks (> 50 ms): ${measured.longTasks.length}, ${f1(measured.longTasks.reduce((a, b) => a + b, 0))} ms in all, longest ${f1(Math.max(0, ...measured.longTasks))} ms`);
      console.log(`  the same page idle afterwards, 3 s (what this machine's load leaves it): p50 ${f1(idle.p50)} ms, p95 ${f1(idle.p95)} ms, max ${f1(idle.max)} ms`);
      console.log(`  CPU per second of that idle page (no call running; the frame-measuring requestAnimationFrame loop included): ${cpuPerCall(cpuIdle0, cpuIdle1, 3).replaceAll('µs', 'µs/s')}`);
      console.log(`  goal: frame p95 ≤ ${GOAL_FRAME_P95} ms: ${verdict(frames.p95 <= GOAL_FRAME_P95)}; max ≤ ${GOAL_FRAME_MAX} ms: ${verdict(frames.max <= GOAL_FRAME_MAX)}`);
      // Its first calls start together, more at once than the runs before at concurrency 4: with a pool that
      // opens connections only when asked (DB_POOL_MIN=0), they waited for new connections to be made.
      const first = shownTimes(await readFirstRows(page, FRAME_CONCURRENCY));
      const firstClient = stats(first.map((p) => p.client));
      const firstServer = stats(first.map((p) => p.server));
      console.log(`  its first ${FRAME_CONCURRENCY} calls (${first.length} rows read), which start together: dashboard p50 ${f1(firstClient.p50)} ms, max ${f1(firstClient.max)} ms; server p50 ${f1(firstServer.p50)} ms, max ${f1(firstServer.max)} ms`);

      for (const width of [1024, 1440]) {
        await page.setViewportSize({ width, height: 900 });
        await new Promise((r) => setTimeout(r, 300));
        await screenshot(page, `bench-lab-${FRAME_CALLS}-calls-${width}`);
      }
      // 3. The floor: the same calls with no dashboard at all, in a blank page of the same origin (after the
      // frames: the dashboard's page is in the background meanwhile).
      const blank = await page.context().newPage();
      try {
        await blank.goto(`${dash.server.url}/healthz`);
        await blank.evaluate('globalThis.__name = (f) => f');
        await bareClientTimes(blank, dash.server.url, 100, 4); // warm-up
        const cpu2 = await cpu();
        const bare4 = stats(await bareClientTimes(blank, dash.server.url, LATENCY_CALLS, 4));
        const cpu3 = await cpu();
        const bare1 = stats(await bareClientTimes(blank, dash.server.url, LATENCY_CALLS, 1));
        console.log(`\n3. the floor under 1.: the same users.byId calls from a bare WebSocket client (tRPC's wire format by hand, no dashboard) in a blank page of the same origin, sent → answered`);
        console.log(`  concurrency 4: p50 ${f1(bare4.p50)} ms, p95 ${f1(bare4.p95)} ms; one at a time: p50 ${f1(bare1.p50)} ms, p95 ${f1(bare1.p95)} ms`);
        console.log(`  CPU per call at concurrency 4 (the dashboard's page idle in the background): ${cpuPerCall(cpu2, cpu3, LATENCY_CALLS)}`);
        console.log(`  the dashboard's own share of its p50 in 1.: ${f1(client.p50 - bare4.p50)} ms (its p50 ${f1(client.p50)} − the bare client's ${f1(bare4.p50)} at concurrency 4)`);
      } finally {
        await blank.close();
      }
      console.log(`\nmachine: load average ${loadavg().map((l) => l.toFixed(1)).join(' ')} on ${cpus().length} CPUs (server, PostgreSQL and Chromium share them); ${((Date.now() - started) / 1000).toFixed(0)} s in all`);
    } finally {
      await dash.close();
    }
  } finally {
    await db.close();
  }
}

await main();
