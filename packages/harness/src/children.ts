/** Server processes under test: spawn, wait until they answer, stop. */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { get as httpsGet } from 'node:https';
import { createInterface } from 'node:readline';
import { setTimeout as sleep } from 'node:timers/promises';
import { deadline as deadlineScope } from '@asyncscope/concurrency';

const MAX_ECHOED = 20;

export interface Child {
  name: string;
  pid: number;
  process: ChildProcess;
  /** Settles when the process has exited (with its code, or the signal's name). */
  exited: Promise<number | string>;
  /** The last lines it printed, for error messages. */
  tail(): string;
}

export interface SpawnOptions {
  name: string;
  /** Arguments after the node executable, e.g. ['--import', 'tsx', 'src/main.ts']. */
  args: string[];
  /** Another program than node (nats-server, haproxy), given `args`. */
  command?: string;
  /** Which of its lines are echoed (default: stderr lines and JSON log lines on stdout). */
  echo?: (line: string) => boolean;
  cwd: string;
  env: NodeJS.ProcessEnv;
}

/**
 * Starts `node <args>` in its own process group (so the terminal's Ctrl+C reaches only the benchmark,
 * which then stops its children in order). Lines on stderr, and JSON log lines on stdout (pino writes
 * there; at LOG_LEVEL=warn every one is a warning or worse), are echoed with the child's name.
 */
export function spawnChild(options: SpawnOptions): Child {
  const child = spawn(options.command ?? process.execPath, options.args, { cwd: options.cwd, env: options.env, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  const lines: string[] = [];
  let echoed = 0;
  const remember = (stream: NodeJS.ReadableStream, echo: (line: string) => boolean) => {
    createInterface({ input: stream }).on('line', (line) => {
      lines.push(line);
      if (lines.length > 40) lines.shift();
      if (!echo(line)) return;
      // A failing server logs one (long) line per request: show the first few, shortened.
      if (++echoed <= MAX_ECHOED) process.stderr.write(`[${options.name}] ${line.length > 400 ? `${line.slice(0, 400)}…` : line}\n`);
      else if (echoed === MAX_ECHOED + 1) process.stderr.write(`[${options.name}] (more output not shown)\n`);
    });
  };
  remember(child.stdout, options.echo ?? ((line) => line.startsWith('{')));
  remember(child.stderr, options.echo ?? (() => true));

  const exited = new Promise<number | string>((resolve) => {
    child.once('exit', (code, signal) => { resolve(code ?? signal ?? 'unknown'); });
    // spawn failures (ENOENT, ...) come as 'error' without 'exit'.
    child.once('error', (error) => { resolve(`spawn error: ${error.message}`); });
  });
  if (child.pid === undefined) throw new Error(`could not start ${options.name}`);
  const pid = child.pid;
  live.add(pid);
  void exited.then(() => live.delete(pid));
  return { name: options.name, pid, process: child, exited, tail: () => lines.join('\n') };
}

/** Process groups of children not yet exited. */
const live = new Set<number>();

/** Last resort before exiting without cleanup: SIGKILL every child still running (synchronous). */
export function killAllNow(): void {
  for (const pid of live) {
    try {
      process.kill(-pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
}

/**
 * Polls `url` until it answers 200. Fails if the child exits first, if `timeoutMs` passes, or if
 * `signal` aborts.
 */
export async function waitUntilOk(child: Child, url: string, options: { timeoutMs: number; signal: AbortSignal; headers?: Record<string, string>; ca?: string }): Promise<void> {
  const deadline = Date.now() + options.timeoutMs;
  let exitCode: number | string | undefined;
  void child.exited.then((code) => { exitCode = code; });
  let last = 'no answer yet';
  for (;;) {
    options.signal.throwIfAborted();
    if (exitCode !== undefined) throw new Error(`${child.name} exited (${exitCode}) before it was ready:\n${child.tail()}`);
    try {
      // deadlineScope() links to the caller's signal without AbortSignal.any (which leaks on Node 20).
      const attempt = deadlineScope(2000, { signal: options.signal });
      try {
        const res = options.ca === undefined ? await fetch(url, { headers: options.headers, signal: attempt.signal }) : await getOverTls(url, options.ca, options.headers, attempt.signal);
        const body = await res.text();
        if (res.status === 200) return;
        last = `${res.status} ${body.slice(0, 300)}`;
      } finally {
        attempt.dispose();
      }
    } catch (error) {
      options.signal.throwIfAborted();
      last = error instanceof Error ? error.message : String(error);
    }
    if (Date.now() > deadline) throw new Error(`${child.name} not ready at ${url} after ${options.timeoutMs} ms (last: ${last}):\n${child.tail()}`);
    await sleep(100, undefined, { signal: options.signal });
  }
}

/** GET over https trusting only `ca` (fetch cannot be given a CA of its own without undici's Agent). */
function getOverTls(url: string, ca: string, headers: Record<string, string> | undefined, signal: AbortSignal): Promise<{ status: number; text: () => Promise<string> }> {
  return new Promise((resolve, reject) => {
    httpsGet(url, { ca, headers, signal, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => { resolve({ status: res.statusCode ?? 0, text: () => Promise.resolve(Buffer.concat(chunks).toString('utf8')) }); });
      res.on('error', reject);
    }).on('error', reject);
  });
}

/** SIGTERM to the child's process group, then SIGKILL if it has not exited within `graceMs`. Never throws. */
export async function stopChild(child: Child, graceMs = 10_000): Promise<void> {
  if (child.process.exitCode !== null || child.process.signalCode !== null) return;
  const signalGroup = (signal: NodeJS.Signals) => {
    try {
      process.kill(-child.pid, signal);
    } catch {
      // already gone
    }
  };
  signalGroup('SIGTERM');
  if ((await within(child.exited, graceMs)) === 'timeout') {
    process.stderr.write(`bench: ${child.name} did not stop within ${graceMs} ms of SIGTERM; killing it\n`);
    signalGroup('SIGKILL');
    await within(child.exited, 2000);
  }
  // Let the readline interfaces see the end of the pipes.
  await within(once(child.process, 'close'), 500);
}

/** Resolves with `promise`, or with 'timeout' after `ms` (the timer does not outlive the race). */
export async function within<T>(promise: Promise<T>, ms: number): Promise<T | 'timeout'> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<'timeout'>((resolve) => { timer = setTimeout(() => { resolve('timeout'); }, ms); });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Runs a benchmark script's `main` with a signal that Ctrl+C and SIGTERM abort (so it stops its servers and
 * database on the way out); if it fails, kills whatever it started and exits 1.
 */
export function runBench(main: (signal: AbortSignal) => Promise<void>): void {
  const controller = new AbortController();
  const onSignal = (): void => { controller.abort(new Error('interrupted')); };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  main(controller.signal)
    .catch((error: unknown) => {
      killAllNow();
      process.stderr.write(`bench failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
      process.exitCode = 1;
    })
    .finally(() => {
      process.removeListener('SIGINT', onSignal);
      process.removeListener('SIGTERM', onSignal);
    });
}
