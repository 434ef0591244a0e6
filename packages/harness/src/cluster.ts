/**
 * A cluster under test, all real processes: a nats-server with JetStream (the broker), HAProxy with the
 * repository's sample config (deploy/haproxy.cfg) in front, and N built server instances. Every start takes an
 * AbortSignal and cleans up what it began when it fails; children never outlive the caller (their process
 * groups are killed on an exit without cleanup: children.ts's killAllNow).
 */
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { freePort } from '@asyncscope/db';
import { startApiServer, type ApiServer } from './api-server';
import { spawnChild, stopChild, within, type Child } from './children';

export const NATS_SERVER = '/usr/sbin/nats-server';
export const HAPROXY = '/usr/sbin/haproxy';
/** The sample load balancer config the cluster tests run (with their own ports and servers). */
export const HAPROXY_SAMPLE = fileURLToPath(new URL('../../../deploy/haproxy.cfg', import.meta.url));

/** Why the cluster tests cannot run here, or false when they can. */
export function missingBinaries(): string | false {
  const missing = [NATS_SERVER, HAPROXY].filter((path) => !existsSync(path));
  return missing.length > 0 ? `not installed: ${missing.join(', ')} (Debian: apt-get install nats-server haproxy)` : false;
}

/** Resolves once something accepts TCP connections on 127.0.0.1:port; fails if `child` exits or time runs out. */
async function waitForPort(child: Child, port: number, timeoutMs: number, signal: AbortSignal): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let exit: number | string | undefined;
  void child.exited.then((code) => { exit = code; });
  for (;;) {
    signal.throwIfAborted();
    if (exit !== undefined) throw new Error(`${child.name} exited (${exit}) before it listened:\n${child.tail()}`);
    const open = await new Promise<boolean>((resolve) => {
      const socket = connect({ host: '127.0.0.1', port });
      socket.once('connect', () => { socket.destroy(); resolve(true); });
      socket.once('error', () => { socket.destroy(); resolve(false); });
    });
    if (open) return;
    if (Date.now() > deadline) throw new Error(`${child.name} not listening on ${port} after ${timeoutMs} ms:\n${child.tail()}`);
    await sleep(50, undefined, { signal });
  }
}

export interface Nats {
  url: string;
  port: number;
  /** Stops the server (SIGTERM, its store kept) and starts it again on the same port and store. */
  restart(options?: { downMs?: number }): Promise<void>;
  /** Stops it for good and removes its store. Never throws. */
  stop(): Promise<void>;
}

/** A nats-server with JetStream on a free port, its store in a temp folder of its own. */
export async function startNats(options: { signal: AbortSignal }): Promise<Nats> {
  const { signal } = options;
  const port = await freePort();
  const storeDir = await mkdtemp(join(tmpdir(), 'asyncscope-nats-'));
  const spawn = async (): Promise<Child> => {
    const child = spawnChild({
      name: 'nats',
      command: NATS_SERVER,
      args: ['-a', '127.0.0.1', '-p', String(port), '-js', '-sd', storeDir],
      cwd: storeDir,
      // eslint-disable-next-line no-restricted-properties -- the child's PATH and the like, not settings
      env: process.env,
      echo: (line) => /\[(ERR|FTL)\]/.test(line),
    });
    try {
      await waitForPort(child, port, 10_000, signal);
    } catch (error) {
      await stopChild(child, 2000);
      throw error;
    }
    return child;
  };
  let child: Child | undefined = await spawn().catch(async (error: unknown) => {
    await rm(storeDir, { recursive: true, force: true });
    throw error;
  });
  return {
    url: `nats://127.0.0.1:${port}`,
    port,
    async restart(restartOptions = {}) {
      if (child) await stopChild(child, 5000);
      child = undefined;
      if (restartOptions.downMs) await sleep(restartOptions.downMs, undefined, { signal });
      child = await spawn();
    },
    async stop() {
      if (child) await stopChild(child, 5000);
      child = undefined;
      await rm(storeDir, { recursive: true, force: true }).catch(() => undefined);
    },
  };
}

