/**
 * Test harness: the built server as `pnpm start` runs it (a child process on a free port, its own database
 * cloned from the migrated template, a unique application_name) and the real `asyncscope` binary.
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const APP_DIR = fileURLToPath(new URL('..', import.meta.url));
export const BIN = join(APP_DIR, 'bin', 'asyncscope.mjs');
export const ARTIFACTS_DIR = join(APP_DIR, 'test-artifacts');
const SERVER_DIR = fileURLToPath(new URL('../../server', import.meta.url));
const SERVE_ARGS = (JSON.parse(readFileSync(join(SERVER_DIR, 'package.json'), 'utf8')) as { scripts: { serve: string } }).scripts.serve.trim().split(/\s+/).slice(1);

export interface ServerProcess {
  url: string;
  output: () => string;
  stop: () => Promise<void>;
}

export async function startServer(options: { port: number; databaseUrl: string; token: string; applicationName: string }): Promise<ServerProcess> {
  const proc = spawn(process.execPath, SERVE_ARGS, {
    cwd: SERVER_DIR,
    env: {
      PATH: process.env.PATH ?? '',
      HOME: process.env.HOME ?? '/tmp',
      PORT: String(options.port),
      HOST: '127.0.0.1',
      DATABASE_URL: options.databaseUrl,
      API_TOKEN: options.token,
      LOG_LEVEL: 'warn',
      DB_APPLICATION_NAME: options.applicationName,
      DB_POOL_MAX: '10',
      LAB: 'on',
    },
  });
  let out = '';
  proc.stdout.on('data', (b: Buffer) => (out += b.toString()));
  proc.stderr.on('data', (b: Buffer) => (out += b.toString()));
  const exited = new Promise<void>((resolve) => proc.once('exit', () => { resolve(); }));
  const url = `http://127.0.0.1:${options.port}`;
  const end = Date.now() + 30_000;
  for (;;) {
    if (proc.exitCode !== null) throw new Error(`the server exited (${proc.exitCode}):\n${out}`);
    if (await fetch(`${url}/readyz`).then((r) => r.ok, () => false)) break;
    if (Date.now() > end) {
      proc.kill('SIGKILL');
      throw new Error(`the server did not become ready in 30 s:\n${out}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    url,
    output: () => out,
    stop: async () => {
      if (proc.exitCode === null) proc.kill('SIGTERM');
      await exited;
    },
  };
}

export interface CliRun {
  proc: ChildProcessWithoutNullStreams;
  stdout: () => string;
  stderr: () => string;
  /** The exit code, or 128 + n for a signal n; and how long the process lived. */
  exited: Promise<{ code: number; ms: number }>;
}

/** Starts the real binary with only PATH, HOME and `env` in its environment. */
export function startCli(args: string[], env: Record<string, string>): CliRun {
  const started = performance.now();
  const proc = spawn(process.execPath, [BIN, ...args], { cwd: APP_DIR, env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp', ...env } });
  let out = '';
  let err = '';
  proc.stdout.on('data', (b: Buffer) => (out += b.toString()));
  proc.stderr.on('data', (b: Buffer) => (err += b.toString()));
  const exited = new Promise<{ code: number; ms: number }>((resolve) =>
    proc.once('exit', (code, signal) => { resolve({ code: code ?? (signal === 'SIGINT' ? 130 : 128), ms: performance.now() - started }); }),
  );
  return { proc, stdout: () => out, stderr: () => err, exited };
}

export async function runCli(args: string[], env: Record<string, string>): Promise<{ code: number; stdout: string; stderr: string }> {
  const run = startCli(args, env);
  const { code } = await run.exited;
  return { code, stdout: run.stdout(), stderr: run.stderr() };
}
