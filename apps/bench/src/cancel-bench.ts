/**
 * `pnpm bench:cancel`: how fast a cancellation reaches PostgreSQL, and what the server does with 10,000
 * calls at once. It prints figures; it is not a test.
 *
 *  1. Per transport — HTTP/1.1 (the typed client), HTTP/1.1 over TLS and HTTP/2 (the server with
 *     TLS_CERT/TLS_KEY; every HTTP/2 call a stream of one session, an abort a RST_STREAM) —
 *     BENCH_CANCELLATIONS (default 1000) times, one after another: start `lab.sleep(10 s)`, wait until its
 *     statement is active in pg_stat_activity, abort the client call, and time until the statement is no
 *     longer active (the statement gone from pg_stat_activity). Then the pool's state: every connection idle.
 *  2. 10,000 `users.byId` calls opened at once against a server whose in-flight limit admits them all:
 *     completion time, errors, the server's peak RSS.
 *  3. The same burst against the default limits (100 running, 1000 waiting): the excess is shed with
 *     TOO_MANY_REQUESTS, every admitted call succeeds.
 *  4. The cancel storm (issue 7): BENCH_STORM_CALLS (default 2000) `lab.sleep(5 s)` calls aborted by their
 *     clients within 4 s: lost cancels, calls whose signal fired yet settled OK, abort → server signal
 *     p50/p99 (from the server's hop log). The chaos suite (apps/chaos) asserts the same figures.
 *
 *   BENCH_DATABASE_URL  a PostgreSQL server to create the bench database on (default: embedded, in a temp dir)
 */
import { setMaxListeners } from 'node:events';
import { apiErrorCode, isApiError } from '@asyncscope/client';
import postgres from 'postgres';
import { openBenchDatabase } from './bench-db';
import { startOwnServer, type ApiServer } from './own-server';
import { batchedTransport, http2Transport, tlsHttp1Transport, typedClientTransport, webSocketTransport, type CancelTransport } from './cancel-transports';
import { runBench } from '@asyncscope/harness/children';
import { peakRssBytes } from './measure';
import { cancelStorm, signalLatency, stormFigures } from '@asyncscope/harness/storm';

const env = process.env;
const CANCELLATIONS = Number(env.BENCH_CANCELLATIONS ?? 1000);
const BURST = Number(env.BENCH_BURST ?? 10_000);
const STORM_CALLS = Number(env.BENCH_STORM_CALLS ?? 2000);
const RSS_GOAL_MB = 250;
const APP = 'asyncscope-cancel-bench';
const log = (line: string) => { process.stderr.write(`bench: ${line}\n`); };

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;
}

const round = (n: number, digits = 1) => Math.round(n * 10 ** digits) / 10 ** digits;

async function poolStates(observer: postgres.Sql): Promise<Record<string, number>> {
  const rows = await observer<{ state: string; n: number }[]>`
    select coalesce(state, 'unknown') as state, count(*)::int as n from pg_stat_activity
    where application_name = ${APP} group by 1 order by 1`;
  return Object.fromEntries(rows.map((r) => [r.state, r.n]));
}

interface CancelFigures { transport: string; sorted: number[]; stillThere: number; states: Record<string, number>; leaked: number; statements: { queued: number; running: number } }

