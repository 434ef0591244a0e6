import cluster from 'node:cluster';
import { existsSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { startServer } from './app';
import { EnvError, readEnv, readTls } from './env';
import { createLogger } from './log-redaction';
import { runPrimary, type WorkerReady } from './workers';

function fail(message: string): never {
  process.stderr.write(`${message}\n`);
  process.exit(1);
}

let env;
let tls;
try {
  env = readEnv();
  tls = readTls(env);
} catch (error) {
  fail(error instanceof EnvError ? error.message : String(error));
}

const log = createLogger({ level: env.LOG_LEVEL });
const dashboardDir = existsSync(join(env.DASHBOARD_DIR, 'index.html')) ? env.DASHBOARD_DIR : undefined;

if (env.WORKERS > 1 && cluster.isPrimary) {
  // The primary forks the workers (which run this file from here on as single servers) and exits with them.
  await runPrimary({
    workers: env.WORKERS,
    databaseUrl: env.DATABASE_URL,
    dataDir: env.DATA_DIR,
    apiToken: env.API_TOKEN,
    // The default names this (primary) process; each worker's own default names the worker.
    instanceId: env.INSTANCE_ID === `${hostname()}:${process.pid}` ? undefined : env.INSTANCE_ID,
    shutdownTimeoutMs: env.SHUTDOWN_TIMEOUT_MS,
    dashboard: dashboardDir !== undefined,
    log,
  }).catch((error: unknown) => fail(`Could not start: ${error instanceof Error ? error.message : String(error)}`));
}

const server = await startServer({
  port: env.PORT,
  host: env.HOST,
  databaseUrl: env.DATABASE_URL,
  dataDir: env.DATA_DIR,
  apiToken: env.API_TOKEN,
  extraApiTokens: env.EXTRA_API_TOKENS,
  poolMax: env.DB_POOL_MAX,
  poolMin: env.DB_POOL_MIN,
  statementTimeoutMs: env.DB_STATEMENT_TIMEOUT_MS,
  applicationName: env.DB_APPLICATION_NAME,
  maxBodyBytes: env.MAX_BODY_BYTES,
  shutdownTimeoutMs: env.SHUTDOWN_TIMEOUT_MS,
  maxInFlight: env.MAX_IN_FLIGHT,
  maxQueue: env.MAX_QUEUE,
  maxQueuePerClient: env.MAX_QUEUE_PER_CLIENT,
  bodyTimeoutMs: env.BODY_TIMEOUT_MS,
  maxBatchSize: env.MAX_BATCH_SIZE,
  wsMaxCallsPerSocket: env.WS_MAX_CALLS_PER_SOCKET,
  wsMaxSocketsPerToken: env.WS_MAX_SOCKETS_PER_TOKEN,
  lab: env.LAB === 'on',
  fastPath: env.FAST_PATH === 'on',
  callTimeoutMs: env.CALL_TIMEOUT_MS,
  instanceId: env.INSTANCE_ID,
  events: env.EVENTS_URL ? { url: env.EVENTS_URL, stream: env.EVENTS_STREAM, maxEvents: env.EVENTS_MAX_EVENTS, maxAgeS: env.EVENTS_MAX_AGE_S } : undefined,
  dashboardDir,
  tls,
  log,
}).catch((error: unknown) => fail(`Could not start: ${error instanceof Error ? error.message : String(error)}`));

let stopping = false;
let firstSignalAt = 0;
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    if (stopping) {
      // One Ctrl+C often arrives twice: under `pnpm dev` turbo signals the task's whole process group and
      // the watcher (node --watch) relays it to us again. Only a later signal means "stop waiting".
      if (performance.now() - firstSignalAt < 1000) return;
      log.warn('second signal: exiting now');
      process.exit(1);
    }
    stopping = true;
    firstSignalAt = performance.now();
    server.close().then(
      () => process.exit(0),
      (error: unknown) => {
        log.error({ err: error }, 'shutdown failed');
        process.exit(1);
      },
    );
  });
}

// The banner invites calls, so it waits until they can succeed: the database answers and is migrated.
// (Meanwhile the log says why not, and /readyz answers 503.) It rejects only when a stop comes first.
const ready = await server.database.ready.then(() => true, () => false);

if (ready && cluster.isWorker) {
  // The primary prints one banner for all workers.
  const message: WorkerReady = { type: 'asyncscope:ready', url: server.url, database: server.database.description };
  process.send?.(message);
} else if (ready) {
  const banner = [
    '',
    `  asyncscope is running`,
    dashboardDir
      ? `  Dashboard ${server.url}/#token=${encodeURIComponent(server.apiToken)}` // a fragment is never sent to a server, so never logged
      : `  Dashboard not built (run: npx pnpm --filter @asyncscope/dashboard build)`,
    `  API       ${server.url}/trpc`,
    `  Token     ${server.apiToken}${server.tokenFile ? `   (kept in ${server.tokenFile}; set API_TOKEN to choose one)` : ''}`,
    `  Database  ${server.database.description}`,
    // Ready to paste; printed once to the terminal, like the token, and kept out of the JSON logs.
    ...(server.database.embeddedUrl ? [`  psql      psql '${server.database.embeddedUrl}'`] : []),
    `  Try       curl -H "Authorization: Bearer ${server.apiToken}" ${server.url}/trpc/users.list`,
    `  Stop      Ctrl+C`,
    '',
  ].join('\n');
  process.stdout.write(`${banner}\n`);
  log.info({ url: server.url }, 'ready');
}
