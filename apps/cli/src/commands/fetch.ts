/**
 * asyncscope fetch: the guide's concurrent fetch (fetch_multiple_users) done with the client's policy —
 * bounded concurrency, each call named and given a deadline and retries (callWithPolicy) — with a live
 * progress bar, counts per outcome, latency percentiles and throughput. Ctrl+C cancels every call in
 * flight on the server (calls.cancel) and prints what the server stopped.
 */
import { randomBytes } from 'node:crypto';
import { setMaxListeners } from 'node:events';
import { apiErrorCode, callWithPolicy, type ApiClient, type ApiTransport } from '@asyncscope/client';
import { MAX_CANCEL_IDS, type CancelStatus } from '@asyncscope/contract';
import { Presets, SingleBar } from 'cli-progress';
import { Option, type Command } from 'commander';
import { interruptSignal, preflight, withClient } from '../client';
import type { Config } from '../config';
import { Interrupted, isUnreachable, PartialFailure } from '../errors';
import { ms, parseDuration, parseIds, parseInteger, percentile } from '../format';
import type { Run } from './users';

interface FetchOptions {
  ids: string;
  concurrency: string;
  timeout: string;
  retries: string;
  failFast?: boolean;
  transport: ApiTransport;
  progress: boolean;
}

/**
 * What the server said of each call it was asked to stop, by status, and what the calls' own hops
 * (activity.events) then showed each of them went through on the server.
 */
type CancelReport = Record<CancelStatus, number> & { failed?: string; hops?: StopHops };

/** From the hops of the cancelled calls: how each stopped on the server. */
interface StopHops {
  /** Its statement was running in Postgres and ended with 57014 (query_canceled). */
  sqlCancelled: number;
  /** Its statement was waiting for a pool connection: taken out of the queue, never sent. */
  dequeued: number;
  /** Stopped before any SQL (waiting for admission, or between steps). */
  beforeSql: number;
  /** Settled hops seen (of the calls the server said it cancelled). */
  settled: number;
}

/**
 * Follows the activity stream from now, and resolves once each of `callIds` has settled (or `timeoutMs`
 * passed) with how they stopped. `ready` resolves when the stream runs, so the caller cancels after it.
 */
function watchStops(client: ApiClient, callIds: readonly string[], timeoutMs: number): { ready: Promise<void>; done: Promise<StopHops> } {
  const want = new Set(callIds);
  const seen = new Map<string, { statement: boolean; sql57014: boolean; dequeued: boolean }>();
  const settled = new Set<string>();
  let markReady: () => void = () => undefined;
  const ready = new Promise<void>((resolve) => { markReady = resolve; });
  const done = new Promise<StopHops>((resolve) => {
    const finish = (): void => {
      clearTimeout(timer);
      subscription.unsubscribe();
      markReady();
      let sqlCancelled = 0;
      let dequeued = 0;
      let beforeSql = 0;
      for (const id of settled) {
        const s = seen.get(id);
        if (s?.dequeued) dequeued++;
        else if (s?.sql57014) sqlCancelled++;
        else if (!s?.statement) beforeSql++;
      }
      resolve({ sqlCancelled, dequeued, beforeSql, settled: settled.size });
    };
    const timer = setTimeout(finish, timeoutMs);
    const subscription = client.activity.events.subscribe({ replay: false }, {
      onStarted: () => { markReady(); },
      onData: ({ data }) => {
        for (const e of data.events) {
          if (!want.has(e.callId)) continue;
          const s = seen.get(e.callId) ?? { statement: false, sql57014: false, dequeued: false };
          if (e.type === 'statement.started') s.statement = true;
          if (e.type === 'statement.ended' && e.sqlstate === '57014') s.sql57014 = true;
          if (e.type === 'cancel.sent' && e.queued) s.dequeued = true;
          seen.set(e.callId, s);
          if (e.type === 'settled') settled.add(e.callId);
        }
        if (settled.size >= want.size) finish();
      },
      // No stream (it failed): report what calls.cancel said, without the hops.
      onError: () => { finish(); },
    });
  });
  return { ready, done };
}

