/**
 * Keeps a pool's connections open (asyncpg's `min_size`, HikariCP's `minimumIdle`): postgres.js opens a
 * connection only when a statement needs one and closes it after `idle_timeout`, so the first burst after a
 * quiet spell paid for connecting, authenticating, fetching the array types and preparing its statements on
 * each new connection: in the fetch lab, a run at concurrency 20 after one at 4 showed 130–170 ms on the server
 * for the calls that opened the pool's other connections, against 2 ms for the rest.
 *
 * postgres.js has no minimum, and gives a statement an idle connection first, then a closed one (which it
 * opens), so `n` trivial statements at once reach `n` different connections of an idle pool: each keeper round
 * sends one per connection to keep (fewer while the pool's own statements hold some), which opens the closed
 * ones and restarts the idle timers of the open ones. Rounds come every `intervalMs` (under the idle timeout), at
 * once on `nudge()` (the database is back), and sooner after a failed round (backing off to `intervalMs`).
 * Hand-written: no library keeps a postgres.js pool open; this uses only its public API.
 */
import { setTimeout as sleep } from 'node:timers/promises';

export interface PoolKeeperOptions {
  /** Connections to keep open. */
  min: number;
  /** Between rounds; below the pool's idle timeout, so a kept connection never idles out. */
  intervalMs: number;
  /** Sends one trivial statement through the pool (not pipelined: on a connection of its own). */
  ping: (signal: AbortSignal) => Promise<unknown>;
  /** The pool's own statements sent to Postgres, each holding a connection that is open already. */
  running: () => number;
  /** Statements waiting for a connection: every connection is in use (open), and a ping would only wait. */
  queued: () => number;
  /** A round's pings give up after this long (the database does not answer). */
  pingTimeoutMs: number;
  /** Told when a round failed (the database away, say); the keeper tries again, sooner. */
  onError?: (error: unknown) => void;
  /** First retry after a failed round; doubles up to `intervalMs`. Default 250 ms. */
  retryMs?: number;
}

export interface PoolKeeper {
  /** Runs a round now (e.g. the database came back), and resets the back-off. */
  nudge(): void;
  /** Rounds run so far, and how many of them failed. */
  readonly rounds: number;
  readonly failedRounds: number;
  /** Stops the rounds; a round in flight has its pings cancelled. */
  close(): Promise<void>;
}

export function keepPoolOpen(options: PoolKeeperOptions): PoolKeeper {
  const retryMs = options.retryMs ?? 250;
  const stop = new AbortController();
  let nap = new AbortController();
  let nudged = false;
  let rounds = 0;
  let failedRounds = 0;

  const round = async (): Promise<boolean> => {
    if (options.queued() > 0) return true;
    const pings = Math.max(0, options.min - options.running());
    if (pings === 0) return true;
    rounds++;
    const signal = AbortSignal.any([stop.signal, AbortSignal.timeout(options.pingTimeoutMs)]);
    const results = await Promise.allSettled(Array.from({ length: pings }, async () => options.ping(signal)));
    const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (!failed || stop.signal.aborted) return true;
    failedRounds++;
    try {
      options.onError?.(failed.reason);
    } catch {
      // A logger's failure is not the keeper's: it goes on.
    }
    return false;
  };

  // Both change while the loop awaits (close(), nudge()): read through functions, not narrowed by the checks above.
  const stopped = (): boolean => stop.signal.aborted;
  const wasNudged = (): boolean => nudged;
  const loop = async (): Promise<void> => {
    let failures = 0;
    while (!stopped()) {
      nudged = false;
      failures = (await round()) ? 0 : failures + 1;
      if (stopped() || wasNudged()) continue;
      const delay = failures === 0 ? options.intervalMs : Math.min(options.intervalMs, retryMs * 2 ** (failures - 1));
      nap = new AbortController();
      // Unref'd: a kept pool alone never holds a process open (its owner closes it).
      await sleep(delay, undefined, { signal: AbortSignal.any([stop.signal, nap.signal]), ref: false }).catch(() => undefined);
      if (wasNudged()) failures = 0;
    }
  };
  const done = loop();

  return {
    nudge: () => {
      nudged = true;
      nap.abort();
    },
    get rounds() {
      return rounds;
    },
    get failedRounds() {
      return failedRounds;
    },
    close: async () => {
      stop.abort();
      await done;
    },
  };
}