export interface HaproxyBackend {
  /** The server's name in HAProxy (and in its stats). */
  name: string;
  /** http://127.0.0.1:port */
  url: string;
}

export interface Haproxy {
  url: string;
  /** The backend servers' states from HAProxy's stats (UP, DOWN, MAINT, ...), and the sessions each got in total. */
  servers(): Promise<{ name: string; status: string; sessionsTotal: number }[]>;
  /** Adds a server at runtime (HAProxy's `add server`), health-checked like the others. */
  addBackend(backend: HaproxyBackend): Promise<void>;
  stop(): Promise<void>;
}

/**
 * The sample config with this run's settings: its `bind` on a free port, its `server` lines replaced by
 * `backends`, and the runtime API on a socket in the temp folder. Everything else (timeouts, retries,
 * health checks, balance) is the sample's own.
 */
export function haproxyConfig(sample: string, options: { port: number; backends: readonly HaproxyBackend[]; socket: string }): string {
  const lines = sample.split('\n').filter((line) => !/^\s*server\s/.test(line));
  const out: string[] = [];
  for (const line of lines) {
    if (/^\s*bind\s/.test(line)) out.push(`    bind 127.0.0.1:${options.port}`);
    else if (/^\s*stats socket\s/.test(line)) out.push(`    stats socket ${options.socket} mode 600 level admin`);
    else out.push(line);
  }
  // The servers go at the end of the (last) backend section.
  const servers = options.backends.map((b) => `    server ${b.name} ${new URL(b.url).host} check`);
  if (!out.some((line) => /^backend\s/.test(line))) throw new Error('the sample config has no backend section');
  return `${out.join('\n').trimEnd()}\n${servers.join('\n')}\n`;
}

/** Sends one command to HAProxy's runtime API and returns its answer. */
async function runtimeApi(socket: string, command: string, signal: AbortSignal): Promise<string> {
  signal.throwIfAborted();
  return new Promise((resolve, reject) => {
    // The abort listener by hand: Node 20's connect({ signal }) leaves one on the signal per socket, closed
    // or not (MaxListenersExceededWarning when a test polls).
    const client = connect({ path: socket });
    const onAbort = (): void => { client.destroy(signal.reason instanceof Error ? signal.reason : new Error('aborted')); };
    signal.addEventListener('abort', onAbort, { once: true });
    let answer = '';
    client.setEncoding('utf8');
    client.on('data', (chunk: string) => { answer += chunk; });
    client.once('error', reject);
    client.once('close', () => {
      signal.removeEventListener('abort', onAbort);
      resolve(answer);
    });
    client.end(`${command}\n`);
  });
}

