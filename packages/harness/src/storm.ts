/**
 * The cancel storm (issue 7, finding 4): `calls` × `lab.sleep({ ms })`, launched over `launchMs` and each
 * aborted by its client at a random moment before `abortWithinMs`. What the server did is read from its
 * own hop log (`activity.events`, followed live over SSE from before the first call), so nothing is
 * guessed from the client side:
 *
 *  - lost cancels: statements of an aborted call that did not end with 57014 (they ran to completion,
 *    failed otherwise, or never ended), and pg_sleep statements of the pool still active in
 *    pg_stat_activity 1 s after the server learned of the last abort;
 *  - calls whose signal fired yet settled OK;
 *  - abort → server signal latency: the client's abort time vs the call's `signal.fired` hop. Client and
 *    server run on one machine and both stamp with Date.now() (the same wall clock), so the difference is
 *    meaningful to the millisecond; performance.now() would not be, being per-process.
 *
 * The load generator runs in a worker thread (storm-worker.mjs) with plain node:http (an Agent without a
 * socket limit: one connection per call, as a fleet of clients would have), so the hop-log stream parsed
 * here does not delay its timers. It reports its own lateness (launch and abort timers behind schedule,
 * its event-loop delay) so a slow generator is seen, not mistaken for a slow server; latencies are taken
 * from the moment each abort actually happened, not from its schedule.
 */
import { Worker } from 'node:worker_threads';
import { setTimeout as sleep } from 'node:timers/promises';
import type { ApiClient } from '@asyncscope/client';
import postgres from 'postgres';

export interface StormOptions {
  /** Base URL of the server, e.g. http://127.0.0.1:4123 */
  url: string;
  token: string;
  /** A client for the `activity.events` subscription. */
  api: ApiClient;
  /** A connection string to the server's database (for pg_stat_activity), and the pool's application_name. */
  databaseUrl: string;
  applicationName: string;
  calls?: number;
  sleepMs?: number;
  launchMs?: number;
  abortWithinMs?: number;
  signal: AbortSignal;
}

interface Hop {
  type: string;
  at: number;
  callId: string;
  statement?: number;
  sqlstate?: string | null;
  queued?: boolean;
  code?: string;
}

export interface StormResult {
  calls: number;
  /** How each call ended on the client: 'aborted' (as planned) or the early answer's status. */
  clientOutcomes: Map<string, number>;
  /** Calls the server logged as received. */
  received: number;
  /** Calls aborted before their request was even written (their connection not yet accepted): nothing to receive. */
  neverSent: number;
  /** Calls aborted by the client whose server signal never fired. */
  signalNeverFired: number;
  /**
   * Client abort → `signal.fired` hop, ms, for the calls the server had received (its `received` hop) before
   * the client aborted: how fast the server notices a client leaving.
   */
  signalLatenciesMs: number[];
  /**
   * The same for calls aborted before the server had read them (still in its accept queue or unparsed,
   * during the launch burst): their signal fires as the request is read, so this is the server's intake delay.
   */
  intakeLatenciesMs: number[];
  statementsStarted: number;
  cancelsSentRunning: number;
  cancelsSentQueued: number;
  /** Statements of aborted calls that did not end with 57014, by how they ended ('completed', a SQLSTATE, 'never ended'). */
  lostCancels: Map<string, number>;
  /** The issue's pattern exactly: a cancel was sent, and the statement still ran to completion. */
  cancelSentButCompleted: number;
  /** pg_sleep statements of the pool still active 1 s after the server learned of the last abort. */
  stillRunningAfter1s: number;
  /** Calls whose signal fired and that settled OK anyway. */
  signalFiredSettledOk: number;
  settledCodes: Map<string, number>;
  /** Calls with no 'settled' hop by the end of the wait. */
  neverSettled: number;
  /** Events the hop log overwrote before we read them (then the figures are incomplete). */
  missedEvents: number;
  /** Load generator lateness: launches and aborts behind their schedule, p99 ms, and its event-loop delay. */
  launchLagP99Ms: number;
  abortLagP99Ms: number;
  generatorLoopDelayP99Ms: number;
  wallMs: number;
}

function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))] ?? NaN;
}

function bump(map: Map<string, number>, key: string): void {
  map.set(key, (map.get(key) ?? 0) + 1);
}

