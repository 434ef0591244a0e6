import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { Runtime, ShutdownError } from '@asyncscope/api';
import { isDatabaseUnavailable } from '@asyncscope/db';
import type { Logger } from 'pino';
import { keptApiToken } from './api-token';
import { openDatabase, type ServerDatabase } from './database';
import { startEventsLink, type EventsConfig, type EventsLink } from './events-link';
import { createHttpServer } from './http';
import { attachWebSocketTransport } from './ws-transport';

/** How long shutdown waits for what it asked to end (stopped calls to answer, connections to close) before forcing it. */
const SHUTDOWN_LINGER_MS = 1000;

/** Whether `promise` settles within `ms` (the timer does not hold the process open). */
async function settlesWithin(promise: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<false>((resolve) => { timer = setTimeout(resolve, ms, false).unref(); });
  try {
    return await Promise.race([promise.then(() => true), late]);
  } finally {
    clearTimeout(timer);
  }
}

/** What the server runs with: main.ts fills it from the environment, whose schema (env.ts) holds the defaults. */
export interface ServerConfig {
  port: number;
  host: string;
  databaseUrl?: string | undefined;
  dataDir: string;
  /** When absent, the one kept in `dataDir/api-token` (generated on first start). */
  apiToken?: string | undefined;
  /** More tokens, each its own caller (EXTRA_API_TOKENS). */
  extraApiTokens?: readonly string[] | undefined;
  poolMax: number;
  /** Connections kept open (at most poolMax): see DbConfig.poolMin. */
  poolMin: number;
  statementTimeoutMs: number;
  applicationName: string;
  maxBodyBytes: number;
  /** A request's headers, and then its body, must each arrive this soon (408 beyond). */
  bodyTimeoutMs: number;
  /** Calls in one batched request (400 beyond). */
  maxBatchSize: number;
  shutdownTimeoutMs: number;
  /** Calls running at once / waiting before TOO_MANY_REQUESTS. */
  maxInFlight: number;
  maxQueue: number;
  /** Calls one client (remote address) may have waiting. */
  maxQueuePerClient: number;
  /** Whether lab.* answers; off, it refuses with FORBIDDEN. */
  lab: boolean;
  /** Single calls through fast-trpc.ts; off, tRPC's own adapter serves every request. */
  fastPath: boolean;
  /** Default longest duration of a call, in ms (per-procedure limits may be longer, e.g. lab.sleep). */
  callTimeoutMs: number;
  /** WebSocket transport limits (WS_MAX_CALLS_PER_SOCKET, WS_MAX_SOCKETS_PER_TOKEN). */
  wsMaxCallsPerSocket: number;
  wsMaxSocketsPerToken: number;
  /** Names this instance in every hop and in activity.stats (INSTANCE_ID; default host:pid). */
  instanceId: string;
  /** EVENTS_URL and friends: hops, cancels and presence through the broker; absent, this process's own log. */
  events?: EventsConfig | undefined;
  /** Built dashboard to serve at /, if any. */
  dashboardDir?: string | undefined;
  /** PEM certificate and key: serve HTTPS with HTTP/2 (and HTTP/1.1); plain HTTP when absent. */
  tls?: { cert: string | Buffer; key: string | Buffer } | undefined;
  log: Logger;
}

export interface RunningServer {
  /** Base URL, e.g. http://127.0.0.1:3000 (https:// with TLS) */
  url: string;
  apiToken: string;
  /** Where the token is kept, when it was not given (API_TOKEN). */
  tokenFile: string | undefined;
  database: ServerDatabase;
  runtime: Runtime;
  /** The broker link, with EVENTS_URL. */
  events: EventsLink | undefined;
  /** Open WebSockets (/trpc). */
  webSockets(): number;
  /** Graceful stop: refuse new connections, let in-flight calls finish up to the deadline, close the pool, stop Postgres. */
  close(): Promise<void>;
}

