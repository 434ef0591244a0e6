import { linkSignals } from '@asyncscope/concurrency';
import { callWithPolicy } from './policy';
import type { CallContext } from './call-context';

export type FetchOutcome<K, T> = { id: K; status: 'fulfilled'; value: T } | { id: K; status: 'rejected'; reason: unknown };

/** Progress without the values (onProgress is for counting; the values come back in order at the end). */
export interface FetchProgress<K> {
  /** Items settled so far, and how many there are. */
  done: number;
  total: number;
  fulfilled: number;
  rejected: number;
  /** The item that just settled. */
  outcome: FetchOutcome<K, unknown>;
  /** Its index in `ids`. */
  index: number;
}

export interface FetchManyOptions<K> {
  /** Calls in flight at most (default 10). */
  concurrency?: number;
  /** Budget per item, its retries included; the server is told what is left. Default: none. */
  timeoutMs?: number;
  /** Retries per item, of retryable failures only (default 0). */
  retries?: number;
  minDelayMs?: number;
  maxDelayMs?: number;
  /** Aborting stops every call in flight (on the server too) and starts no more; fetchMany then rejects with the reason. */
  signal?: AbortSignal;
  /** The first failure aborts the rest, and fetchMany rejects with it. */
  failFast?: boolean;
  /** Names the calls on the server: `${callIdPrefix}-${index}` (attempts after the first get `~n`). Default: random. */
  callIdPrefix?: string;
  onProgress?: (progress: FetchProgress<K>) => void;
}

/** What fetchOne gets for one attempt: pass `signal` and `context` on as the call's options. */
export interface FetchCall {
  signal: AbortSignal;
  context: CallContext;
  attempt: number;
}

/**
 * Fetches every id with at most `concurrency` calls in flight, each under callWithPolicy (deadline, retries
 * with jitter, only retryable codes), and resolves with one settled outcome per id, in the order of `ids`.
 * A failure of one item does not stop the others (unless failFast). It never leaves work behind: it settles
 * only once every call it started has settled, and on abort no call is left running.
 *
 *   const outcomes = await fetchMany(ids, { concurrency: 50, timeoutMs: 2000, retries: 2 },
 *     (id, call) => api.users.byId.query({ id }, call));
 */
export async function fetchMany<K, T>(
  ids: readonly K[],
  // No T in the options: TypeScript would fix T at onProgress (unknown) before it reads fetchOne.
  options: FetchManyOptions<K>,
  fetchOne: (id: K, call: FetchCall) => Promise<T>,
): Promise<FetchOutcome<K, T>[]> {
  const concurrency = options.concurrency ?? 10;
  if (!Number.isInteger(concurrency) || concurrency < 1) throw new RangeError(`fetchMany: concurrency must be a positive integer, got ${concurrency}`);
  options.signal?.throwIfAborted();
  const prefix = options.callIdPrefix ?? `fetch-${Math.random().toString(36).slice(2, 10)}`;
  // Our own signal: the caller's abort, or failFast's. Disposed at the end, so no listener outlives the call.
  const scope = linkSignals(options.signal);
  const outcomes = new Array<FetchOutcome<K, T>>(ids.length);
  let next = 0;
  let fulfilled = 0;
  let rejected = 0;
  let firstFailure: { error: unknown } | undefined;

  const settle = (index: number, outcome: FetchOutcome<K, T>): void => {
    outcomes[index] = outcome;
    if (outcome.status === 'fulfilled') fulfilled++;
    else rejected++;
    options.onProgress?.({ done: fulfilled + rejected, total: ids.length, fulfilled, rejected, outcome, index });
  };

  const worker = async (): Promise<void> => {
    while (next < ids.length && !scope.signal.aborted) {
      const index = next++;
      const id = ids[index] as K;
      try {
        const value = await callWithPolicy((call) => fetchOne(id, call), {
          callId: `${prefix}-${index}`,
          signal: scope.signal,
          retries: options.retries ?? 0,
          ...(options.timeoutMs !== undefined ? { timeoutMs: options.timeoutMs } : {}),
          ...(options.minDelayMs !== undefined ? { minDelayMs: options.minDelayMs } : {}),
          ...(options.maxDelayMs !== undefined ? { maxDelayMs: options.maxDelayMs } : {}),
        });
        settle(index, { id, status: 'fulfilled', value });
      } catch (error) {
        settle(index, { id, status: 'rejected', reason: error });
        if (options.failFast && !firstFailure) {
          firstFailure = { error };
          scope.abort(error);
        }
      }
    }
  };

  try {
    // Every worker ends (each call settles, aborted or not) before we return: nothing keeps running.
    await Promise.all(Array.from({ length: Math.min(concurrency, ids.length) }, worker));
  } finally {
    scope.dispose();
  }
  // The caller's abort first: the failures it caused are not the story.
  options.signal?.throwIfAborted();
  if (firstFailure) throw firstFailure.error;
  return outcomes;
}