export async function cancelStorm(options: StormOptions): Promise<StormResult> {
  const calls = options.calls ?? 2000;
  const sleepMs = options.sleepMs ?? 5000;
  const launchMs = options.launchMs ?? 1000;
  const abortWithinMs = options.abortWithinMs ?? 4000;
  const prefix = `storm-${Date.now().toString(36)}-`;
  const hops = new Map<string, Hop[]>();
  let missedEvents = 0;
  const probe = { seen: false };
  const probeId = `storm-probe-${Date.now().toString(36)}`;

  // Follow the hop log from now on, and make sure it is live before the storm (a probe call's hops arrive).
  const subscription = await new Promise<{ unsubscribe(): void }>((resolve, reject) => {
    const sub = options.api.activity.events.subscribe(
      {},
      {
        onData: ({ data }) => {
          missedEvents += data.missed;
          for (const event of data.events as Hop[]) {
            if (event.callId === probeId) probe.seen = true;
            if (!event.callId.startsWith(prefix)) continue;
            let list = hops.get(event.callId);
            if (!list) hops.set(event.callId, (list = []));
            list.push(event);
          }
        },
        onError: (error) => { reject(error instanceof Error ? error : new Error(String(error))); },
      },
    );
    resolve(sub);
  });
  try {
    for (let i = 0; i < 100 && !probe.seen; i++) {
      await options.api.users.byId.query({ id: 1 }, { context: { transport: 'single', callId: probeId } }).catch(() => undefined);
      await sleep(100, undefined, { signal: options.signal });
    }
    if (!probe.seen) throw new Error('the activity.events subscription delivered nothing within 10 s');

    const gen = await runGenerator({ url: options.url, token: options.token, calls, sleepMs, launchMs, abortWithinMs, prefix }, options.signal);
    const clientOutcomes = new Map(Object.entries(gen.outcomes));
    const abortedAt = new Map(gen.abortedAt);
    const neverSentIds = new Set(gen.neverSent);
    const started = Date.now() - gen.wallMs;
    const lastAbort = Math.max(...abortedAt.values());

    // 1 s after the server learned of the last abort, no statement of the storm may still run in Postgres.
    // A call aborted before the server had read it learns of it only at intake, seconds after the abort when
    // the launch burst fills the accept queue of a small machine (reported as intake delay): counting from the
    // client's last abort measured that backlog, not the cancels (it failed 1 run in 2 on a quiet machine).
    const told = (id: string) => neverSentIds.has(id) || (hops.get(id) ?? []).some((h) => h.type === 'signal.fired' || h.type === 'settled');
    while (![...abortedAt.keys()].every(told) && Date.now() < lastAbort + 10_000) await sleep(50, undefined, { signal: options.signal });
    let lastSignal = lastAbort;
    for (const list of hops.values()) for (const h of list) if (h.type === 'signal.fired' && h.at > lastSignal) lastSignal = h.at;
    await sleep(Math.max(0, lastSignal + 1000 - Date.now()), undefined, { signal: options.signal });
    const observer = postgres(options.databaseUrl, { max: 1, onnotice: () => undefined, connection: { application_name: 'asyncscope-storm-observer' } });
    let stillRunningAfter1s: number;
    try {
      const [row] = await observer<{ n: number }[]>`
        select count(*)::int as n from pg_stat_activity
        where application_name = ${options.applicationName} and state = 'active' and query like '%pg_sleep%'`;
      stillRunningAfter1s = row?.n ?? 0;
    } finally {
      await observer.end({ timeout: 2 });
    }

    // Wait for every call the server received to settle (a lost cancel settles only when its sleep ends).
    const settledAll = () => [...hops.values()].every((list) => list.some((h) => h.type === 'settled'));
    while (!settledAll() && Date.now() < lastAbort + sleepMs + 3000) await sleep(100, undefined, { signal: options.signal });
    await sleep(300, undefined, { signal: options.signal }); // the log sends batches every 50 ms

    let signalNeverFired = 0;
    let statementsStarted = 0;
    let cancelsSentRunning = 0;
    let cancelsSentQueued = 0;
    let cancelSentButCompleted = 0;
    let signalFiredSettledOk = 0;
    let neverSettled = 0;
    const lostCancels = new Map<string, number>();
    const settledCodes = new Map<string, number>();
    const signalLatenciesMs: number[] = [];
    const intakeLatenciesMs: number[] = [];
    for (const [id, list] of hops) {
      const fired = list.find((h) => h.type === 'signal.fired');
      const settled = list.find((h) => h.type === 'settled');
      const abortTime = abortedAt.get(id);
      if (settled) bump(settledCodes, settled.code ?? '?');
      else neverSettled++;
      if (abortTime !== undefined) {
        const received = list.find((h) => h.type === 'received');
        if (!fired) signalNeverFired++;
        else if (received && received.at < abortTime) signalLatenciesMs.push(fired.at - abortTime);
        else intakeLatenciesMs.push(fired.at - abortTime);
      }
      if (fired && settled?.code === 'OK') signalFiredSettledOk++;
      for (const start of list.filter((h) => h.type === 'statement.started')) {
        statementsStarted++;
        const ended = list.find((h) => h.type === 'statement.ended' && h.statement === start.statement);
        const cancel = list.find((h) => h.type === 'cancel.sent' && h.statement === start.statement);
        if (abortTime === undefined) continue; // answered before any abort: not a cancel case
        const how = ended === undefined ? 'never ended' : ended.sqlstate == null ? 'completed' : ended.sqlstate;
        if (how !== '57014') bump(lostCancels, how);
        if (cancel && how === 'completed') cancelSentButCompleted++;
      }
      for (const cancel of list.filter((h) => h.type === 'cancel.sent')) {
        if (cancel.queued) cancelsSentQueued++;
        else cancelsSentRunning++;
      }
    }
    return {
      calls,
      clientOutcomes,
      received: [...hops.values()].filter((list) => list.some((h) => h.type === 'received')).length,
      neverSent: neverSentIds.size,
      // A call the server never saw has no signal to fire; one it saw but never heard from is counted above.
      signalNeverFired: signalNeverFired + [...abortedAt.keys()].filter((id) => !hops.has(id) && !neverSentIds.has(id)).length,
      signalLatenciesMs,
      intakeLatenciesMs,
      statementsStarted,
      cancelsSentRunning,
      cancelsSentQueued,
      lostCancels,
      cancelSentButCompleted,
      stillRunningAfter1s,
      signalFiredSettledOk,
      settledCodes,
      neverSettled,
      missedEvents,
      launchLagP99Ms: percentile(gen.launchLag, 99),
      abortLagP99Ms: percentile(gen.abortLag, 99),
      generatorLoopDelayP99Ms: gen.loopDelayP99Ms,
      wallMs: Date.now() - started,
    };
  } finally {
    subscription.unsubscribe();
  }
}

