/**
 * The built server as `pnpm start` runs it — the serve script's node arguments on dist/main.mjs (turbo builds
 * it before the server's tests) — as a child process, for the tests that watch a user's view of it: the
 * banner, signals, exit codes.
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { until as untilValue } from '@asyncscope/concurrency/testing';

const appDir = fileURLToPath(new URL('..', import.meta.url));
const serveArgs = (JSON.parse(readFileSync(join(appDir, 'package.json'), 'utf8')) as { scripts: { serve: string } }).scripts.serve.trim().split(/\s+/).slice(1);

export interface ServerProcess {
  proc: ChildProcessWithoutNullStreams;
  stdout(): string;
  stderr(): string;
  /** stdout and stderr as they arrived. */
  output(): string;
  exited: Promise<number | null>;
}

const running: ServerProcess[] = [];

/** Starts the server with only PATH, HOME, LOG_LEVEL=info and `env` in its environment. */
export function launchServer(env: Record<string, string>): ServerProcess {
  const proc = spawn(process.execPath, serveArgs, {
    cwd: appDir,
    // A test helper, not configuration: the child gets the runner's PATH and HOME and nothing else of its environment.
    // eslint-disable-next-line no-restricted-properties
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp', LOG_LEVEL: 'info', ...env },
  });
  let out = '';
  let err = '';
  let all = '';
  proc.stdout.on('data', (b: Buffer) => { out += b.toString(); all += b.toString(); });
  proc.stderr.on('data', (b: Buffer) => { err += b.toString(); all += b.toString(); });
  const exited = new Promise<number | null>((resolve) => proc.once('exit', (code) => { resolve(code); }));
  const child: ServerProcess = { proc, stdout: () => out, stderr: () => err, output: () => all, exited };
  running.push(child);
  return child;
}

/** For afterEach: SIGKILL every server a test left running, and wait until each has exited. */
export async function killServers(): Promise<void> {
  for (const child of running.splice(0)) {
    if (child.proc.exitCode === null && child.proc.signalCode === null) child.proc.kill('SIGKILL');
    await child.exited;
  }
}

/** Polls `fn` until it returns a value; fails with the server's output if it exits or `timeoutMs` passes first. */
export function until<T>(what: string, fn: () => T | undefined, child: ServerProcess, timeoutMs = 30_000): Promise<T> {
  return untilValue(what, () => {
    const value = fn();
    if (value === undefined && child.proc.exitCode !== null) throw new Error(`the server exited (${child.proc.exitCode}) while waiting for ${what}:\n${child.output()}`);
    return value;
  }, { timeoutMs, intervalMs: 20, context: () => child.output() });
}
