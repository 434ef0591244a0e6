/**
 * Load from a typed client: `concurrency` calls kept in flight for `seconds`, each a call through the client
 * under test (tRPC over one WebSocket, or over httpLink). autocannon measures raw HTTP; this measures what a
 * program using our client gets, so transports can be compared on the same footing.
 */
import { setMaxListeners } from 'node:events';

export interface ClientLoadOptions {
  /** The i-th call; it must settle (the load waits for it). */
  call: (i: number, signal: AbortSignal) => Promise<unknown>;
  concurrency: number;
  seconds: number;
  signal: AbortSignal;
}

export interface ClientLoadResult {
  requests: number;
  errors: number;
  firstError: string | undefined;
  reqPerSec: number;
  p50Ms: number;
  p99Ms: number;
}

function percentile(sorted: Float64Array, p: number): number {
  return sorted.length === 0 ? NaN : (sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN);
}

export async function runClientLoad(options: ClientLoadOptions): Promise<ClientLoadResult> {
  const { call, concurrency, seconds, signal } = options;
  const stopAt = performance.now() + seconds * 1000;
  const latencies: number[] = [];
  let errors = 0;
  let firstError: string | undefined;
  let next = 0;
  const started = performance.now();
  // A function, not the property: TypeScript would take `signal.aborted` as false after the loop's check.
  const stopped = (): boolean => signal.aborted;
  const worker = async (): Promise<void> => {
    // One signal per worker, linked to the run's: the calls' listeners land here, not all on one signal.
    const own = new AbortController();
    // Node 20's fetch (undici) removes its listener from a request's signal only when the Request is garbage
    // collected (https://github.com/nodejs/node/issues/52635; undici fixed it in nodejs/undici#5318, not in
    // Node 20's copy), so the baseline's fetches, call after call on this signal, pile up listeners between
    // collections and Node warns past 1,500. They go at the next collection: not a leak, only noise in the
    // bench's output. (Our client gives each call a signal of its own: packages/client's first link.)
    setMaxListeners(0, own.signal);
    const onAbort = (): void => { own.abort(signal.reason); };
    signal.addEventListener('abort', onAbort, { once: true });
    try {
      await loop(own.signal);
    } finally {
      signal.removeEventListener('abort', onAbort);
    }
  };
  const loop = async (callSignal: AbortSignal): Promise<void> => {
    while (performance.now() < stopAt && !stopped()) {
      const i = next++;
      const t0 = performance.now();
      try {
        await call(i, callSignal);
        latencies.push(performance.now() - t0);
      } catch (error) {
        if (stopped()) return;
        errors++;
        firstError ??= error instanceof Error ? error.message : String(error);
      }
    }
  };
  await Promise.all(Array.from({ length: concurrency }, () => worker()));
  const elapsed = (performance.now() - started) / 1000;
  const sorted = Float64Array.from(latencies).sort();
  return { requests: latencies.length, errors, firstError, reqPerSec: latencies.length / elapsed, p50Ms: percentile(sorted, 50), p99Ms: percentile(sorted, 99) };
}
