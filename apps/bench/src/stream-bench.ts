/**
 * `pnpm bench:stream`: users.stream over SSE through a table of BENCH_STREAM_USERS users (default
 * 1,000,000): rows per second, and the server's resident memory sampled while it streams — it must stay
 * flat (keyset pages, one page in memory at a time), whatever the table's size. Then a stream cancelled
 * midway: how long until the server's generator has ended (its call settles in activity.events).
 * BENCH_STREAM_PAGE sets the stream's pageSize (default 1000, the largest a client may ask for).
 * It prints figures; it is not a test.
 */
import { readFileSync } from 'node:fs';
import { openBenchDatabase } from './bench-db';
import { startOwnServer } from './own-server';
import { runBench } from '@asyncscope/harness/children';

const env = process.env;
const USERS = Number(env.BENCH_STREAM_USERS ?? 1_000_000);
const PAGE = Number(env.BENCH_STREAM_PAGE ?? 1000);
const log = (line: string) => { process.stderr.write(`bench: ${line}\n`); };

function rssMb(pid: number): number {
  const match = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return match ? Number(match[1]) / 1024 : NaN;
}

/** The process's CPU time (user + system) in µs, from /proc (clock ticks of 10 ms): steadier than rows/s on a shared machine. */
function cpuMicros(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.split(' ') ?? [];
  return (Number(fields[11]) + Number(fields[12])) * 10_000;
}

async function main(signal: AbortSignal): Promise<void> {
  log(`seeding ${USERS} users`);
  const db = await openBenchDatabase({ adminUrl: env.BENCH_DATABASE_URL, users: USERS, signal });
  const server = await startOwnServer(db.url, {}, signal).catch(async (error: unknown) => {
    await db.close();
    throw error;
  });
  const { child, api } = server;
  try {
    const samples: number[] = [rssMb(child.pid)];
    const sampler = setInterval(() => { samples.push(rssMb(child.pid)); }, 100);
    const started = performance.now();
    const cpuStarted = cpuMicros(child.pid);
    let rows = 0;
    try {
      await new Promise<void>((resolve, reject) => {
        const sub = api.users.stream.subscribe({ pageSize: PAGE }, {
          onData: ({ data }) => {
            rows += data.items.length;
            if (rows % 100_000 < PAGE) log(`${rows} rows, server RSS ${Math.round(rssMb(child.pid))} MB`);
            if (data.sent >= data.total) {
              sub.unsubscribe();
              resolve();
            }
          },
          onError: reject,
        });
        signal.addEventListener('abort', () => { sub.unsubscribe(); reject(signal.reason as Error); }, { once: true });
      });
    } finally {
      clearInterval(sampler);
    }
    const seconds = (performance.now() - started) / 1000;
    const cpuPerRow = (cpuMicros(child.pid) - cpuStarted) / rows;
    const sorted = samples.filter(Number.isFinite).sort((a, b) => a - b);
    const first10 = samples.slice(0, Math.max(1, Math.floor(samples.length / 10)));

    // Cancel midway: unsubscribe after a few pages, then time until the server says the call settled.
    const cancelStarted = { at: 0 };
    const settledMs = await new Promise<number>((resolve, reject) => {
      let pages = 0;
      const watcher = api.activity.events.subscribe({}, {
        onData: ({ data }) => {
          if (cancelStarted.at > 0 && data.events.some((e) => e.path === 'users.stream' && e.type === 'settled')) {
            watcher.unsubscribe();
            resolve(performance.now() - cancelStarted.at);
          }
        },
        onError: reject,
      });
      const sub = api.users.stream.subscribe({ pageSize: PAGE }, {
        onData: () => {
          if (++pages === 5) {
            cancelStarted.at = performance.now();
            sub.unsubscribe();
          }
        },
        onError: reject,
      });
    });

    process.stdout.write(
      [
        '',
        `## Streaming benchmark (node ${process.version}, ${db.description})`,
        '',
        '| rows | pages of | seconds | rows/s | server CPU µs/row | server RSS at start MB | median MB | max MB |',
        '| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
        `| ${rows} | ${PAGE} | ${seconds.toFixed(1)} | ${Math.round(rows / seconds)} | ${cpuPerRow.toFixed(2)} | ${Math.round(Math.max(...first10))} | ${Math.round(sorted[Math.floor(sorted.length / 2)] ?? NaN)} | ${Math.round(sorted.at(-1) ?? NaN)} |`,
        '',
        `A stream cancelled after 5 pages: the server's generator ended ${settledMs.toFixed(1)} ms after the client unsubscribed.`,
        '',
      ].join('\n'),
    );
  } finally {
    await server.close();
    await db.close();
  }
}

runBench(main);
