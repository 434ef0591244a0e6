/**
 * Scenario 1: kill every pool connection (pg_terminate_backend by the server's application_name), round
 * after round, under a steady load of reads and idempotent writes. Must hold: the server never exits,
 * calls succeed again within ~1 s of each round, errors are SERVICE_UNAVAILABLE (503, retryable), and no
 * acknowledged write is lost.
 */
import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { countBy, countsText, ms, percentile, pct, type ScenarioReport } from './figures';
import type { ServerUnderTest } from './harness';
import { SEEDED_USERS } from './harness';
import { query } from './http';
import { SteadyLoad } from './load';
import { withSql, type ChaosPostgres } from './pg';
import { checkWrites } from './writes';

export const RECOVERY_LIMIT_MS = 1000;
/** Slack on the 1 s recovery for a shared 2-core CI box. */
export const CI_SLACK_MS = 500;
/** No OK call this long after a fault: the server is wedged. */
export const WEDGE_MS = 5000;

export interface KillOptions {
  rounds: number;
  signal: AbortSignal;
}

export async function terminatePool(url: string, applicationName: string): Promise<number> {
  return withSql(url, async (sql) => {
    const [row] = await sql<{ n: number }[]>`
      select count(*) filter (where pg_terminate_backend(pid))::int as n
      from pg_stat_activity where application_name = ${applicationName}`;
    return row?.n ?? 0;
  });
}

/**
 * When the server serves again: from `from` on, a prober calls users.byId one call after another (1 s
 * client timeout, 20 ms apart) until one succeeds — a dedicated client, because the load's writers may be
 * sleeping in their retry backoff right then. Resolves with the time of that first OK, or undefined after
 * WEDGE_MS or the server's exit.
 */
export async function waitForOk(server: ServerUnderTest, from: number, signal: AbortSignal): Promise<number | undefined> {
  for (let i = 0; i < 10_000; i++) {
    if (server.exitedWith() !== undefined || Date.now() - from > WEDGE_MS) return undefined;
    signal.throwIfAborted();
    const r = await query(server.t, 'users.byId', { id: 1 + (i % SEEDED_USERS) }, { timeoutMs: 1000, signal });
    if (r.code === 'OK') return r.endedAt;
    await sleep(20);
  }
  return undefined;
}

/** The steady load every fault scenario runs: 6 workers, reads and idempotent writes, 3 s budget per attempt. */
export function steadyLoad(server: ServerUnderTest, tag: string): SteadyLoad {
  return new SteadyLoad(server.t, {
    workers: 6,
    users: SEEDED_USERS,
    budgetMs: 3000,
    pauseMs: 10,
    slowWriteMs: 100,
    maxCalls: 100_000,
    maxMs: 120_000,
    writeAttempts: 8,
    tag: `${tag}${randomBytes(3).toString('hex')}`,
  });
}

/**
 * The server under test with steady load on it. After a crash or a wedge it is retired (its load stopped, its
 * figures kept) and, while rounds remain, replaced by a fresh one with fresh load: one run then tells how often
 * it happens rather than stopping at the first.
 */
export class LoadedServer {
  readonly loads: SteadyLoad[] = [];
  peakRss = 0;
  private current: { server: ServerUnderTest; load: SteadyLoad } | undefined;

  private constructor(
    private readonly start: () => Promise<ServerUnderTest>,
    private readonly tag: string,
  ) {}

  static async start(start: () => Promise<ServerUnderTest>, tag: string): Promise<LoadedServer> {
    const loaded = new LoadedServer(start, tag);
    await loaded.launch();
    return loaded;
  }

  get server(): ServerUnderTest {
    if (!this.current) throw new Error('no server: it was retired and not replaced');
    return this.current.server;
  }

  async launch(): Promise<void> {
    const server = await this.start();
    const load = steadyLoad(server, this.tag);
    this.loads.push(load);
    this.current = { server, load };
    load.start();
  }

  /** Stops the load, notes the server's peak RSS; `close` also stops the server. */
  async retire({ close }: { close: boolean }): Promise<void> {
    const current = this.current;
    if (!current) return;
    await current.load.stop();
    this.peakRss = Math.max(this.peakRss, current.server.peakRssMb());
    if (close) {
      this.current = undefined;
      await current.server.close();
    }
  }
}

