import { sleep, type Clock } from './clock';
import { isAbortError } from './errors';

/*
 * Why not p-retry 7 (it takes signal/shouldRetry/onFailedAttempt/randomize):
 * - its `randomize` multiplies the delay by 1..2; that is not full jitter (random 0..cap), which is what
 *   spreads a thundering herd of clients (AWS architecture blog, "Exponential Backoff And Jitter");
 * - it sleeps on the global setTimeout and measures with performance.now, so an injected Clock cannot drive it;
 * - it silently refuses to retry TypeErrors that are not network errors, which a policy of "only what
 *   `shouldRetry` says" must not second-guess.
 * The loop below is ~20 lines, so owning it is cheaper than adapting around those.
 */

export interface RetryInfo {
  /** The attempt that just failed, 0-based (0 is the first call). */
  attempt: number;
  error: unknown;
  /** How long we sleep before the next attempt. */
  delayMs: number;
}

/** The policy part of the options (no signal/clock), as a TaskGroup takes it. */
export interface RetryPolicy {
  /** Retries after the first attempt; total calls are at most retries + 1. Default 3. */
  retries?: number;
  /** Base of the backoff. Default 100. */
  minDelayMs?: number;
  /** Cap of the backoff. Default 10_000. */
  maxDelayMs?: number;
  /** Growth per attempt. Default 2. */
  factor?: number;
  /** 'full' (default): delay = random() * cap. 'none': delay = cap. */
  jitter?: 'full' | 'none';
  /** Decides what is transient. Default `isRetryable`: only errors marked `retryable: true`. */
  shouldRetry?: (error: unknown, attempt: number) => boolean;
  onRetry?: (info: RetryInfo) => void;
  /** Source of randomness in [0, 1); inject it to make delays deterministic. */
  random?: () => number;
}

export interface RetryOptions extends RetryPolicy {
  signal?: AbortSignal | undefined;
  clock?: Clock | undefined;
}

/** The default policy retries nothing unless the error opts in: unknown failures are not assumed transient. */
export function isRetryable(error: unknown): boolean {
  return typeof error === 'object' && error !== null && (error as { retryable?: unknown }).retryable === true;
}

/** Full-jitter exponential backoff: random() * min(maxDelayMs, minDelayMs * factor ** attempt). */
export function backoffDelay(attempt: number, policy: RetryPolicy = {}): number {
  const { minDelayMs = 100, maxDelayMs = 10_000, factor = 2, jitter = 'full', random = Math.random } = policy;
  const cap = Math.min(maxDelayMs, minDelayMs * factor ** attempt);
  return Math.round(jitter === 'full' ? random() * cap : cap);
}

/**
 * Calls `fn(attempt, signal)` until it succeeds, `shouldRetry` says no, or retries run out (then rethrows the
 * last error). Cancellation is never retried: an abort during an attempt or during the backoff sleep rejects
 * with the signal's reason. An attempt is never abandoned: if `fn` ignores its signal, retry waits for it
 * before rejecting, so no work outlives the call.
 */
export async function retry<T>(fn: (attempt: number, signal: AbortSignal) => Promise<T>, options: RetryOptions = {}): Promise<T> {
  const { retries = 3, shouldRetry = isRetryable, onRetry, signal, clock } = options;
  if (Number.isNaN(retries) || retries < 0) throw new RangeError(`retry: retries must be >= 0, got ${retries}`);
  const attemptSignal = signal ?? new AbortController().signal;

  for (let attempt = 0; ; attempt++) {
    attemptSignal.throwIfAborted();
    try {
      return await fn(attempt, attemptSignal);
    } catch (error) {
      // Cancellation wins over whatever the attempt threw while unwinding.
      attemptSignal.throwIfAborted();
      if (attempt >= retries || isAbortError(error) || !shouldRetry(error, attempt)) throw error;
      const delayMs = backoffDelay(attempt, options);
      onRetry?.({ attempt, error, delayMs });
      await sleep(delayMs, { signal, clock });
    }
  }
}
