/**
 * Scenario 5: one batched request of 1,000 lab.slowWrite calls (POST /trpc/a,a,…?batch=1) while a normal
 * client runs. Must: the normal client's calls succeed (≥ 95%), and the batch either runs whole (every
 * item OK) or is refused as a whole with one clear typed 4xx error (a batch limit) — never a 500, never
 * some of its own calls shed.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { call, type CallResult } from './http';
import { countBy, countsText, ms, percentile, pct, type ScenarioReport } from './figures';
import { SEEDED_USERS, type ServerUnderTest } from './harness';
import { NORMAL_SUCCESS_MIN } from './slow-bodies';
import { normalClient } from './normal-client';

const TYPED_REFUSALS = new Set(['BAD_REQUEST', 'PAYLOAD_TOO_LARGE', 'TOO_MANY_REQUESTS']);

interface ItemBody {
  result?: unknown;
  error?: { data?: { code?: string }; message?: string };
}

export async function greedyBatch(server: ServerUnderTest, options: { calls: number; slowWriteMs: number; signal: AbortSignal }): Promise<ScenarioReport> {
  const started = Date.now();
  const normal = normalClient(server.t, { maxMs: 30_000, users: SEEDED_USERS });
  let batch: CallResult;
  try {
    await sleep(500, undefined, { signal: options.signal });
    const path = `/trpc/${Array.from({ length: options.calls }, () => 'lab.slowWrite').join(',')}?batch=1`;
    const body = JSON.stringify(Object.fromEntries(Array.from({ length: options.calls }, (_, i) => [String(i), { label: `greedy-${i}`, ms: options.slowWriteMs }])));
    batch = await call(server.t, { method: 'POST', path, body, timeoutMs: 30_000, signal: options.signal });
    // The normal client goes on a little after the batch, so a refused batch still leaves a fair sample.
    const minRun = started + 5000 - Date.now();
    if (minRun > 0) await sleep(minRun, undefined, { signal: options.signal });
  } finally {
    await normal.stop();
  }
  const results = normal.results;
  const ok = results.filter((r) => r.code === 'OK').length;
  const items = Array.isArray(batch.data) ? (batch.data as ItemBody[]) : undefined;
  const itemCodes = items ? countBy(items, (item) => (item.error ? (item.error.data?.code ?? 'error') : 'OK')) : undefined;
  const allOk = items !== undefined && items.length === options.calls && itemCodes?.get('OK') === options.calls;
  const refusedCodes = items ? [...(itemCodes?.keys() ?? [])] : [batch.code];
  const refusedWhole = batch.status >= 400 && batch.status < 500 && refusedCodes.length === 1 && TYPED_REFUSALS.has(refusedCodes[0] ?? '');
  const firstMessage = items?.find((i) => i.error)?.error?.message ?? batch.message ?? '';
  const exited = server.exitedWith();
  const latencies = results.map((r) => r.endedAt - r.startedAt);
  return {
    title: `5. greedy batch: ${options.calls} × lab.slowWrite(${options.slowWriteMs} ms) in one request beside a normal client`,
    figures: [
      ['batch answer', `HTTP ${batch.status || batch.code} after ${ms(batch.endedAt - batch.startedAt)}`],
      ['batch items', itemCodes ? countsText(itemCodes) : `not an array: ${batch.code}`],
      ['batch error message', firstMessage.slice(0, 120) || 'none'],
      ['normal client success', pct(ok, results.length)],
      ['normal client errors', countsText(countBy(results.filter((r) => r.code !== 'OK'), (r) => r.code))],
      ['normal client p50 / p99 latency', `${ms(percentile(latencies, 50))} / ${ms(percentile(latencies, 99))}`],
      ['server process', exited === undefined ? 'alive' : `EXITED (${exited}) ${server.crashLine()}`],
      ['server peak RSS', `${server.peakRssMb()} MB`],
      ['wall time', ms(Date.now() - started)],
    ],
    checks: [
      { name: `normal client success ≥ ${NORMAL_SUCCESS_MIN * 100}% (and it made ≥ 20 calls)`, ok: results.length >= 20 && ok / results.length >= NORMAL_SUCCESS_MIN },
      { name: 'the batch ran whole, or was refused whole with one typed 4xx error (no 500, none of its calls shed)', ok: allOk || refusedWhole },
      { name: 'the server process never exited', ok: exited === undefined },
    ],
  };
}
