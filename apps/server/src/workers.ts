/**
 * WORKERS > 1: this process is node:cluster's primary. It serves nothing itself: it forks N workers (each the
 * whole server, on the one port the primary shares out), starts the embedded PostgreSQL once when there is
 * no DATABASE_URL, forwards SIGINT/SIGTERM so each worker drains as a single process would, restarts a worker
 * that dies unexpectedly (with backoff), and exits once every worker has.
 */
import cluster, { type Worker } from 'node:cluster';
import type { Logger } from 'pino';
import { keptApiToken } from './api-token';
import { startEmbeddedDatabase, type EmbeddedDatabase } from './database';

/** What a worker tells the primary once it serves (main.ts sends it). */
export interface WorkerReady {
  type: 'asyncscope:ready';
  url: string;
  database: string;
}

export function isWorkerReady(message: unknown): message is WorkerReady {
  return typeof message === 'object' && message !== null && (message as { type?: unknown }).type === 'asyncscope:ready';
}

export interface PrimaryOptions {
  workers: number;
  databaseUrl: string | undefined;
  dataDir: string;
  apiToken: string | undefined;
  /** A configured INSTANCE_ID: worker k is then `<id>-w<k>` (ids must be unique). Undefined: each worker's default (host:pid). */
  instanceId: string | undefined;
  shutdownTimeoutMs: number;
  /** Whether the dashboard is served (for the banner). */
  dashboard: boolean;
  log: Logger;
}

/** Restart delays: doubled after each death in a row, from 250 ms up to 10 s; a worker that lived 30 s resets it. */
const RESTART_MIN_MS = 250;
const RESTART_MAX_MS = 10_000;
const STABLE_AFTER_MS = 30_000;
/** After the workers' own shutdown deadline, how long the primary still waits before it kills them. */
const KILL_AFTER_EXTRA_MS = 15_000;