async function cancellations(transport: CancelTransport, observer: postgres.Sql, signal: AbortSignal): Promise<CancelFigures> {
  const latencies: number[] = [];
  let stillThere = 0;
  for (let i = 0; i < CANCELLATIONS; i++) {
    signal.throwIfAborted();
    const controller = new AbortController();
    const call = transport.sleep(10_000, `cancel-${i}`, controller.signal);
    let pid: number | undefined;
    while (pid === undefined) {
      const [row] = await observer<{ pid: number }[]>`select pid from pg_stat_activity where application_name = ${APP} and state = 'active' and query like '%pg_sleep%'`;
      pid = row?.pid;
    }
    const abortedAt = performance.now();
    controller.abort();
    for (;;) {
      const rows = await observer`select 1 from pg_stat_activity where pid = ${pid} and state = 'active' and query like '%pg_sleep%'`;
      if (rows.length === 0) break;
      if (performance.now() - abortedAt > 5000) {
        stillThere++;
        break;
      }
    }
    latencies.push(performance.now() - abortedAt);
    await call;
    if ((i + 1) % 250 === 0) log(`${transport.name}: ${i + 1} cancellations`);
  }
  // Give the server a moment to settle its last call, then look at the pool.
  await new Promise((r) => setTimeout(r, 200));
  const states = await poolStates(observer);
  const statements = await transport.statements(signal);
  const sorted = latencies.sort((a, b) => a - b);
  const leaked = Object.entries(states).filter(([state]) => state !== 'idle').reduce((n, [, count]) => n + count, 0);
  return { transport: transport.name, sorted, stillThere, states, leaked, statements };
}

function cancellationRows(figures: CancelFigures[]): string[] {
  const pass = (f: CancelFigures) => percentile(f.sorted, 99) < 50;
  const clean = (f: CancelFigures) => f.leaked === 0 && f.stillThere === 0;
  return [
    `### 1. ${CANCELLATIONS} cancellations per transport: client abort → statement gone from pg_stat_activity`,
    '',
    '| transport | p50 ms | p90 ms | p99 ms | max ms | not gone after 5 s | pool afterwards | leaked connections | server statements queued/running |',
    '| --- | ---: | ---: | ---: | ---: | ---: | --- | ---: | --- |',
    ...figures.map((f) =>
      `| ${f.transport} | ${round(percentile(f.sorted, 50), 2)} | ${round(percentile(f.sorted, 90), 2)} | ${round(percentile(f.sorted, 99), 2)} | ${round(f.sorted.at(-1) ?? NaN, 2)} | ${f.stillThere} | ${JSON.stringify(f.states)} | ${f.leaked} | ${f.statements.queued}/${f.statements.running} |`),
    '',
    `target: p99 < 50 ms on every transport ${figures.every(pass) ? 'PASS' : `FAIL (${figures.filter((f) => !pass(f)).map((f) => f.transport).join(', ')})`}; zero leaked connections ${figures.every(clean) ? 'PASS' : 'FAIL'}`,
  ];
}

interface BurstResult { ok: number; shed: number; other: Map<string, number>; ms: number; rssMb: number }

async function burst(server: ApiServer, signal: AbortSignal): Promise<BurstResult> {
  signal.throwIfAborted();
  const other = new Map<string, number>();
  let ok = 0;
  let shed = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: BURST }, (_, i) =>
      server.api.users.byId.query({ id: (i % 10_000) + 1 }, { signal, context: { transport: 'single', callId: `burst-${i}` } }).then(
        () => { ok++; },
        (error: unknown) => {
          const code = isApiError(error) ? (apiErrorCode(error) ?? error.message) : String(error);
          if (code === 'TOO_MANY_REQUESTS') shed++;
          else other.set(code, (other.get(code) ?? 0) + 1);
        },
      ),
    ),
  );
  return { ok, shed, other, ms: performance.now() - started, rssMb: peakRssBytes(server.child.pid) / 2 ** 20 };
}

function burstRows(title: string, r: BurstResult, target: string): string[] {
  const others = [...r.other].map(([code, n]) => `${code}: ${n}`).join(', ') || '0';
  return [
    `### ${title}`,
    '',
    '| calls | succeeded | shed (429) | other errors | completion ms | server peak RSS MB |',
    '| ---: | ---: | ---: | --- | ---: | ---: |',
    `| ${BURST} | ${r.ok} | ${r.shed} | ${others} | ${Math.round(r.ms)} | ${Math.round(r.rssMb)} |`,
    '',
    target,
  ];
}

