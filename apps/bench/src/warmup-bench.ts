/**
 * `pnpm bench:warmup`: how long a freshly started server takes to reach its steady CPU per call. `users.byId`
 * from the typed client over one WebSocket, at a fixed rate (BENCH_WARMUP_RATE calls/s, default 300; at most
 * 4 in flight, as the dashboard's lab at concurrency 4), in BENCH_WARMUP_WINDOWS windows (default 16) of
 * BENCH_WARMUP_WINDOW calls (default 250): the server's CPU µs per call (from /proc) and the calls' p50 per
 * window. At a fixed rate, a window's CPU per call is comparable with the next one's: a load that ran as fast
 * as it could would also speed up as the client warmed, and the server's cost per call falls with the rate
 * (more messages per wakeup). What a new instance behind a load balancer costs in its first seconds.
 * BENCH_SERVER_NODE_ARGS adds node flags (e.g. a V8 tier-up setting) to compare. It prints figures; it is not a test.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { closeApiClient, createApiClient, type ApiClient } from '@asyncscope/client';
import { runBench } from '@asyncscope/harness/children';
import WebSocket from 'ws';
import { openBenchDatabase } from './bench-db';
import { CLK_TCK, cpuMicros } from './measure';
import { startOwnServer } from './own-server';

const env = process.env;
const RATE = Number(env.BENCH_WARMUP_RATE ?? 300);
const WINDOWS = Number(env.BENCH_WARMUP_WINDOWS ?? 16);
const WINDOW = Number(env.BENCH_WARMUP_WINDOW ?? 250);
const IN_FLIGHT = 4;
const USERS = 1000;
const log = (line: string) => { process.stderr.write(`bench: ${line}\n`); };

interface Window { calls: string; cpuMicrosPerCall: number; p50Ms: number; callsPerSecond: number }

async function main(signal: AbortSignal): Promise<void> {
  const db = await openBenchDatabase({ adminUrl: env.BENCH_DATABASE_URL, users: USERS, signal });
  const server = await startOwnServer(db.url, {}, signal).catch(async (error: unknown) => {
    await db.close();
    throw error;
  });
  try {
    const ws = createApiClient({ url: `${server.url}/trpc`, token: server.token, transport: 'websocket', WebSocket });
    try {
      await measure(ws, server.child.pid, db.description, signal);
    } finally {
      await closeApiClient(ws);
    }
  } finally {
    await server.close();
    await db.close();
  }
}

/** The windows, then the report. A failed call stops the other workers (they share `run`). */
async function measure(ws: ApiClient, pid: number, database: string, signal: AbortSignal): Promise<void> {
  const run = new AbortController();
  const stop = (): void => { run.abort(signal.reason); };
  signal.addEventListener('abort', stop, { once: true });
  try {
    log(`${WINDOWS} windows of ${WINDOW} users.byId calls at ${RATE} calls/s over one WebSocket, from the server's start`);
    const started = performance.now();
    const windows: Window[] = [];
    let next = 0;
    for (let w = 0; w < WINDOWS; w++) {
      const end = next + WINDOW;
      const latencies: number[] = [];
      const cpuBefore = cpuMicros(pid);
      const t0 = performance.now();
      await Promise.all(
        Array.from({ length: IN_FLIGHT }, async () => {
          while (next < end) {
            const i = next++;
            // Call i goes out at its time on the schedule, or as soon as a slot frees after it.
            const wait = started + (i * 1000) / RATE - performance.now();
            if (wait > 0) await sleep(wait, undefined, { signal: run.signal });
            const sent = performance.now();
            await ws.users.byId.query({ id: 1 + (i % USERS) }, { signal: run.signal });
            latencies.push(performance.now() - sent);
          }
        }),
      );
      const seconds = (performance.now() - t0) / 1000;
      latencies.sort((a, b) => a - b);
      windows.push({
        calls: `${end - WINDOW + 1}–${end}`,
        cpuMicrosPerCall: (cpuMicros(pid) - cpuBefore) / WINDOW,
        p50Ms: latencies[Math.floor(latencies.length / 2)] ?? Number.NaN,
        callsPerSecond: WINDOW / seconds,
      });
    }
    const last = windows.slice(-4).map((w) => w.cpuMicrosPerCall).sort((a, b) => a - b);
    const mid = Math.floor(last.length / 2);
    const steady = last.length % 2 === 1 ? (last[mid] ?? Number.NaN) : ((last[mid - 1] ?? Number.NaN) + (last[mid] ?? Number.NaN)) / 2;
    const firstUnder = windows.findIndex((w) => w.cpuMicrosPerCall <= steady * 1.25);
    process.stdout.write(
      [
        '',
        `## Warm-up of a fresh server (node ${process.version}, ${database}${env.BENCH_SERVER_NODE_ARGS ? `, server flags ${env.BENCH_SERVER_NODE_ARGS}` : ''})`,
        '',
        `users.byId at ${RATE} calls/s (at most ${IN_FLIGHT} in flight) over one WebSocket, from the server's start. CPU is read from /proc in clock ticks of ${(1e6 / CLK_TCK).toLocaleString('en-US')} µs: a window resolves ${(1e6 / CLK_TCK / WINDOW).toFixed(0)} µs per call.`,
        '',
        '| calls | server CPU µs/call | p50 ms | calls/s |',
        '| --- | ---: | ---: | ---: |',
        ...windows.map((w) => `| ${w.calls} | ${w.cpuMicrosPerCall.toFixed(0)} | ${w.p50Ms.toFixed(2)} | ${w.callsPerSecond.toFixed(0)} |`),
        '',
        `Steady (median of the last ${last.length} windows): ${steady.toFixed(0)} µs per call; the first window cost ${((windows[0]?.cpuMicrosPerCall ?? Number.NaN) / steady).toFixed(2)}× that; ` +
          (firstUnder >= 0 ? `within 25 % of it from window ${firstUnder + 1} (call ${firstUnder * WINDOW + 1}, ${((firstUnder * WINDOW) / RATE).toFixed(1)} s in).` : 'never within 25 % of it.'),
        '',
      ].join('\n'),
    );
  } catch (error) {
    run.abort(error);
    throw error;
  } finally {
    signal.removeEventListener('abort', stop);
  }
}

runBench(main);
