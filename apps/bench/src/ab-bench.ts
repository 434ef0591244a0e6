/**
 * `pnpm bench:ab`: this checkout's server build (A) against another build of it (B), back to back on one
 * database: `users.byId` (or `users.list {limit:50}` with BENCH_AB_PROCEDURE=list) under 100 connections,
 * A, B, A, B, … (a 2 s warm-up before each run), req/s and the server's CPU µs per call from /proc. How each
 * change in README *What the profiles taught* is measured against the build before it. It prints figures; it
 * is not a test.
 *
 *   BENCH_AB_DIR      B: a folder inside apps/server (so that its node_modules resolve) holding the other
 *                     build's package.json and dist/, e.g. before a change:
 *                       mkdir -p apps/server/ab && cp -r apps/server/package.json apps/server/dist apps/server/ab/
 *                     (default: A again, which shows the machine's noise)
 *   BENCH_AB_RUNS     pairs of runs (default 4); BENCH_AB_SECONDS measured seconds per run (default 6)
 *   BENCH_DATABASE_URL  a PostgreSQL server to create the bench database on (default: embedded)
 *   BENCH_SERVER_NODE_ARGS  extra node flags for both servers (e.g. `--cpu-prof --cpu-prof-dir=/tmp/prof`)
 */
import { fileURLToPath } from 'node:url';
import { startApiServer, type ApiServer } from '@asyncscope/harness/api-server';
import { openBenchDatabase } from './bench-db';
import { cpuMicros, runLoad } from './measure';

const USERS = 10_000;
const env = process.env;
const dirA = fileURLToPath(new URL('../../server', import.meta.url));
const dirB = env.BENCH_AB_DIR ?? dirA;
const runs = Number(env.BENCH_AB_RUNS ?? 4);
const seconds = Number(env.BENCH_AB_SECONDS ?? 6);
const list = env.BENCH_AB_PROCEDURE === 'list';
const path = list
  ? () => `/trpc/users.list?input=${encodeURIComponent(JSON.stringify({ limit: 50 }))}`
  : (i: number) => `/trpc/users.byId?input=${encodeURIComponent(JSON.stringify({ id: (i % USERS) + 1 }))}`;
const token = `ab-${Math.random().toString(36).slice(2)}-0123456789`;
const headers = { authorization: `Bearer ${token}` };

const median = (values: number[]): number => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? NaN;
};

async function main(signal: AbortSignal): Promise<void> {
  const db = await openBenchDatabase({ adminUrl: env.BENCH_DATABASE_URL || undefined, users: USERS, signal });
  const servers: ApiServer[] = [];
  try {
    const serverEnv = { DB_POOL_MAX: '10', DB_APPLICATION_NAME: 'asyncscope-bench' };
    const nodeArgs = (env.BENCH_SERVER_NODE_ARGS ?? '').split(' ').filter(Boolean);
    servers.push(await startApiServer(db.url, serverEnv, signal, { serverDir: dirA, token, nodeArgs }));
    servers.push(await startApiServer(db.url, serverEnv, signal, { serverDir: dirB, token, nodeArgs }));
    const rows: Record<'A' | 'B', { reqPerSec: number; cpu: number }[]> = { A: [], B: [] };
    console.log(`A ${dirA}\nB ${dirB}\n${list ? 'users.list {limit:50}' : 'users.byId'}, 100 connections, ${runs} pairs of ${seconds} s`);
    for (let run = 0; run < runs; run++) {
      for (const [name, server] of [['A', servers[0]], ['B', servers[1]]] as const) {
        if (!server) continue;
        await runLoad({ url: server.url, path, headers, seconds: 2, connections: 100, signal });
        const before = cpuMicros(server.child.pid);
        const load = await runLoad({ url: server.url, path, headers, seconds, connections: 100, signal });
        if (load.non2xx > 0 || load.errors > 0) throw new Error(`${name}: ${load.problems.join(', ')}`);
        const cpu = (cpuMicros(server.child.pid) - before) / load.requests;
        rows[name].push({ reqPerSec: load.reqPerSec, cpu });
        console.log(`${name} run ${run + 1}: ${Math.round(load.reqPerSec)} req/s, ${Math.round(cpu)} µs server CPU per call`);
      }
    }
    for (const name of ['A', 'B'] as const) {
      const r = rows[name];
      console.log(`${name} median: ${Math.round(median(r.map((x) => x.reqPerSec)))} req/s, ${Math.round(median(r.map((x) => x.cpu)))} µs per call`);
    }
  } finally {
    for (const server of servers) await server.close();
    await db.close();
  }
}

const controller = new AbortController();
process.once('SIGINT', () => { controller.abort(new Error('interrupted')); });
await main(controller.signal);