/** HAProxy (the sample config) on a free port in front of `backends`, in the foreground (-db). */
export async function startHaproxy(options: { backends: readonly HaproxyBackend[]; signal: AbortSignal }): Promise<Haproxy> {
  const { signal } = options;
  const dir = await mkdtemp(join(tmpdir(), 'asyncscope-haproxy-'));
  await chmod(dir, 0o700);
  const port = await freePort();
  const socket = join(dir, 'admin.sock');
  const config = join(dir, 'haproxy.cfg');
  await writeFile(config, haproxyConfig(readFileSync(HAPROXY_SAMPLE, 'utf8'), { port, backends: options.backends, socket }));
  const child = spawnChild({
    name: 'haproxy',
    command: HAPROXY,
    args: ['-f', config, '-db'],
    cwd: dir,
    // eslint-disable-next-line no-restricted-properties -- the child's PATH and the like, not settings
    env: process.env,
    // Its access log goes to stdout; only its own warnings and alerts are worth echoing.
    echo: (line) => /\[(ALERT|WARNING)\]/.test(line) && !/health check|is (DOWN|UP)|backend .* has no server available/.test(line),
  });
  const stop = async () => {
    await stopChild(child, 5000);
    await rm(dir, { recursive: true, force: true }).catch(() => undefined);
  };
  try {
    await waitForPort(child, port, 10_000, signal);
    // The runtime API's socket appears with the listeners; give it a moment, not forever.
    for (let waited = 0; !existsSync(socket); waited += 20) {
      if (waited > 5000) throw new Error(`haproxy: no runtime API socket at ${socket}:\n${child.tail()}`);
      await sleep(20, undefined, { signal });
    }
  } catch (error) {
    await stop();
    throw error;
  }
  const call = async (command: string) => {
    const answer = await runtimeApi(socket, command, signal);
    return answer;
  };
  return {
    url: `http://127.0.0.1:${port}`,
    async servers() {
      // CSV: # pxname,svname,qcur,qmax,scur,smax,slim,stot,...,status is column 17 (0-based)
      const csv = await call('show stat');
      const [header, ...rows] = csv.trim().split('\n');
      const columns = (header ?? '').replace(/^# /, '').split(',');
      const at = (name: string) => columns.indexOf(name);
      return rows
        .map((row) => row.split(','))
        .filter((cells) => cells[at('pxname')] === 'instances' && !['BACKEND', 'FRONTEND'].includes(cells[at('svname')] ?? ''))
        .map((cells) => ({ name: cells[at('svname')] ?? '', status: cells[at('status')] ?? '', sessionsTotal: Number(cells[at('stot')] ?? 0) }));
    },
    async addBackend(backend) {
      const added = await call(`add server instances/${backend.name} ${new URL(backend.url).host} check`);
      if (!/New server registered/i.test(added)) throw new Error(`haproxy: add server ${backend.name}: ${added.trim()}`);
      // A server added at runtime starts in maintenance, its health checks off.
      await call(`enable health instances/${backend.name}`);
      await call(`enable server instances/${backend.name}`);
    },
    stop,
  };
}

export interface Instance extends ApiServer {
  /** Its INSTANCE_ID. */
  id: string;
  /** Its DB_APPLICATION_NAME: how its pool's sessions are found in pg_stat_activity. */
  applicationName: string;
}

export interface Instances {
  /** The bearer token every instance accepts (one caller, whichever instance answers). */
  token: string;
  list(): readonly Instance[];
  /** Starts one more instance (the next id). */
  add(): Promise<Instance>;
  /** SIGKILL: no drain, no goodbye; resolves when it has exited. */
  kill(instance: Instance): Promise<void>;
  /** Stops every instance still running (SIGTERM, each drains). Never throws. */
  close(): Promise<void>;
}

export interface InstancesOptions {
  databaseUrl: string;
  eventsUrl: string;
  /** apps/server folder with dist/ built (the `serve` script is what runs). */
  serverDir: string;
  /** More settings for every instance. */
  env?: Record<string, string>;
  signal: AbortSignal;
}

/** N built servers on their own ports, one database, one broker, one token; ids `<prefix>-1` … `<prefix>-N`. */
export async function startInstances(n: number, options: InstancesOptions): Promise<Instances> {
  const token = randomBytes(18).toString('hex');
  const prefix = `inst-${randomBytes(2).toString('hex')}`;
  const running: Instance[] = [];
  let next = 1;
  const add = async (): Promise<Instance> => {
    const id = `${prefix}-${next++}`;
    const applicationName = `asyncscope-${id}`;
    const server = await startApiServer(
      options.databaseUrl,
      { EVENTS_URL: options.eventsUrl, INSTANCE_ID: id, DB_APPLICATION_NAME: applicationName, ...options.env },
      options.signal,
      { serverDir: options.serverDir, token },
    );
    const instance: Instance = { ...server, id, applicationName };
    running.push(instance);
    return instance;
  };
  const close = async () => {
    await Promise.all(running.splice(0).map((instance) => instance.close()));
  };
  try {
    // One at a time: n servers migrating and warming up at once on 2 cores only makes each slower.
    for (let i = 0; i < n; i++) await add();
  } catch (error) {
    await close();
    throw error;
  }
  return {
    token,
    list: () => running,
    add,
    async kill(instance) {
      try {
        process.kill(-instance.child.pid, 'SIGKILL');
      } catch {
        // already gone
      }
      await within(instance.child.exited, 5000);
    },
    close,
  };
}