/** Runs the rounds. A server that exits or wedges is counted and replaced (see `LoadedServer`). */
export async function killConnections(pg: ChaosPostgres, start: () => Promise<ServerUnderTest>, options: KillOptions): Promise<ScenarioReport> {
  const started = Date.now();
  const recoveries: number[] = [];
  const killedPerRound: number[] = [];
  const exits: string[] = [];
  let wedged = 0;
  let rounds = 0;
  const loaded = await LoadedServer.start(start, 'k');
  try {
    await sleep(700, undefined, { signal: options.signal });
    for (let round = 1; round <= options.rounds; round++) {
      const killAt = Date.now();
      const server = loaded.server;
      killedPerRound.push(await terminatePool(pg.url, server.applicationName));
      rounds = round;
      const ok = await waitForOk(server, killAt, options.signal);
      if (ok !== undefined) recoveries.push(ok - killAt);
      else if (server.exitedWith() === undefined) wedged++;
      await sleep(300, undefined, { signal: options.signal });
      const exited = server.exitedWith();
      if (exited !== undefined || ok === undefined) {
        if (exited !== undefined) exits.push(`round ${round}: exit ${exited} ${server.crashLine()}`);
        await loaded.retire({ close: true });
        if (round === options.rounds) break;
        await loaded.launch();
        await sleep(500, undefined, { signal: options.signal });
      }
    }
  } finally {
    await loaded.retire({ close: false });
  }
  const { loads, peakRss } = loaded;
  const writes = await checkWrites(pg.url, loads);
  const attempts = loads.flatMap((l) => l.attempts);
  const errors = attempts.filter((a) => a.code !== 'OK');
  const badErrors = errors.filter((a) => a.code !== 'SERVICE_UNAVAILABLE');
  const slowest = Math.max(0, ...recoveries);
  return {
    title: `1. kill every pool connection, ${options.rounds} rounds under load`,
    figures: [
      ['rounds run', `${rounds} of ${options.rounds}`],
      ['pool connections killed', `${killedPerRound.reduce((a, b) => a + b, 0)} (per round ${killedPerRound.join(' ')})`],
      ['calls (attempts)', attempts.length],
      ['OK', pct(attempts.length - errors.length, attempts.length)],
      ['errors by tRPC code', countsText(countBy(errors, (a) => a.code))],
      ['errors by HTTP status', countsText(countBy(errors, (a) => String(a.status)))],
      ['recovery after a round p50 / max', `${ms(percentile(recoveries, 50))} / ${recoveries.length ? ms(slowest) : 'n/a'}`],
      ['rounds recovered', `${recoveries.length} of ${rounds}`],
      ['wedged rounds (alive, no OK within 5 s)', wedged],
      ['server exits (crashes; replaced to go on)', exits.length === 0 ? '0' : `${exits.length}: ${exits[0] ?? ''}`],
      ['acknowledged writes / lost', `${writes.acknowledged} / ${writes.lostUsers + writes.lostOrDuplicatedLabels}`],
      ['writes never acknowledged (unknown outcome)', writes.unacknowledged],
      ['server peak RSS', `${peakRss} MB`],
      ['wall time', ms(Date.now() - started)],
    ],
    checks: [
      { name: `all ${options.rounds} rounds ran, each killed ≥ 1 connection`, ok: rounds === options.rounds && killedPerRound.every((n) => n > 0) },
      { name: 'the server process never exited', ok: exits.length === 0 },
      { name: 'no wedge: calls succeed again after every round', ok: wedged === 0 && recoveries.length === rounds },
      { name: `recovery ≤ ${RECOVERY_LIMIT_MS} ms (+${CI_SLACK_MS} ms CI slack) every round`, ok: recoveries.length === rounds && slowest <= RECOVERY_LIMIT_MS + CI_SLACK_MS },
      { name: 'errors are SERVICE_UNAVAILABLE (503) only — no 500, 408, resets', ok: badErrors.length === 0 },
      { name: 'no acknowledged write lost', ok: writes.lostUsers + writes.lostOrDuplicatedLabels === 0 },
    ],
  };
}
