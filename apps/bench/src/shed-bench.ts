/**
 * `pnpm bench:shed`: how fast a full server answers the calls it sheds (429). BENCH_SHED_BURST (default
 * 5,000) `users.byId` requests opened at once, each on a connection of its own, against the server with its
 * default limits (100 running, 1,000 waiting, 250 per client): three rounds, each printing the 429s' latency
 * counted from the request's creation and from its TCP connection being up (which leaves out this
 * process's own time to open 5,000 sockets; it shares the cores with the server and PostgreSQL). A figure,
 * not a test.
 *
 *   BENCH_DATABASE_URL  a PostgreSQL server to create the bench database on (default: embedded, in a temp dir)
 */
import { setMaxListeners } from 'node:events';
import { request, Agent } from 'node:http';
import { openBenchDatabase } from './bench-db';
import { startOwnServer, type ApiServer } from './own-server';
import { runBench } from '@asyncscope/harness/children';

const BURST = Number(process.env.BENCH_SHED_BURST ?? 5000);
const ROUNDS = 3;

interface Outcome { status: number | string; fromStart: number; fromConnect: number }

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;
}

function one(server: ApiServer, agent: Agent, signal: AbortSignal): Promise<Outcome> {
  const url = new URL(server.url);
  return new Promise((resolve) => {
    const started = performance.now();
    let connected = started;
    const req = request({ host: url.hostname, port: url.port, path: '/trpc/users.byId?input=%7B%22id%22%3A1%7D', agent, signal, headers: { authorization: `Bearer ${server.token}` } }, (res) => {
      res.resume();
      res.once('end', () => {
        const now = performance.now();
        resolve({ status: res.statusCode ?? 0, fromStart: now - started, fromConnect: now - connected });
      });
    });
    req.once('socket', (socket) => { socket.once('connect', () => { connected = performance.now(); }); });
    req.once('error', (error: NodeJS.ErrnoException) => {
      const now = performance.now();
      resolve({ status: error.code ?? 'error', fromStart: now - started, fromConnect: now - connected });
    });
    req.end();
  });
}

async function round(server: ApiServer, signal: AbortSignal): Promise<string> {
  const agent = new Agent({ keepAlive: false, maxSockets: Infinity });
  try {
    const outcomes = await Promise.all(Array.from({ length: BURST }, () => one(server, agent, signal)));
    const shed = outcomes.filter((o) => o.status === 429);
    const ok = outcomes.filter((o) => o.status === 200).length;
    const other = outcomes.length - shed.length - ok;
    const fromStart = shed.map((o) => o.fromStart).sort((a, b) => a - b);
    const fromConnect = shed.map((o) => o.fromConnect).sort((a, b) => a - b);
    const ms = (xs: number[]) => `p50 ${Math.round(percentile(xs, 50))} / p99 ${Math.round(percentile(xs, 99))} / max ${Math.round(xs.at(-1) ?? NaN)} ms`;
    return `| ${ok} | ${shed.length} | ${other} | ${ms(fromStart)} | ${ms(fromConnect)} |`;
  } finally {
    agent.destroy();
  }
}

async function main(signal: AbortSignal): Promise<void> {
  setMaxListeners(0, signal); // every request of a burst listens to it
  const db = await openBenchDatabase({ adminUrl: process.env.BENCH_DATABASE_URL, users: 1000, signal });
  const out = ['', `## Shed latency: ${BURST} users.byId at once, default limits (node ${process.version}, ${db.description})`, '', '| 200 | 429 | other | 429 latency from request creation | 429 latency from TCP connect |', '| --- | --- | --- | --- | --- |'];
  try {
    const server = await startOwnServer(db.url, {}, signal);
    try {
      for (let i = 0; i < ROUNDS; i++) {
        out.push(await round(server, signal));
        await new Promise((resolve) => setTimeout(resolve, 1000)); // let the admitted calls finish
      }
    } finally {
      await server.close();
    }
  } finally {
    await db.close();
  }
  process.stdout.write(`${out.join('\n')}\n`);
}

runBench(main);