async function main(signal: AbortSignal): Promise<void> {
  setMaxListeners(0, signal); // every call of a burst listens to it
  const db = await openBenchDatabase({ adminUrl: env.BENCH_DATABASE_URL, users: 10_000, signal });
  const observer = postgres(db.url, { max: 1, onnotice: () => undefined });
  const out: string[] = ['', `## Cancellation benchmark (node ${process.version}, ${db.description})`, ''];
  try {
    {
      const figures: CancelFigures[] = [];
      const plain = await startOwnServer(db.url, { DB_APPLICATION_NAME: APP }, signal);
      try {
        for (const transport of [typedClientTransport(plain), webSocketTransport(plain), batchedTransport(plain)]) {
          try {
            figures.push(await cancellations(transport, observer, signal));
          } finally {
            transport.close();
          }
        }
      } finally {
        await plain.close();
      }
      // TLS_CERT/TLS_KEY set: the same port speaks HTTP/2 and HTTP/1.1.
      const secure = await startOwnServer(db.url, { DB_APPLICATION_NAME: APP }, signal, { tls: true });
      try {
        for (const transport of [tlsHttp1Transport(secure), http2Transport(secure)]) {
          try {
            figures.push(await cancellations(transport, observer, signal));
          } finally {
            transport.close();
          }
        }
      } finally {
        await secure.close();
      }
      out.push(...cancellationRows(figures), '');
    }
    {
      const server = await startOwnServer(db.url, { DB_APPLICATION_NAME: APP, MAX_IN_FLIGHT: String(BURST), MAX_QUEUE: '0' }, signal);
      try {
        const r = await burst(server, signal);
        // Issue 12's goal: 10,000 calls in flight in under 250 MB.
        const pass = r.ok === BURST && r.rssMb < RSS_GOAL_MB;
        out.push(...burstRows(`2. ${BURST} users.byId at once, all admitted (MAX_IN_FLIGHT=${BURST})`, r, `target: 0 errors and peak RSS < ${RSS_GOAL_MB} MB ${pass ? 'PASS' : 'FAIL'}`), '');
      } finally {
        await server.close();
      }
    }
    {
      const server = await startOwnServer(db.url, { DB_APPLICATION_NAME: APP }, signal);
      try {
        const r = await burst(server, signal);
        const pass = r.other.size === 0 && r.ok + r.shed === BURST && r.ok > 0;
        out.push(...burstRows(`3. ${BURST} users.byId at once, default limits (100 running, 1000 waiting)`, r, `target: the excess shed with 429, every admitted call succeeds ${pass ? 'PASS' : 'FAIL'}`), '');
      } finally {
        await server.close();
      }
    }
    {
      // Every call of the storm admitted at once (as the chaos suite does): they contend for the pool.
      const server = await startOwnServer(db.url, { DB_APPLICATION_NAME: APP, MAX_IN_FLIGHT: String(STORM_CALLS), MAX_QUEUE: '0' }, signal);
      try {
        const r = await cancelStorm({ url: server.url, token: server.token, api: server.api, databaseUrl: db.url, applicationName: APP, calls: STORM_CALLS, signal });
        const lost = [...r.lostCancels.values()].reduce((a, b) => a + b, 0);
        const p99 = signalLatency(r).p99;
        const pass = lost === 0 && r.stillRunningAfter1s === 0 && r.signalFiredSettledOk === 0 && p99 < 250;
        out.push(
          `### 4. Cancel storm: ${STORM_CALLS} lab.sleep(5 s) aborted by their clients within 4 s (MAX_IN_FLIGHT=${STORM_CALLS})`,
          '',
          '| figure | value |',
          '| --- | --- |',
          ...stormFigures(r).map(([name, value]) => `| ${name.trim()} | ${String(value)} |`),
          `| server peak RSS MB | ${Math.round(peakRssBytes(server.child.pid) / 2 ** 20)} |`,
          '',
          `target: 0 lost cancels, 0 signal-fired-settled-OK, abort → signal p99 < 250 ms ${pass ? 'PASS' : 'FAIL'}`,
          '',
        );
      } finally {
        await server.close();
      }
    }
  } finally {
    await observer.end({ timeout: 2 });
    await db.close();
  }
  process.stdout.write(`${out.join('\n')}\n`);
}

runBench(main);
