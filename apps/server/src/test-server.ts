/** Starts the real server (HTTP + tRPC + a real database) for a test file, on a free port. */
import pino, { type Logger } from 'pino';
import { inject } from 'vitest';
import { createTestDatabase, type TestDatabase } from '@asyncscope/db/testing';
import { startServer, type RunningServer } from './app';
import type { EventsConfig } from './events-link';
import { readEnv } from './env';

export const TEST_TOKEN = 'test-token-0123456789abcdef';

/** `await using t = await startTestServer()` closes it however the test ends. */
export interface TestServer extends AsyncDisposable {
  server: RunningServer;
  database: TestDatabase;
  url: string;
  close(): Promise<void>;
}

export interface TestServerOptions {
  maxBodyBytes?: number;
  maxInFlight?: number;
  maxQueue?: number;
  maxQueuePerClient?: number;
  bodyTimeoutMs?: number;
  maxBatchSize?: number;
  lab?: boolean;
  /** Default true; false: tRPC's own adapter serves every request (FAST_PATH=off). */
  fastPath?: boolean;
  poolMax?: number;
  /** Connections kept open; default poolMax, as the server's own default (DB_POOL_MIN). */
  poolMin?: number;
  shutdownTimeoutMs?: number;
  /** Default: silent. */
  log?: Logger;
  /** A built dashboard to serve at /. */
  dashboardDir?: string;
  /** More tokens, each its own caller. */
  extraApiTokens?: string[];
  /** HTTPS with HTTP/2 (test-tls.ts makes a certificate). */
  tls?: { cert: string; key: string };
  /** The pool's application_name in pg_stat_activity (default test-server). */
  applicationName?: string;
  wsMaxCallsPerSocket?: number;
  wsMaxSocketsPerToken?: number;
  /** EVENTS_URL and friends: the instance joins a cluster through that broker. */
  events?: EventsConfig;
  /**
   * Serve this test database (another test server's, for two instances on one database) instead of a new one;
   * it is left open on close (its creator disposes of it).
   */
  database?: TestDatabase;
  /** Names the instance in its hops and stats (default test-server). */
  instanceId?: string;
}

export async function startTestServer(overrides: TestServerOptions = {}): Promise<TestServer> {
  // The server's own defaults, for the settings the test leaves alone and has no test value for.
  const defaults = readEnv({});
  const maxQueue = overrides.maxQueue ?? 1000;
  const shared = overrides.database;
  const database = shared ?? (await createTestDatabase(inject('pgAdminUrl'), inject('pgTemplate'), { applicationName: 'test-observer', poolMax: 2 }));
  const server = await startServer({
    port: 0,
    host: '127.0.0.1',
    databaseUrl: database.url,
    dataDir: '/nonexistent',
    apiToken: TEST_TOKEN,
    extraApiTokens: overrides.extraApiTokens,
    poolMax: overrides.poolMax ?? 5,
    poolMin: overrides.poolMin ?? overrides.poolMax ?? 5,
    statementTimeoutMs: 10_000,
    applicationName: overrides.applicationName ?? 'test-server',
    maxBodyBytes: overrides.maxBodyBytes ?? 16 * 1024,
    shutdownTimeoutMs: overrides.shutdownTimeoutMs ?? 2_000,
    maxInFlight: overrides.maxInFlight ?? 100,
    maxQueue,
    // One client may fill the whole queue, unless the test says otherwise.
    maxQueuePerClient: overrides.maxQueuePerClient ?? maxQueue,
    bodyTimeoutMs: overrides.bodyTimeoutMs ?? defaults.BODY_TIMEOUT_MS,
    maxBatchSize: overrides.maxBatchSize ?? defaults.MAX_BATCH_SIZE,
    lab: overrides.lab ?? defaults.LAB === 'on',
    callTimeoutMs: defaults.CALL_TIMEOUT_MS,
    instanceId: overrides.instanceId ?? 'test-server',
    events: overrides.events,
    fastPath: overrides.fastPath ?? defaults.FAST_PATH === 'on',
    log: overrides.log ?? pino({ level: 'silent' }),
    dashboardDir: overrides.dashboardDir,
    tls: overrides.tls,
    wsMaxCallsPerSocket: overrides.wsMaxCallsPerSocket ?? defaults.WS_MAX_CALLS_PER_SOCKET,
    wsMaxSocketsPerToken: overrides.wsMaxSocketsPerToken ?? defaults.WS_MAX_SOCKETS_PER_TOKEN,
  });
  await server.database.ready;
  const close = async (): Promise<void> => {
    await server.close();
    if (!shared) await database[Symbol.asyncDispose]();
  };
  return { server, database, url: server.url, close, [Symbol.asyncDispose]: close };
}