export async function startServer(config: ServerConfig): Promise<RunningServer> {
  const { log } = config;
  const shutdown = new AbortController();
  const kept = config.apiToken ? undefined : await keptApiToken(config.dataDir);
  const apiToken = config.apiToken ?? kept?.token ?? '';

  const database = await openDatabase(
    {
      databaseUrl: config.databaseUrl,
      dataDir: config.dataDir,
      poolMax: config.poolMax,
      poolMin: config.poolMin,
      statementTimeoutMs: config.statementTimeoutMs,
      applicationName: config.applicationName,
      log,
    },
    shutdown.signal,
  );

  // Connects in the background: a broker that is down at start delays nothing (see events-link.ts).
  const events = config.events ? startEventsLink(config.events, config.instanceId, log) : undefined;
  // Aborted when the shutdown deadline passes: calls still running are then stopped, statements cancelled.
  const stopCalls = new AbortController();
  const runtime = new Runtime(database.client, {
    instanceId: config.instanceId,
    ...events?.runtimeOptions,
    maxInFlight: config.maxInFlight,
    maxQueue: config.maxQueue,
    maxQueuePerClient: config.maxQueuePerClient,
    lab: config.lab,
    callTimeoutMs: config.callTimeoutMs,
    shutdownSignal: stopCalls.signal,
    databaseDownSignal: () => database.downSignal(),
    poolConnections: () => database.poolConnections(),
    onFaultsError: (error) => { log.warn({ err: error }, 'lab faults: could not load or follow the lab_faults table; retrying'); },
    // Not before the migrations: on a new database the table does not exist yet (a warning on every first start).
  }).start({ followFaultsAfter: database.ready });
  events?.attach(runtime);
  // Lab faults are rows (lab_faults) the runtime loads once the table exists: no call is admitted, and the
  // server is not ready, before they are loaded, or a first call could miss a fault another instance set.
  const isServing = (): boolean => database.isReady() && runtime.faultStore.loaded;
  const served: ServerDatabase = { ...database, isReady: isServing, ready: database.ready.then(() => runtime.faultStore.whenLoaded(shutdown.signal)) };
  // Rejects only when a stop comes first (as database.ready does), which is expected.
  served.ready.catch(() => undefined);
  const probeDatabase = async (signal: AbortSignal): Promise<void> => {
    if (!isServing()) throw new Error('database unreachable');
    // Through the pool (a wedged pool is not ready), bound to the probe's signal so its timeout cancels it.
    // Again if it landed on a connection that had just been lost (each of the pool's may have been):
    // the pool replaces those at once.
    for (let attempt = 0; ; attempt++) {
      try {
        await database.client.bind({ signal }).sql`select 1`;
        return;
      } catch (error) {
        if (!isDatabaseUnavailable(error) || signal.aborted || attempt >= database.client.config.poolMax) throw error;
      }
    }
  };
  let readiness: Promise<void> | undefined;
  const http = createHttpServer({
    runtime,
    apiToken,
    extraApiTokens: config.extraApiTokens,
    maxBodyBytes: config.maxBodyBytes,
    bodyTimeoutMs: config.bodyTimeoutMs,
    maxBatchSize: config.maxBatchSize,
    dashboardDir: config.dashboardDir,
    tls: config.tls,
    trpcAdapter: !config.fastPath ? 'standard' : 'fast',
    log,
    isDatabaseReady: isServing,
    isStopping: () => shutdown.signal.aborted,
    checkDatabase: () => {
      // /readyz needs no token: callers share the probe in flight, so a flood of probes costs the pool
      // one statement at a time. Nothing is kept once it settles: a cached answer would be stale the
      // moment the database goes or comes back.
      readiness ??= probeDatabase(AbortSignal.timeout(2000)).finally(() => { readiness = undefined; });
      return readiness;
    },
  });

  // Said at start, so that a log shows whether a problem was seen with the fast path ruled out.
  if (!config.fastPath) log.info('FAST_PATH=off: every tRPC request goes through tRPC’s own adapter');
  const { server } = http;
  const ws = attachWebSocketTransport(server, { runtime, apiTokens: [apiToken, ...(config.extraApiTokens ?? [])], maxPayload: config.maxBodyBytes, maxCallsPerSocket: config.wsMaxCallsPerSocket, maxSocketsPerToken: config.wsMaxSocketsPerToken, log, isDatabaseReady: isServing });
  // A deep accept queue: thousands of clients connecting at once should wait for admission control
  // (which answers 429 when it must), not be dropped by the kernel.
  server.listen({ port: config.port, host: config.host, backlog: 4096 });
  try {
    await once(server, 'listening');
  } catch (error) {
    shutdown.abort();
    await runtime.stop();
    await events?.close();
    await database.close(1);
    throw error;
  }
  const address = server.address() as AddressInfo;
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  const url = `${config.tls ? 'https' : 'http'}://${host}:${address.port}`;

  let closing: Promise<void> | undefined;
  const close = async (): Promise<void> => {
    shutdown.abort();
    log.info({ inFlight: http.inFlight() }, 'shutting down: no new connections; waiting for in-flight calls');
    const closed = new Promise<void>((resolve) => server.close(() => { resolve(); }));
    http.closeIdleConnections();
    http.endStreams();
    // WebSocket calls in flight may finish like HTTP ones; new ones are refused (retryable) meanwhile.
    const drained = Promise.all([http.drained(), ws.drain()]);
    const deadline = AbortSignal.timeout(config.shutdownTimeoutMs);
    const timedOut = new Promise<'timeout'>((resolve) => {
      deadline.addEventListener('abort', () => { resolve('timeout'); }, { once: true });
    });
    if ((await Promise.race([drained, timedOut])) === 'timeout') {
      log.warn({ inFlight: http.inFlight(), webSocketCalls: ws.callsInFlight() }, 'shutdown deadline reached; stopping the calls still running');
      stopCalls.abort(new ShutdownError());
      // Give stopped calls a moment to answer (SERVICE_UNAVAILABLE) before the sockets go.
      await settlesWithin(drained, SHUTDOWN_LINGER_MS);
      http.closeAllConnections();
    }
    // Streams on the sockets end here; their clients reconnect (and resume) on the next server.
    ws.close();
    // Keep-alive connections that went idle after their last answer would hold close() open otherwise.
    http.closeIdleConnections();
    // What is left is not waited for long: a connection that never sent a request (a browser's spare
    // preconnect) is neither idle nor busy to node:http, and once the server is closed nothing times it out,
    // so the process never exited. A request that came meanwhile on a kept-alive connection is answered
    // first (a retryable 503), then every connection still open is closed.
    if (!(await settlesWithin(closed, SHUTDOWN_LINGER_MS))) {
      await Promise.race([http.drained(), timedOut]);
      http.closeAllConnections();
      await closed;
    }
    await runtime.stop();
    // After the calls: their last hops are flushed (bounded), and the others see this instance gone at once.
    await events?.close();
    await database.close(Math.max(1, Math.ceil(config.shutdownTimeoutMs / 1000)));
    log.info('stopped');
  };

  return { url, apiToken, tokenFile: kept?.file, database: served, runtime, events, webSockets: ws.sockets, close: () => (closing ??= close()) };
}
