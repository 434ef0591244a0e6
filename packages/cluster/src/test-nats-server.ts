/**
 * A real nats-server for tests: its own free port and storage directory, so a test can stop and restart it
 * (the same port and data) without touching the machine's broker.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const BINARY = '/usr/sbin/nats-server';

export interface TestNatsServer {
  readonly url: string;
  readonly port: number;
  /** `http://127.0.0.1:<port>` when started with `monitor`. */
  readonly monitorUrl?: string;
  /** Starts it again (same port and storage) after `stop`. */
  start(): Promise<void>;
  /** SIGTERM (SIGKILL with `hard`), and waits for the exit. */
  stop(hard?: boolean): Promise<void>;
  /** Stops it, empties its storage and starts it again: a broker that lost its data. */
  wipe(): Promise<void>;
  /** Stops it and removes its storage. */
  dispose(): Promise<void>;
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => {
        resolve(port);
      });
    });
  });
}

export interface NatsServerOptions {
  /** Start it with JetStream (default true); false: a broker the link connects to but cannot use. */
  jetstream?: boolean;
  /** Also serve the monitoring endpoint (`monitorUrl`/varz: the server's own message counts). */
  monitor?: boolean;
}

export async function startNatsServer(options: NatsServerOptions = {}): Promise<TestNatsServer> {
  const port = await freePort();
  const monitorPort = options.monitor ? await freePort() : undefined;
  const dir = await mkdtemp(join(tmpdir(), 'asyncscope-nats-'));
  let child: ChildProcess | undefined;

  const start = async (): Promise<void> => {
    const args = ['-a', '127.0.0.1', '-p', String(port), ...(options.jetstream === false ? [] : ['-js', '-sd', dir]), ...(monitorPort ? ['-m', String(monitorPort)] : [])];
    const proc = spawn(BINARY, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    child = proc;
    await new Promise<void>((resolve, reject) => {
      let log = '';
      const timer = setTimeout(() => {
        proc.kill('SIGKILL');
        reject(new Error(`nats-server did not start in 10 s:\n${log}`));
      }, 10_000);
      const onData = (chunk: Buffer): void => {
        log += chunk.toString();
        if (log.includes('Server is ready')) {
          clearTimeout(timer);
          proc.stderr.off('data', onData);
          proc.stderr.resume(); // keep draining, never buffer it
          resolve();
        }
      };
      proc.stderr.on('data', onData);
      proc.once('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`nats-server exited (${code}):\n${log}`));
      });
    });
  };

  const stop = async (hard = false): Promise<void> => {
    const proc = child;
    child = undefined;
    if (!proc || proc.exitCode !== null) return;
    const exited = new Promise<void>((resolve) => proc.once('exit', () => {
      resolve();
    }));
    proc.kill(hard ? 'SIGKILL' : 'SIGTERM');
    const timer = setTimeout(() => proc.kill('SIGKILL'), 5_000);
    await exited;
    clearTimeout(timer);
  };

  await start();
  return {
    url: `nats://127.0.0.1:${port}`,
    port,
    ...(monitorPort ? { monitorUrl: `http://127.0.0.1:${monitorPort}` } : {}),
    start,
    stop,
    wipe: async () => {
      await stop();
      await rm(dir, { recursive: true, force: true });
      await mkdir(dir, { recursive: true });
      await start();
    },
    dispose: async () => {
      await stop();
      await rm(dir, { recursive: true, force: true });
    },
  };
}
