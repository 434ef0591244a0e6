/**
 * Scenario 2: PostgreSQL stopped (fast shutdown) and started again under load, several runs. Must hold:
 * no crash, no wedge, /readyz 503 during the outage and 200 after, serving again within ~1 s of Postgres
 * answering, errors SERVICE_UNAVAILABLE only, no acknowledged write lost. A server that crashed or wedged
 * is counted and replaced, so every run is measured.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { countBy, countsText, ms, percentile, pct, type ScenarioReport } from './figures';
import type { ServerUnderTest } from './harness';
import { readyz } from './http';
import { CI_SLACK_MS, LoadedServer, RECOVERY_LIMIT_MS, waitForOk, WEDGE_MS } from './kill-connections';
import type { ChaosPostgres } from './pg';
import { checkWrites } from './writes';

export interface RestartOptions {
  runs: number;
  /** How long Postgres stays down. */
  outageMs: number;
  signal: AbortSignal;
}

interface Run {
  outcome: 'recovered' | 'wedged' | 'crashed';
  /** Postgres answering → first OK call started after it. */
  recoveryMs?: number;
  readyz503During: boolean;
  readyz200After: boolean;
  note: string;
}

interface ReadySample {
  at: number;
  end: number;
  /** 0: no answer within 1.5 s. */
  status: number;
}

/** Polls /readyz every 100 ms until stopped; keeps (start, end, status). */
function pollReadyz(server: ServerUnderTest): { samples: ReadySample[]; stop: () => Promise<void> } {
  const samples: ReadySample[] = [];
  const state = { stopped: false };
  const loop = (async () => {
    for (let i = 0; i < 1000 && !state.stopped; i++) {
      const at = Date.now();
      const status = await readyz(server.t, 1500);
      samples.push({ at, end: Date.now(), status });
      await sleep(100);
    }
  })();
  return {
    samples,
    stop: async () => {
      state.stopped = true;
      await loop;
    },
  };
}

export async function restartPostgres(pg: ChaosPostgres, start: () => Promise<ServerUnderTest>, options: RestartOptions): Promise<ScenarioReport> {
  const started = Date.now();
  const runs: Run[] = [];
  const loaded = await LoadedServer.start(start, 'r');
  try {
    for (let i = 1; i <= options.runs; i++) {
      await sleep(800, undefined, { signal: options.signal });
      const server = loaded.server;
      const poller = pollReadyz(server);
      let upAt = 0;
      let stoppedAt = 0;
      let ok: number | undefined;
      try {
        await pg.stop();
        stoppedAt = Date.now();
        await sleep(options.outageMs, undefined, { signal: options.signal });
        await pg.start();
        upAt = Date.now();
        // The first OK after Postgres answers (or the wedge limit), then /readyz back to 200.
        ok = await waitForOk(server, upAt, options.signal);
        while (ok !== undefined && !poller.samples.some((s) => s.at >= upAt && s.status === 200) && server.exitedWith() === undefined && Date.now() - upAt < WEDGE_MS) {
          await sleep(20, undefined, { signal: options.signal });
        }
      } finally {
        await poller.stop();
      }
      // Probes started while Postgres was down, and any that hung into the outage ("no answer").
      const during = poller.samples.filter((s) => s.at < upAt && (s.at >= stoppedAt || (s.status === 0 && s.end >= stoppedAt + 200)));
      const exited = server.exitedWith();
      const run: Run = {
        outcome: exited !== undefined ? 'crashed' : ok === undefined ? 'wedged' : 'recovered',
        ...(ok !== undefined ? { recoveryMs: ok - upAt } : {}),
        readyz503During: during.length > 0 && during.every((s) => s.status === 503),
        readyz200After: poller.samples.some((s) => s.at >= upAt && s.status === 200),
        note: exited !== undefined ? `exit ${exited} ${server.crashLine()}` : `readyz during outage: ${countsText(countBy(during, (s) => (s.status === 0 ? 'no answer in 1.5 s' : String(s.status))))}`,
      };
      runs.push(run);
      if (run.outcome !== 'recovered' || !run.readyz200After) {
        await loaded.retire({ close: true });
        if (i === options.runs) break;
        await loaded.launch();
      }
    }
  } finally {
    await loaded.retire({ close: false });
    // A failure mid-run must not leave Postgres down for the write check and the teardown.
    await pg.start();
  }
  const { loads, peakRss } = loaded;
  const writes = await checkWrites(pg.url, loads);
  const attempts = loads.flatMap((l) => l.attempts);
  const errors = attempts.filter((a) => a.code !== 'OK');
  const recoveries = runs.flatMap((r) => (r.recoveryMs === undefined ? [] : [r.recoveryMs]));
  const crashed = runs.filter((r) => r.outcome === 'crashed');
  const wedged = runs.filter((r) => r.outcome === 'wedged');
  return {
    title: `2. PostgreSQL stop (fast) / start under load, ${options.runs} runs, ${options.outageMs} ms outage`,
    figures: [
      ...runs.map((r, i): [string, string] => [
        `run ${i + 1}`,
        `${r.outcome}, recovery ${ms(r.recoveryMs)}, readyz 503 during ${r.readyz503During ? 'yes' : 'NO'}, 200 after ${r.readyz200After ? 'yes' : 'NO'}; ${r.note}`,
      ]),
      ['crashes / wedges', `${crashed.length} / ${wedged.length}`],
      ['recovery p50 / max', `${ms(percentile(recoveries, 50))} / ${ms(recoveries.length ? Math.max(...recoveries) : undefined)}`],
      ['calls (attempts)', attempts.length],
      ['OK', pct(attempts.length - errors.length, attempts.length)],
      ['errors by tRPC code', countsText(countBy(errors, (a) => a.code))],
      ['errors by HTTP status', countsText(countBy(errors, (a) => String(a.status)))],
      ['acknowledged writes / lost', `${writes.acknowledged} / ${writes.lostUsers + writes.lostOrDuplicatedLabels}`],
      ['writes never acknowledged (unknown outcome)', writes.unacknowledged],
      ['server peak RSS', `${peakRss} MB`],
      ['wall time', ms(Date.now() - started)],
    ],
    checks: [
      { name: `all ${options.runs} runs ran`, ok: runs.length === options.runs },
      { name: '0 crashes', ok: crashed.length === 0 },
      { name: '0 wedges', ok: wedged.length === 0 },
      { name: '/readyz 503 during every outage, 200 after', ok: runs.every((r) => r.readyz503During && r.readyz200After) },
      {
        name: `serving resumes ≤ ${RECOVERY_LIMIT_MS} ms (+${CI_SLACK_MS} ms CI slack) after Postgres answers, every run`,
        ok: recoveries.length === options.runs && Math.max(...recoveries) <= RECOVERY_LIMIT_MS + CI_SLACK_MS,
      },
      { name: 'errors are SERVICE_UNAVAILABLE (503) only — no 500, 408, resets', ok: errors.every((a) => a.code === 'SERVICE_UNAVAILABLE') },
      { name: 'no acknowledged write lost', ok: writes.lostUsers + writes.lostOrDuplicatedLabels === 0 },
    ],
  };
}
