/**
 * `pnpm bench:workers`: users.byId req/s of the built server with WORKERS=1 and WORKERS=2 (node:cluster, one
 * port), in the same run, on one seeded database and a nats-server of its own (WORKERS > 1 needs EVENTS_URL;
 * the 1-worker run is measured both without a broker, the zero-setup default, and with it).
 *
 *   BENCH_DATABASE_URL  a PostgreSQL server to create the bench database on (default: embedded, in a temp dir)
 *   BENCH_SECONDS       measured seconds per configuration (default 10)
 *   BENCH_CONNECTIONS   concurrent connections (default 50)
 *
 * The load generator (autocannon, in this process), the workers and PostgreSQL share the machine's cores: on 2
 * cores a second worker competes with them, so read the figures as what this machine gives, not as scaling.
 */
import { cpus, loadavg } from 'node:os';
import { fileURLToPath } from 'node:url';
import { startApiServer } from '@asyncscope/harness/api-server';
import { runBench } from '@asyncscope/harness/children';
import { startNats } from '@asyncscope/harness/cluster';
import { openBenchDatabase } from './bench-db';
import { runLoad } from './measure';

const USERS = 10_000;
const env = process.env;
const seconds = Number(env.BENCH_SECONDS || 10);
const connections = Number(env.BENCH_CONNECTIONS || 50);
const path = (i: number) => `/trpc/users.byId?input=${encodeURIComponent(JSON.stringify({ id: (i % USERS) + 1 }))}`;
const log = (line: string) => { process.stderr.write(`bench: ${line}\n`); };

runBench(async (signal) => {
  const loadStart = loadavg()[0] ?? 0;
  const database = await openBenchDatabase({ adminUrl: env.BENCH_DATABASE_URL || undefined, users: USERS, signal });
  const nats = await startNats({ signal });
  const rows: string[] = [];
  try {
    const configurations: { name: string; env: Record<string, string> }[] = [
      { name: 'WORKERS=1, no EVENTS_URL', env: { WORKERS: '1' } },
      { name: 'WORKERS=1, EVENTS_URL', env: { WORKERS: '1', EVENTS_URL: nats.url } },
      { name: 'WORKERS=2, EVENTS_URL', env: { WORKERS: '2', EVENTS_URL: nats.url } },
    ];
    for (const configuration of configurations) {
      const server = await startApiServer(database.url, { DB_POOL_MAX: '20', LOG_LEVEL: 'warn', ...configuration.env }, signal, { serverDir: fileURLToPath(new URL('../../server', import.meta.url)) });
      try {
        const load = { url: server.url, path, headers: { authorization: `Bearer ${server.token}` }, connections, signal };
        log(`${configuration.name}: warm-up 2 s, then ${seconds} s with ${connections} connections`);
        await runLoad({ ...load, seconds: 2 });
        const result = await runLoad({ ...load, seconds });
        rows.push(`| ${configuration.name} | ${Math.round(result.reqPerSec)} | ${result.p50Ms} | ${result.p99Ms} | ${result.non2xx + result.errors} |`);
      } finally {
        await server.close();
      }
    }
  } finally {
    await nats.stop();
    await database.close();
  }
  const cpu = cpus();
  process.stdout.write(
    [
      '',
      `## users.byId with 1 and 2 workers (${seconds} s, ${connections} connections; node ${process.version}, ${cpu.length} × ${cpu[0]?.model.trim() ?? 'cpu'}, load average before ${loadStart.toFixed(1)})`,
      '',
      '| configuration | req/s | p50 ms | p99 ms | errors |',
      '| --- | ---: | ---: | ---: | ---: |',
      ...rows,
      '',
    ].join('\n'),
  );
});