export interface FetchSummary {
  ids: number;
  settled: number;
  notStarted: number;
  elapsedMs: number;
  callsPerSecond: number;
  outcomes: Record<string, number>;
  /** Of the calls that succeeded: from the first attempt to the answer, retries included. */
  latencyMs: { p50: number; p90: number; p99: number; max: number } | null;
  stopped?: { by: 'interrupt' | 'fail-fast'; inFlight: number; server?: CancelReport };
}

/** The outcome of a failed call, by the server's code where there is one. */
function outcomeOf(error: unknown): string {
  const code = apiErrorCode(error);
  if (code) return code;
  if (error instanceof Error && error.name === 'TimeoutError') return 'TIMEOUT';
  if (isUnreachable(error)) return 'CONNECTION_LOST';
  if (error instanceof Error && error.name === 'AbortError') return 'ABORTED';
  return 'ERROR';
}

/** Asks the server to stop these calls, and counts what it answered per call. */
async function cancelOnServer(client: ApiClient, callIds: readonly string[]): Promise<CancelReport> {
  const report: CancelReport = { cancelled: 0, 'already-settled': 0, unknown: 0, 'instance-gone': 0 };
  // Watch the calls' hops first, so their last ones (statement ended, settled) are not missed.
  const stops = watchStops(client, callIds, 3000);
  await Promise.race([stops.ready, new Promise((resolve) => setTimeout(resolve, 1000))]);
  try {
    for (let i = 0; i < callIds.length; i += MAX_CANCEL_IDS) {
      const { results } = await client.calls.cancel.mutate({ callIds: callIds.slice(i, i + MAX_CANCEL_IDS) }, { signal: AbortSignal.timeout(5000) });
      for (const r of results) report[r.status]++;
    }
  } catch (error) {
    report.failed = error instanceof Error ? error.message : String(error);
  }
  const hops = await stops.done;
  if (hops.settled > 0) report.hops = hops;
  return report;
}

function progressBar(total: number, enabled: boolean): SingleBar | undefined {
  // Only for a person watching: a pipe or a log file gets the summary alone.
  if (!enabled || !process.stderr.isTTY) return undefined;
  const bar = new SingleBar(
    {
      stream: process.stderr,
      format: 'fetch {bar} {percentage}% | {value}/{total} | {rate}/s | ok {ok} failed {failed} | ETA {eta_formatted}',
      hideCursor: true,
      fps: 10,
      etaBuffer: 200,
    },
    Presets.shades_classic,
  );
  bar.start(total, 0, { rate: '0', ok: 0, failed: 0 });
  return bar;
}

export function fetchCommand(program: Command, run: Run): void {
  program
    .command('fetch')
    .description('fetch users by id concurrently: bounded concurrency, a deadline and retries per call, latency percentiles')
    .requiredOption('--ids <ranges>', 'ids and ranges, like 1-1000 or 1,5,10-20')
    .option('--concurrency <n>', 'calls in flight at once', '50')
    .option('--timeout <duration>', 'deadline of each call, its retries included (500ms, 2s, 1m)', '2s')
    .option('--retries <n>', 'retries of a retryable failure (shed, unavailable, connection lost), with backoff', '2')
    .option('--fail-fast', 'stop at the first failed call, cancelling the calls in flight on the server')
    .addOption(new Option('--transport <transport>', 'how calls travel: both cancel aborted calls on the server (calls.cancel)').choices(['websocket', 'http-batch']).default('websocket'))
    .option('--no-progress', 'no progress bar (there is none unless stderr is a terminal)')
    .addHelpText('after', '\nExit codes: 0 every call succeeded, 5 some failed (NOT_FOUND included), 130 interrupted.')
    .action(async (_opts: unknown, cmd: Command) => {
      await run(cmd, async (config) => {
        const o = cmd.opts<FetchOptions>();
        const ids = parseIds(o.ids);
        const concurrency = parseInteger(o.concurrency, '--concurrency', 1, 10_000);
        const timeoutMs = parseDuration(o.timeout, '--timeout');
        const retries = parseInteger(o.retries, '--retries', 0, 10);
        const summary = await fetchUsers(config, { ids, concurrency, timeoutMs, retries, failFast: o.failFast ?? false, transport: o.transport, progress: o.progress });
        printSummary(config, summary);
        if (summary.stopped?.by === 'interrupt') throw new Interrupted('interrupted (Ctrl+C)');
        const failed = summary.settled - (summary.outcomes.ok ?? 0);
        if (failed > 0 || summary.notStarted > 0) throw new PartialFailure(`${failed} of ${summary.ids} calls failed${summary.notStarted > 0 ? `, ${summary.notStarted} not started` : ''}`);
      });
    });
}

