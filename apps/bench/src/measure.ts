/** Load generation (autocannon) and what the kernel says about a server process (/proc). */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
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

/** User + system CPU time the process has used so far, in microseconds (all its threads). */
export function cpuMicros(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // Field 2 (comm) is in parentheses and may contain spaces: count fields after the last ')'.
  // What follows starts at field 3 (state); utime and stime are fields 14 and 15.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const ticks = Number(fields[11]) + Number(fields[12]);
  if (!Number.isFinite(ticks)) throw new Error(`cannot parse /proc/${pid}/stat`);
  return (ticks * 1_000_000) / CLK_TCK;
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
}

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
}

/** Runs autocannon for `seconds` (pipelining 1); stops early, and rejects, if `signal` aborts. */
export async function runLoad(options: LoadOptions): Promise<LoadResult> {
  options.signal.throwIfAborted();
  let i = 0;
  const requestErrors = new Map<string, number>();
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
        if (error) reject(error instanceof Error ? error : new Error(JSON.stringify(error)));
        else resolve(res);
      },
    );
    instance.on('reqError', (error: unknown) => {
      const key = error instanceof Error ? error.message : String(error);
      requestErrors.set(key, (requestErrors.get(key) ?? 0) + 1);
    });
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
  };
}