/** Runs the primary until every worker has exited; then exits the process (0 when all stopped cleanly). */
export async function runPrimary(options: PrimaryOptions): Promise<never> {
  const { log } = options;
  let embedded: EmbeddedDatabase | undefined;
  let databaseUrl = options.databaseUrl;
  if (databaseUrl === undefined) {
    // One embedded server for all workers (each starting its own on one data folder could not work).
    embedded = await startEmbeddedDatabase(options.dataDir, log);
    databaseUrl = embedded.url;
  }
  // Resolved once here: N workers generating the kept token at once would race on the file.
  const kept = options.apiToken === undefined ? await keptApiToken(options.dataDir) : undefined;
  const apiToken = options.apiToken ?? kept?.token ?? '';
  // Every worker runs this same entry point and flags; they read the same environment plus these.
  const workerEnv = { DATABASE_URL: databaseUrl, API_TOKEN: apiToken };

  /** The worker in each slot (1..N) and how its previous deaths went. */
  const slots = new Map<number, { worker: Worker | undefined; startedAt: number; deaths: number; timer: NodeJS.Timeout | undefined; ready: boolean }>();
  let stopping = false;
  let firstSignalAt = 0;
  let bannerShown = false;
  let failedCode = 0;
  let done: () => void = () => undefined;
  const allExited = new Promise<void>((resolve) => { done = resolve; });

  const live = () => [...slots.values()].filter((s) => s.worker !== undefined).length;
  const checkDone = () => {
    if (stopping && live() === 0) done();
  };

  const fork = (slot: number) => {
    const state = slots.get(slot) ?? { worker: undefined, startedAt: 0, deaths: 0, timer: undefined, ready: false };
    slots.set(slot, state);
    state.timer = undefined;
    state.ready = false;
    state.startedAt = performance.now();
    const worker = cluster.fork(options.instanceId === undefined ? workerEnv : { ...workerEnv, INSTANCE_ID: `${options.instanceId}-w${slot}` });
    state.worker = worker;
    worker.on('message', (message: unknown) => {
      if (!isWorkerReady(message)) return;
      state.ready = true;
      log.info({ worker: slot, pid: worker.process.pid }, 'worker ready');
      if (!bannerShown && [...slots.values()].every((s) => s.ready)) {
        bannerShown = true;
        printBanner(message.url, embedded?.description ?? message.database, options.workers, apiToken, kept?.file, options.dashboard, embedded ? databaseUrl : undefined);
        log.info({ url: message.url, workers: options.workers }, 'ready');
      }
    });
    worker.on('exit', (code, signal) => {
      state.worker = undefined;
      if (stopping) {
        if (code !== 0) failedCode = 1;
        checkDone();
        return;
      }
      if (!bannerShown) {
        // The first start failed (a taken port, a bad setting): restarting would fail the same way.
        log.error({ worker: slot, code, signal }, 'a worker failed to start; stopping');
        failedCode = 1;
        stopAll('SIGTERM');
        return;
      }
      const lived = performance.now() - state.startedAt;
      state.deaths = lived >= STABLE_AFTER_MS ? 1 : state.deaths + 1;
      const delayMs = Math.min(RESTART_MAX_MS, RESTART_MIN_MS * 2 ** (state.deaths - 1));
      log.error({ worker: slot, pid: worker.process.pid, code, signal, restartInMs: delayMs }, 'worker died unexpectedly; restarting it');
      state.timer = setTimeout(() => { fork(slot); }, delayMs);
    });
  };

  let killTimer: NodeJS.Timeout | undefined;
  const stopAll = (signal: NodeJS.Signals) => {
    stopping = true;
    for (const state of slots.values()) {
      clearTimeout(state.timer);
      state.timer = undefined;
      // The signal itself (not cluster's disconnect): each worker runs its own graceful shutdown, as one process would.
      state.worker?.process.kill(signal);
    }
    // A worker stops by its own deadline; one that does not (wedged) is killed a while after it.
    killTimer ??= setTimeout(() => {
      for (const state of slots.values()) {
        if (state.worker) log.error({ pid: state.worker.process.pid }, 'worker did not stop in time; killing it');
        state.worker?.process.kill('SIGKILL');
      }
    }, options.shutdownTimeoutMs + KILL_AFTER_EXTRA_MS);
    checkDone();
  };

  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.on(signal, () => {
      if (stopping) {
        // The same rule as one process: a repeat within 1 s (Ctrl+C relayed twice) is the same request; a later
        // one means "stop waiting", which the workers do on their own second signal.
        if (performance.now() - firstSignalAt < 1000) return;
        log.warn('second signal: workers exit now');
        for (const state of slots.values()) state.worker?.process.kill(signal);
        return;
      }
      firstSignalAt = performance.now();
      log.info({ signal, workers: live() }, 'stopping: workers drain');
      stopAll(signal);
    });
  }

  for (let slot = 1; slot <= options.workers; slot++) fork(slot);
  await allExited;
  clearTimeout(killTimer);
  try {
    await embedded?.stop();
  } catch (error) {
    log.error({ err: error }, 'could not stop the embedded PostgreSQL');
    failedCode = 1;
  }
  log.info('stopped');
  process.exit(failedCode);
}

function printBanner(url: string, database: string, workers: number, apiToken: string, tokenFile: string | undefined, dashboard: boolean, embeddedUrl: string | undefined): void {
  const banner = [
    '',
    `  asyncscope is running (${workers} workers)`,
    dashboard
      ? `  Dashboard ${url}/#token=${encodeURIComponent(apiToken)}` // a fragment is never sent to a server, so never logged
      : `  Dashboard not built (run: npx pnpm --filter @asyncscope/dashboard build)`,
    `  API       ${url}/trpc`,
    `  Token     ${apiToken}${tokenFile ? `   (kept in ${tokenFile}; set API_TOKEN to choose one)` : ''}`,
    `  Database  ${database}`,
    ...(embeddedUrl ? [`  psql      psql '${embeddedUrl}'`] : []),
    `  Try       curl -H "Authorization: Bearer ${apiToken}" ${url}/trpc/users.list`,
    `  Stop      Ctrl+C`,
    '',
  ].join('\n');
  process.stdout.write(`${banner}\n`);
}
