/**
 * `pnpm bench:ab`: this checkout's server build (A) against another build of it (B), back to back on one
 * database: `users.byId` (or `users.list {limit:50}` with BENCH_AB_PROCEDURE=list) under 100 connections,
 * A, B, A, B, … (a 2 s warm-up before each run), req/s and the server's CPU µs per call from /proc; or, with
 * BENCH_AB_PROCEDURE=stream, `users.stream` through the whole table (BENCH_AB_USERS, default 300,000; pages
 * of 1,000) over SSE with the typed client: rows/s and CPU µs per row. How each
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
 *   BENCH_SERVER_NODE_ARGS_B  more node flags for B alone: one build with and without a flag or a preloaded
 *                     module (`--import=/abs/path.mjs`), e.g. `--max-semi-space-size=32`
 *   BENCH_LOG_LEVEL   both servers' LOG_LEVEL (default warn, as every bench; `info` writes the request log)
 */
import { fileURLToPath } from 'node:url';
import { startApiServer, type ApiServer } from '@asyncscope/harness/api-server';
import { openBenchDatabase } from './bench-db';
import { cpuMicros, runLoad } from './measure';
import { median } from './stats';

const env = process.env;
const procedure = env.BENCH_AB_PROCEDURE ?? 'byId';
if (!['byId', 'list', 'stream'].includes(procedure)) throw new Error(`BENCH_AB_PROCEDURE: byId, list or stream, not ${procedure}`);
const stream = procedure === 'stream';
const USERS = Number(env.BENCH_AB_USERS ?? (stream ? 300_000 : 10_000));
const dirA = fileURLToPath(new URL('../../server', import.meta.url));
const dirB = env.BENCH_AB_DIR ?? dirA;
const runs = Number(env.BENCH_AB_RUNS ?? 4);
const seconds = Number(env.BENCH_AB_SECONDS ?? 6);
const list = procedure === 'list';
const path = list
  ? () => `/trpc/users.list?input=${encodeURIComponent(JSON.stringify({ limit: 50 }))}`
  : (i: number) => `/trpc/users.byId?input=${encodeURIComponent(JSON.stringify({ id: (i % USERS) + 1 }))}`;
const token = `ab-${Math.random().toString(36).slice(2)}-0123456789`;
const headers = { authorization: `Bearer ${token}` };

/** One pass of users.stream over the whole table: rows delivered and seconds taken. */
async function streamAll(server: ApiServer, signal: AbortSignal): Promise<{ rows: number; seconds: number }> {
  const started = performance.now();
  let rows = 0;
  await new Promise<void>((resolve, reject) => {
    const sub = server.api.users.stream.subscribe({ pageSize: 1000 }, {
      onData: ({ data }) => {
        rows += data.items.length;
        if (data.sent >= data.total) {
          sub.unsubscribe();
          signal.removeEventListener('abort', onAbort);
          resolve();
        }
      },
      onError: (error) => { signal.removeEventListener('abort', onAbort); reject(error); },
    });
    const onAbort = () => { sub.unsubscribe(); reject(signal.reason as Error); };
    signal.addEventListener('abort', onAbort, { once: true });
  });
  return { rows, seconds: (performance.now() - started) / 1000 };
}

async function main(signal: AbortSignal): Promise<void> {
  const db = await openBenchDatabase({ adminUrl: env.BENCH_DATABASE_URL || undefined, users: USERS, signal });
  const servers: ApiServer[] = [];
  try {
    // BENCH_LOG_LEVEL=info: both servers write their request log (a line per call), as `pnpm start` does.
    const serverEnv = { DB_POOL_MAX: '10', DB_APPLICATION_NAME: 'asyncscope-bench', ...(env.BENCH_LOG_LEVEL ? { LOG_LEVEL: env.BENCH_LOG_LEVEL } : {}) };
    const nodeArgs = (env.BENCH_SERVER_NODE_ARGS ?? '').split(' ').filter(Boolean);
    const nodeArgsB = [...nodeArgs, ...(env.BENCH_SERVER_NODE_ARGS_B ?? '').split(' ').filter(Boolean)];
    servers.push(await startApiServer(db.url, serverEnv, signal, { serverDir: dirA, token, nodeArgs }));
    servers.push(await startApiServer(db.url, serverEnv, signal, { serverDir: dirB, token, nodeArgs: nodeArgsB }));
    const rows: Record<'A' | 'B', { reqPerSec: number; cpu: number }[]> = { A: [], B: [] };
    const what = stream ? `users.stream over ${USERS} users, pages of 1000` : `${list ? 'users.list {limit:50}' : 'users.byId'}, 100 connections`;
    console.log(`A ${dirA}\nB ${dirB}${nodeArgsB.length > nodeArgs.length ? ` with ${nodeArgsB.slice(nodeArgs.length).join(' ')}` : ''}\n${what}, ${runs} pairs${stream ? '' : ` of ${seconds} s`}`);
    for (let run = 0; run < runs; run++) {
      for (const [name, server] of [['A', servers[0]], ['B', servers[1]]] as const) {
        if (!server) continue;
        if (stream) {
          const before = cpuMicros(server.child.pid);
          const pass = await streamAll(server, signal);
          const cpu = (cpuMicros(server.child.pid) - before) / pass.rows;
          rows[name].push({ reqPerSec: pass.rows / pass.seconds, cpu });
          console.log(`${name} run ${run + 1}: ${Math.round(pass.rows / pass.seconds)} rows/s, ${cpu.toFixed(2)} µs server CPU per row`);
          continue;
        }
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
      const unit = stream ? ['rows/s', 'row'] : ['req/s', 'call'];
      console.log(`${name} median: ${Math.round(median(r.map((x) => x.reqPerSec)))} ${unit[0]}, ${median(r.map((x) => x.cpu)).toFixed(stream ? 2 : 0)} µs per ${unit[1]}`);
    }
  } finally {
    for (const server of servers) await server.close();
    await db.close();
  }
}

const controller = new AbortController();
process.once('SIGINT', () => { controller.abort(new Error('interrupted')); });
await main(controller.signal);
