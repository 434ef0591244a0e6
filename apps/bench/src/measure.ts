/** Load generation (autocannon) and what the kernel says about a server process (/proc). */
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import autocannon from 'autocannon';

/** Clock ticks per second, the unit of utime/stime in /proc/<pid>/stat (100 on Linux in practice). */
export const CLK_TCK: number = (() => {
  try {
    const n = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim());
    return Number.isInteger(n) && n > 0 ? n : 100;
  } catch {
    return 100;
  }
})();

interface Stat { comm: string; ppid: number; utime: number; stime: number; cutime: number; cstime: number }

/** /proc/<pid>/stat, the fields we use (times in clock ticks); undefined if the process is gone. */
function readStat(pid: number | string): Stat | undefined {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  // Field 2 (comm) is in parentheses and may contain spaces: count fields after the last ')'.
  // What follows starts at field 3 (state); ppid is field 4, utime/stime/cutime/cstime are fields 14–17.
  const close = stat.lastIndexOf(')');
  const fields = stat.slice(close + 2).split(' ').map(Number);
  const [ppid, utime, stime, cutime, cstime] = [fields[1], fields[11], fields[12], fields[13], fields[14]];
  if (ppid === undefined || utime === undefined || stime === undefined || cutime === undefined || cstime === undefined || !Number.isFinite(utime + stime + cutime + cstime)) {
    throw new Error(`cannot parse /proc/${pid}/stat`);
  }
  return { comm: stat.slice(stat.indexOf('(') + 1, close), ppid, utime, stime, cutime, cstime };
}

const micros = (ticks: number) => (ticks * 1_000_000) / CLK_TCK;

/** User + system CPU time the process has used so far, in microseconds (all its threads). */
export function cpuMicros(pid: number): number {
  const stat = readStat(pid);
  if (!stat) throw new Error(`process ${pid} is gone`);
  return micros(stat.utime + stat.stime);
}

/**
 * The postmaster of a PostgreSQL backend running on this machine (from `select pg_backend_pid()`), or
 * undefined when that pid is not a postgres process here (a remote server, or a container's pid space).
 */
export function postmasterOf(backendPid: number): number | undefined {
  const backend = readStat(backendPid);
  if (!backend?.comm.startsWith('postgres')) return undefined;
  const postmaster = readStat(backend.ppid);
  return postmaster?.comm.startsWith('postgres') ? backend.ppid : undefined;
}

/**
 * CPU time of a PostgreSQL server so far, in microseconds: the postmaster and every process it started
 * (backends, checkpointer, walwriter, …). The postmaster's cutime/cstime hold what its exited children
 * used, so a backend that ends between two readings is still counted once.
 */
export function postgresCpuMicros(postmaster: number): number {
  const own = readStat(postmaster);
  if (!own) throw new Error(`PostgreSQL (postmaster ${postmaster}) is gone`);
  let ticks = own.utime + own.stime + own.cutime + own.cstime;
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const child = readStat(entry);
    if (child?.ppid === postmaster) ticks += child.utime + child.stime + child.cutime + child.cstime;
  }
  return micros(ticks);
}

/** Peak resident set size (VmHWM) of the process, in bytes. */
export function peakRssBytes(pid: number): number {
  const match = /^VmHWM:\s+(\d+)\s+kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (!match?.[1]) throw new Error(`no VmHWM in /proc/${pid}/status`);
  return Number(match[1]) * 1024;
}

export interface LoadOptions {
  /** Base URL, e.g. http://127.0.0.1:4000 */
  url: string;
  /** The path of the i-th request (i counts up across all connections). */
  path: (i: number) => string;
  headers: Record<string, string>;
  seconds: number;
  connections: number;
  signal: AbortSignal;
  /** Cut the run into windows of this many seconds (the soak), reading `sample()` at each boundary. */
  windows?: { seconds: number; sample: () => number };
}

/** One window of a run: responses received and how much `sample()` grew (e.g. CPU µs) within it. */
export interface LoadWindow { seconds: number; responses: number; sampled: number }

export interface LoadResult {
  requests: number;
  reqPerSec: number;
  p50Ms: number;
  p99Ms: number;
  non2xx: number;
  /** Connection errors and timeouts. */
  errors: number;
  /** Non-2xx status codes and a few request errors, for the report when something went wrong. */
  problems: string[];
  /** With `windows`: the run window by window (a last partial window is dropped). */
  windows: LoadWindow[];
}

/** Runs autocannon for `seconds` (pipelining 1); stops early, and rejects, if `signal` aborts. */
export async function runLoad(options: LoadOptions): Promise<LoadResult> {
  options.signal.throwIfAborted();
  let i = 0;
  const requestErrors = new Map<string, number>();
  const windows: LoadWindow[] = [];
  let responses = 0;
  let timer: NodeJS.Timeout | undefined;
  const result = await new Promise<autocannon.Result>((resolve, reject) => {
    const instance = autocannon(
      {
        url: options.url,
        connections: options.connections,
        pipelining: 1,
        duration: options.seconds,
        headers: options.headers,
        // One request whose path is rebuilt each time from a counter shared by every connection, so the
        // server sees ids/offsets cycle instead of one cached row.
        requests: [{ method: 'GET', setupRequest: (request) => ({ ...request, path: options.path(i++) }) }],
      },
      (error: unknown, res) => {
        options.signal.removeEventListener('abort', stop);
        clearInterval(timer);
        if (error) reject(error instanceof Error ? error : new Error(JSON.stringify(error)));
        else resolve(res);
      },
    );
    instance.on('reqError', (error: unknown) => {
      const key = error instanceof Error ? error.message : String(error);
      requestErrors.set(key, (requestErrors.get(key) ?? 0) + 1);
    });
    const { windows: cut } = options;
    if (cut) {
      instance.on('response', () => { responses++; });
      let last = { at: performance.now(), responses: 0, sample: cut.sample() };
      timer = setInterval(() => {
        const now = { at: performance.now(), responses, sample: cut.sample() };
        windows.push({ seconds: (now.at - last.at) / 1000, responses: now.responses - last.responses, sampled: now.sample - last.sample });
        last = now;
      }, cut.seconds * 1000);
    }
    const stop = () => { instance.stop(); };
    options.signal.addEventListener('abort', stop, { once: true });
  });
  options.signal.throwIfAborted();

  const problems: string[] = [];
  for (const [code, { count }] of Object.entries(result.statusCodeStats ?? {})) {
    if (!code.startsWith('2')) problems.push(`HTTP ${code} x${count ?? 0}`);
  }
  for (const [message, count] of requestErrors) problems.push(`${message} x${count}`);
  return {
    requests: result.requests.total,
    reqPerSec: result.requests.mean,
    p50Ms: result.latency.p50,
    p99Ms: result.latency.p99,
    non2xx: result.non2xx,
    errors: result.errors,
    problems,
    windows,
  };
}
