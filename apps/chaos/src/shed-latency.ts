/**
 * Scenario 6: shed calls must be answered at once. A burst of `calls` lab.sleep(2 s) requests against the
 * default limits (100 running + 1,000 waiting): everything beyond is answered 429. The burst goes out in
 * waves of 250 every 20 ms.
 *
 * Two latencies: the server's own time for a 429 (its `server-timing` header: from reading the request to
 * answering it), which must be p99 < 50 ms; and the client's (request written → answer), printed as a
 * figure only. The client's also holds the time a request waited to be read while the server accepted 5,000
 * new connections, and the time this load generator's own event loop (5,000 sockets, in the test process)
 * took to see the answer, on 2 cores shared with PostgreSQL: it measures the machine, not the shedding.
 * As a pass/fail limit it failed CI at 1 s and at 1.5 s for the same code (0.94–1.2 s p99 in quiet runs
 * here; more on CI's machine). A server that stops answering is caught by the count instead: every call
 * beyond the admitted ones must have its 429 within 5 s of the burst. The in-server bound is what proves
 * the fix (before it, shed calls waited behind admitted work).
 */
import { setMaxListeners } from 'node:events';
import { Agent } from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';
import { query, type CallResult } from './http';
import { countBy, countsText, ms, percentile, type ScenarioReport } from './figures';
import type { ServerUnderTest } from './harness';

export const SHED_P99_LIMIT_MS = 50;

export async function shedLatency(server: ServerUnderTest, options: { calls: number; signal: AbortSignal }): Promise<ScenarioReport> {
  const started = Date.now();
  const agent = new Agent({ keepAlive: false, maxSockets: Infinity });
  const t = { ...server.t, agent };
  const controller = new AbortController();
  setMaxListeners(0, controller.signal); // one listener per call of the burst
  const onAbort = () => { controller.abort(); };
  options.signal.addEventListener('abort', onAbort, { once: true });
  const pending: Promise<CallResult>[] = [];
  try {
    for (let i = 0; i < options.calls; i += 250) {
      for (let j = i; j < Math.min(options.calls, i + 250); j++) {
        pending.push(query(t, 'lab.sleep', { ms: 2000 }, { signal: controller.signal, timeoutMs: 15_000 }));
      }
      await sleep(20);
    }
    // Shed calls should answer at once; give a slow server 5 s to answer them all, then stop waiting for
    // the admitted sleeps (the queued ones would take 20 s).
    await sleep(5000, undefined, { signal: options.signal });
  } finally {
    controller.abort();
    options.signal.removeEventListener('abort', onAbort);
  }
  const results = await Promise.all(pending);
  agent.destroy();
  const shed = results.filter((r) => r.code === 'TOO_MANY_REQUESTS');
  // From the request on the wire (connected, written) to the answer: the client's own connection set-up
  // for 5,000 sockets is not the server's shedding.
  const latencies = shed.map((r) => r.endedAt - (r.sentAt ?? r.startedAt));
  const serverMs = shed.flatMap((r) => (r.serverMs === undefined ? [] : [r.serverMs]));
  const exited = server.exitedWith();
  return {
    title: `6. shed latency: ${options.calls} lab.sleep(2 s) at once against 100 running + 1,000 waiting`,
    figures: [
      ['answers within 5 s of the burst', countsText(countBy(results, (r) => (r.code === 'ABORTED' ? 'still running (admitted)' : r.code)))],
      ['429 inside the server (server-timing) p50 / p99 / max', `${percentile(serverMs, 50).toFixed(2)} / ${percentile(serverMs, 99).toFixed(2)} / ${serverMs.length ? Math.max(...serverMs).toFixed(2) : 'n/a'} ms (${serverMs.length} of ${shed.length})`],
      ['429 seen by the client (written → answer) p50 / p99 / max', `${ms(percentile(latencies, 50))} / ${ms(percentile(latencies, 99))} / ${ms(latencies.length ? Math.max(...latencies) : undefined)}`],
      ['server process', exited === undefined ? 'alive' : `EXITED (${exited}) ${server.crashLine()}`],
      ['server peak RSS', `${server.peakRssMb()} MB`],
      ['wall time', ms(Date.now() - started)],
    ],
    checks: [
      { name: `at least ${options.calls - 1200} calls shed with 429 within 5 s of the burst (all beyond 1,100 admitted, give or take 100 that finished)`, ok: shed.length >= options.calls - 1200 },
      { name: `429 answered inside the server p99 < ${SHED_P99_LIMIT_MS} ms (every 429 says so)`, ok: serverMs.length === shed.length && percentile(serverMs, 99) < SHED_P99_LIMIT_MS },
      { name: 'the server process never exited', ok: exited === undefined },
    ],
  };
}