interface GeneratorResult {
  outcomes: Record<string, number>;
  abortedAt: [string, number][];
  neverSent: string[];
  launchLag: number[];
  abortLag: number[];
  loopDelayP99Ms: number;
  wallMs: number;
}

/** Runs storm-worker.mjs and waits for its one message; terminates it if `signal` aborts. */
async function runGenerator(data: Record<string, unknown>, signal: AbortSignal): Promise<GeneratorResult> {
  signal.throwIfAborted();
  const worker = new Worker(new URL('./storm-worker.mjs', import.meta.url), { workerData: data });
  const stop = () => { void worker.terminate(); };
  signal.addEventListener('abort', stop, { once: true });
  try {
    return await new Promise<GeneratorResult>((resolve, reject) => {
      worker.once('message', (message: GeneratorResult) => { resolve(message); });
      worker.once('error', reject);
      worker.once('exit', (code) => { reject(new Error(`the storm generator exited (${code}) without a result`)); });
    });
  } finally {
    signal.removeEventListener('abort', stop);
    await worker.terminate();
  }
}

/** Counts as "a 3, b 1", largest first. */
export function countsText(counts: ReadonlyMap<string, number>): string {
  const parts = [...counts].sort((a, b) => b[1] - a[1]).map(([k, n]) => `${k} ${n}`);
  return parts.length ? parts.join(', ') : 'none';
}

/** p50 / p99 / max of the abort → signal latencies, with never-fired signals counted as infinitely late. */
export function signalLatency(result: StormResult): { p50: number; p99: number; max: number } {
  const all = [...result.signalLatenciesMs, ...Array.from({ length: result.signalNeverFired }, () => Infinity)];
  return { p50: percentile(all, 50), p99: percentile(all, 99), max: all.length ? Math.max(...all) : NaN };
}

/** The storm's figures as rows (name, value), for the chaos suite's table and the benchmark's. */
export function stormFigures(r: StormResult): [string, string | number][] {
  const lat = signalLatency(r);
  const fmt = (n: number) => (Number.isFinite(n) ? `${Math.round(n)} ms` : 'never');
  const lost = [...r.lostCancels.values()].reduce((a, b) => a + b, 0);
  return [
    ['calls / received by the server', `${r.calls} / ${r.received}${r.neverSent > 0 ? ` (${r.neverSent} aborted before their request was written)` : ''}`],
    ['client outcomes', countsText(r.clientOutcomes)],
    ['statements started / cancels sent (running, queued)', `${r.statementsStarted} / ${r.cancelsSentRunning}, ${r.cancelsSentQueued}`],
    ['lost cancels (statements not ended by 57014)', `${lost}${lost ? ` (${countsText(r.lostCancels)})` : ''}`],
    ['  of which cancel sent, ran to completion', r.cancelSentButCompleted],
    ['pg_sleep still active 1 s after the server learned of the last abort', r.stillRunningAfter1s],
    ['signal fired yet settled OK', r.signalFiredSettledOk],
    ['abort → server signal p50 / p99 / max (calls it had received)', `${fmt(lat.p50)} / ${fmt(lat.p99)} / ${fmt(lat.max)} (${r.signalLatenciesMs.length} calls)`],
    ['abort before the server read the call: signal at intake p50 / p99 / max', `${fmt(percentile(r.intakeLatenciesMs, 50))} / ${fmt(percentile(r.intakeLatenciesMs, 99))} / ${fmt(r.intakeLatenciesMs.length ? Math.max(...r.intakeLatenciesMs) : NaN)} (${r.intakeLatenciesMs.length} calls)`],
    ['aborted calls whose signal never fired', r.signalNeverFired],
    ['settled codes (server)', countsText(r.settledCodes)],
    ['calls never settled', r.neverSettled],
    ['hop events missed (ring overwrote them)', r.missedEvents],
    ['generator (worker) lag p99: launch / abort / loop delay', `${Math.round(r.launchLagP99Ms)} / ${Math.round(r.abortLagP99Ms)} / ${Math.round(r.generatorLoopDelayP99Ms)} ms`],
    ['storm wall time', `${r.wallMs} ms`],
  ];
}