interface FetchRun {
  ids: readonly number[];
  concurrency: number;
  timeoutMs: number;
  retries: number;
  failFast: boolean;
  transport: ApiTransport;
  progress: boolean;
}

async function fetchUsers(config: Config, opts: FetchRun): Promise<FetchSummary> {
  const interrupt = interruptSignal();
  try {
    await preflight(config, interrupt.signal, 'before any call was made');
    return await withClient(config, opts.transport, (client) => runCalls(client, opts, interrupt.signal));
  } finally {
    interrupt.dispose();
  }
}

async function runCalls(client: ApiClient, opts: FetchRun, interrupt: AbortSignal): Promise<FetchSummary> {
  const runId = randomBytes(3).toString('hex');
  // Aborts every call still running or waiting to retry; the client's link sends calls.cancel for each.
  const stop = new AbortController();
  // Each call in flight listens on it (until it settles): up to --concurrency listeners, not a leak.
  setMaxListeners(opts.concurrency + 10, stop.signal);
  /** Attempts on the wire, by call id (an attempt after the first is `<id>~<n>`). */
  const inFlight = new Set<string>();
  const outcomes: Record<string, number> = {};
  const latencies: number[] = [];
  let next = 0;
  let settled = 0;
  // Set in callbacks (Ctrl+C, another worker): read through stoppedNow, past TypeScript's narrowing.
  const run: { stopped?: NonNullable<FetchSummary['stopped']> } = {};
  const stoppedNow = (): FetchSummary['stopped'] => run.stopped;
  let cancelling: Promise<void> = Promise.resolve();
  const started = performance.now();
  const bar = progressBar(opts.ids.length, opts.progress);

  const onInterrupt = (): void => {
    if (run.stopped) return;
    // No new calls from here on; the ones in flight are stopped on the server, and we report its answer.
    const callIds = [...inFlight];
    const current: NonNullable<FetchSummary['stopped']> = { by: 'interrupt', inFlight: callIds.length };
    run.stopped = current;
    cancelling = cancelOnServer(client, callIds).then((report) => {
      current.server = report;
      // Also stops calls waiting to retry (and any the server had not seen yet).
      stop.abort(interrupt.reason);
    });
  };
  if (interrupt.aborted) onInterrupt();
  else interrupt.addEventListener('abort', onInterrupt, { once: true });

  const count = (outcome: string): void => {
    outcomes[outcome] = (outcomes[outcome] ?? 0) + 1;
    settled++;
    const secs = (performance.now() - started) / 1000;
    bar?.update(settled, { rate: secs > 0 ? (settled / secs).toFixed(0) : '0', ok: outcomes.ok ?? 0, failed: settled - (outcomes.ok ?? 0) });
  };

  const worker = async (): Promise<void> => {
    while (!run.stopped && next < opts.ids.length) {
      const index = next++;
      const id = opts.ids[index] ?? 0;
      const t0 = performance.now();
      try {
        await callWithPolicy(
          async ({ signal, context }) => {
            const callId = context.callId ?? '';
            inFlight.add(callId);
            try {
              return await client.users.byId.query({ id }, { signal, context });
            } finally {
              inFlight.delete(callId);
            }
          },
          // Named by run and position, so the server's events (asyncscope watch) and cancels can say which.
          { callId: `cli-${runId}-${index + 1}-u${id}`, timeoutMs: opts.timeoutMs, retries: opts.retries, signal: stop.signal },
        );
        latencies.push(performance.now() - t0);
        count('ok');
      } catch (error) {
        const outcome = outcomeOf(error);
        // Stopped by us (Ctrl+C, --fail-fast), not failed on its own.
        count(stoppedNow() && (outcome === 'CLIENT_CLOSED_REQUEST' || outcome === 'ABORTED') ? 'cancelled' : outcome);
        if (opts.failFast && !stoppedNow()) {
          run.stopped = { by: 'fail-fast', inFlight: inFlight.size };
          stop.abort(new DOMException('--fail-fast: a call failed', 'AbortError'));
        }
      }
    }
  };

  try {
    await Promise.all(Array.from({ length: Math.min(opts.concurrency, opts.ids.length) }, worker));
    await cancelling;
  } finally {
    interrupt.removeEventListener('abort', onInterrupt);
    bar?.stop();
  }
  const elapsedMs = performance.now() - started;
  latencies.sort((a, b) => a - b);
  return {
    ids: opts.ids.length,
    settled,
    notStarted: opts.ids.length - settled,
    elapsedMs,
    callsPerSecond: settled / (elapsedMs / 1000),
    outcomes,
    latencyMs: latencies.length === 0 ? null : { p50: percentile(latencies, 50), p90: percentile(latencies, 90), p99: percentile(latencies, 99), max: latencies.at(-1) ?? Number.NaN },
    ...(run.stopped ? { stopped: run.stopped } : {}),
  };
}

