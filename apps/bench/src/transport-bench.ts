/**
 * `users.byId` through the typed client over each transport, against the same running servers, with the
 * same number of calls in flight: one WebSocket for all of them, `httpLink` (one HTTP request per call,
 * keep-alive connections), and the baseline server reached with plain `fetch`. Server CPU is the server
 * process's only (from /proc), per call.
 */
import { closeApiClient, createApiClient } from '@asyncscope/client';
import WebSocket from 'ws';
import { runClientLoad, type ClientLoadResult } from './client-load';
import { cpuMicros } from './measure';

export interface TransportRow {
  name: string;
  load: ClientLoadResult;
  cpuMicrosPerCall: number;
  /** One call at a time (ALONE_SECONDS): the latency of a lone call, without queueing behind the others. */
  alone: ClientLoadResult;
}

/** How long the one-call-at-a-time run of each transport lasts. */
export const ALONE_SECONDS = 3;

export interface TransportBenchOptions {
  trpc: { url: string; pid: number };
  baseline: { url: string; pid: number };
  token: string;
  /** The i-th user id to ask for. */
  userId: (i: number) => number;
  concurrency: number;
  seconds: number;
  warmupSeconds: number;
  signal: AbortSignal;
  log: (line: string) => void;
}

export async function measureTransports(options: TransportBenchOptions): Promise<TransportRow[]> {
  const { concurrency, seconds, warmupSeconds, signal, userId } = options;
  const url = `${options.trpc.url}/trpc`;
  const ws = createApiClient({ url, token: options.token, transport: 'websocket', WebSocket });
  const http = createApiClient({ url, token: options.token, transport: 'http' });
  const headers = { authorization: `Bearer ${options.token}` };
  const baselineCall = async (i: number, s: AbortSignal): Promise<unknown> => {
    const res = await fetch(`${options.baseline.url}/trpc/users.byId?input=${encodeURIComponent(JSON.stringify({ id: userId(i) }))}`, { headers, signal: s });
    if (!res.ok) throw new Error(`HTTP ${res.status}`);
    return res.json();
  };
  const candidates: { name: string; pid: number; call: (i: number, s: AbortSignal) => Promise<unknown> }[] = [
    { name: 'baseline (fetch)', pid: options.baseline.pid, call: baselineCall },
    // A signal makes the call go over httpLink, one request each: what cancellation over HTTP/1.1 costs.
    { name: 'trpc over httpLink', pid: options.trpc.pid, call: (i, s) => http.users.byId.query({ id: userId(i) }, { signal: s, context: { transport: 'single' } }) },
    { name: 'trpc over one WebSocket', pid: options.trpc.pid, call: (i, s) => ws.users.byId.query({ id: userId(i) }, { signal: s }) },
  ];
  const rows: TransportRow[] = [];
  try {
    for (const c of candidates) {
      options.log(`${c.name}: warm-up ${warmupSeconds} s, then ${seconds} s with ${concurrency} calls in flight`);
      await runClientLoad({ call: c.call, concurrency, seconds: warmupSeconds, signal });
      const before = cpuMicros(c.pid);
      const load = await runClientLoad({ call: c.call, concurrency, seconds, signal });
      const cpuMicrosPerCall = (cpuMicros(c.pid) - before) / Math.max(1, load.requests);
      options.log(`${c.name}: ${ALONE_SECONDS} s with one call at a time`);
      const alone = await runClientLoad({ call: c.call, concurrency: 1, seconds: ALONE_SECONDS, signal });
      rows.push({ name: c.name, load, cpuMicrosPerCall, alone });
    }
  } finally {
    await closeApiClient(ws);
  }
  return rows;
}

const fixed = (n: number, digits: number) => (Number.isFinite(n) ? n.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits }) : 'n/a');

export function transportReport(rows: TransportRow[], settings: string): string {
  const out = [
    '',
    `## users.byId per transport, through the typed client (${settings})`,
    '',
    `| client → server | calls/s | p50 ms | p99 ms | server CPU µs/call | errors | one call at a time (${ALONE_SECONDS} s): p50 / p99 ms |`,
    '| --- | ---: | ---: | ---: | ---: | ---: | ---: |',
    ...rows.map((r) => `| ${r.name} | ${fixed(r.load.reqPerSec, 0)} | ${fixed(r.load.p50Ms, 2)} | ${fixed(r.load.p99Ms, 2)} | ${fixed(r.cpuMicrosPerCall, 0)} | ${r.load.errors + r.alone.errors === 0 ? '0' : `**${r.load.errors + r.alone.errors}** (${r.load.firstError ?? r.alone.firstError ?? ''})`} | ${fixed(r.alone.p50Ms, 2)} / ${fixed(r.alone.p99Ms, 2)} |`),
    '',
  ];
  const ws = rows.find((r) => r.name.includes('WebSocket'));
  const http = rows.find((r) => r.name.includes('httpLink'));
  if (ws && http) {
    out.push(`WebSocket vs httpLink: ${fixed(ws.load.reqPerSec / http.load.reqPerSec, 2)}× the calls/s, ${fixed(ws.cpuMicrosPerCall / http.cpuMicrosPerCall, 2)}× the server CPU per call (target: < 1, the multiplexed transport costs less per call)`, '');
  }
  return out.join('\n');
}
