/**
 * The chaos suite without vitest: runs the scenarios one after another (CHAOS_SCENARIOS=1,3 picks some),
 * prints each one's figures and checks, and exits 1 if any check failed. Against another build:
 * CHAOS_SERVER_DIR=/path/to/apps/server (its dist/ built).
 *
 *   npx --yes pnpm@10.34.8 --filter @asyncscope/chaos run chaos
 */
import { killAllNow, within } from '@asyncscope/harness/children';
import { stormScenario, STORM_SERVER_ENV } from './cancel-storm';
import { config } from './config';
import { printReport, type ScenarioReport } from './figures';
import { greedyBatch } from './greedy-batch';
import { serverDir, withChaos } from './harness';
import { killConnections } from './kill-connections';
import { closeAllPostgres } from './pg';
import { restartPostgres } from './pg-restart';
import { shedLatency } from './shed-latency';
import { slowBodies } from './slow-bodies';

const scenarios: Record<string, () => Promise<ScenarioReport>> = {
  1: () => withChaos(140_000, ({ pg, signal, start }) => killConnections(pg, () => start(), { rounds: 20, signal })),
  2: () => withChaos(140_000, ({ pg, signal, start }) => restartPostgres(pg, () => start(), { runs: 5, outageMs: 1500, signal })),
  3: () => withChaos(90_000, async ({ pg, signal, start }) => stormScenario(pg, await start(STORM_SERVER_ENV), signal)),
  4: () => withChaos(60_000, async ({ signal, start }) => slowBodies(await start(), { connections: 120, signal })),
  5: () => withChaos(60_000, async ({ signal, start }) => greedyBatch(await start(), { calls: 1000, slowWriteMs: 200, signal })),
  6: () => withChaos(60_000, async ({ signal, start }) => shedLatency(await start(), { calls: 5000, signal })),
};

async function main(): Promise<void> {
  const picked = (config.scenarios ?? Object.keys(scenarios).join(',')).split(',').map((s) => s.trim()).filter(Boolean);
  process.stdout.write(`chaos: server build in ${serverDir()}; scenarios ${picked.join(', ')}\n`);
  const started = Date.now();
  const failed: string[] = [];
  for (const key of picked) {
    const run = scenarios[key];
    if (!run) throw new Error(`no scenario ${key} (there are ${Object.keys(scenarios).join(', ')})`);
    const t0 = Date.now();
    try {
      const report = await run();
      printReport(report);
      if (report.checks.some((c) => !c.ok)) failed.push(key);
    } catch (error) {
      failed.push(key);
      process.stdout.write(`\n== scenario ${key} failed to run: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    }
    process.stdout.write(`  (scenario ${key}: ${Math.round((Date.now() - t0) / 1000)} s)\n`);
  }
  process.stdout.write(`\nchaos: ${picked.length - failed.length} of ${picked.length} scenarios held${failed.length ? `; failed: ${failed.join(', ')}` : ''} (${Math.round((Date.now() - started) / 1000)} s)\n`);
  if (failed.length) process.exitCode = 1;
}

// Ctrl+C: the server children run in process groups of their own (so a terminal's signal reaches only
// us): kill them, then stop the chaos PostgreSQL and remove its folder (bounded), then exit.
// (`on`, not `once`: tsx relays the terminal's signal, so it may come twice.)
let interrupted = false;
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    if (interrupted) return;
    interrupted = true;
    process.stderr.write(`chaos: ${signal}: stopping the servers and PostgreSQL\n`);
    killAllNow();
    void within(closeAllPostgres(), 10_000).finally(() => {
      killAllNow(); // one that was being spawned meanwhile
      process.exit(130);
    });
  });
}

main().catch((error: unknown) => {
  killAllNow();
  process.stderr.write(`chaos failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  process.exitCode = 1;
});