function printSummary(config: Config, s: FetchSummary): void {
  if (config.json) {
    process.stdout.write(`${JSON.stringify(s, (_k, v: unknown) => (typeof v === 'number' && !Number.isInteger(v) ? Math.round(v * 100) / 100 : v), 2)}\n`);
    return;
  }
  const lines = [
    `fetched ${s.settled} of ${s.ids} ids in ${ms(s.elapsedMs)}: ${s.callsPerSecond.toFixed(0)} calls/s`,
    `outcomes: ${Object.entries(s.outcomes).sort(([a], [b]) => (a === 'ok' ? -1 : b === 'ok' ? 1 : a.localeCompare(b))).map(([k, v]) => `${k} ${v}`).join(', ') || 'none'}${s.notStarted > 0 ? `, not started ${s.notStarted}` : ''}`,
    s.latencyMs ? `latency (ok calls): p50 ${ms(s.latencyMs.p50)}, p90 ${ms(s.latencyMs.p90)}, p99 ${ms(s.latencyMs.p99)}, max ${ms(s.latencyMs.max)}` : 'latency: no call succeeded',
  ];
  if (s.stopped?.by === 'interrupt') {
    const r = s.stopped.server;
    lines.push(
      r?.failed
        ? `interrupted: ${s.stopped.inFlight} calls were in flight; asking the server to stop them failed (${r.failed}); they end at their deadline`
        : `interrupted: ${s.stopped.inFlight} calls were in flight; the server stopped ${r?.cancelled ?? 0} (calls.cancel), ${r?.['already-settled'] ?? 0} had already finished, ${r?.unknown ?? 0} unknown to it${r?.['instance-gone'] ? `, ${r['instance-gone']} on a server instance that is gone` : ''}`,
    );
    if (r?.hops) {
      lines.push(`on the server (their hops): ${r.hops.sqlCancelled} statements cancelled inside Postgres (57014), ${r.hops.dequeued} taken out of the pool queue (never sent), ${r.hops.beforeSql} stopped before any SQL`);
    }
  } else if (s.stopped?.by === 'fail-fast') {
    lines.push(`--fail-fast: stopped at the first failure; ${s.stopped.inFlight} calls in flight were cancelled on the server`);
  }
  process.stdout.write(`${lines.join('\n')}\n`);
}
