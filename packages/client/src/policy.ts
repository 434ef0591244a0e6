import { deadline, retry, type RetryInfo } from '@asyncscope/concurrency';
import { attemptCallId } from '@asyncscope/contract';
import { apiErrorCode, isApiError } from './errors';
import type { CallContext } from './call-context';
import { closeCodeOf, FINAL_CLOSE_CODES } from './ws';

/** Codes worth another attempt: the server shed the call or was briefly unavailable. */
const RETRYABLE_CODES = new Set(['SERVICE_UNAVAILABLE', 'TOO_MANY_REQUESTS', 'BAD_GATEWAY', 'GATEWAY_TIMEOUT']);

/** Connection losses with no answer: tRPC's own (wsClient) and ours (a call in flight when the socket closed). */
const CONNECTION_LOST = new Set(['TRPCWebSocketClosedError', 'ConnectionLostError']);

/** Whether a failed call may be retried: retryable tRPC codes, and network failures (no answer at all). */
export function isRetryableCallError(error: unknown): boolean {
  if (!isApiError(error)) return false;
  const code = apiErrorCode(error);
  // fetch failed (TypeError), or the WebSocket went away: nothing came back.
  // A socket closed for auth, bad data or a message too big would close again: not retryable.
  if (code === undefined) {
    if (error.cause instanceof TypeError) return true;
    if (!(error.cause instanceof Error && CONNECTION_LOST.has(error.cause.name))) return false;
    const closeCode = closeCodeOf(error.cause);
    return closeCode === undefined || !FINAL_CLOSE_CODES.has(closeCode);
  }
  return RETRYABLE_CODES.has(code);
}

export interface CallPolicy {
  /** Names the call; attempts after the first are `${callId}~${attempt}`. */
  callId: string;
  /** Budget for the whole call, retries included; the server is told what is left at each attempt. */
  timeoutMs?: number;
  retries?: number;
  minDelayMs?: number;
  maxDelayMs?: number;
  signal?: AbortSignal;
  onRetry?: (info: RetryInfo) => void;
}

/**
 * Runs one logical call with a deadline and retries (exponential backoff, full jitter). Each attempt gets
 * a signal that fires on the caller's abort or the deadline, and a context that sends the call id and the
 * remaining budget; only retryable failures are retried, and never after an abort.
 */
export async function callWithPolicy<T>(
  attempt: (opts: { signal: AbortSignal; context: CallContext; attempt: number }) => Promise<T>,
  policy: CallPolicy,
): Promise<T> {
  const scope = deadline(policy.timeoutMs ?? Infinity, { signal: policy.signal });
  const deadlineAt = policy.timeoutMs === undefined ? undefined : Date.now() + policy.timeoutMs;
  try {
    return await retry(
      (n, signal) =>
        attempt({
          signal,
          attempt: n,
          context: { callId: attemptCallId(policy.callId, n), transport: 'single', ...(deadlineAt !== undefined ? { deadlineAt } : {}) },
        }),
      {
        retries: policy.retries ?? 0,
        minDelayMs: policy.minDelayMs ?? 100,
        maxDelayMs: policy.maxDelayMs ?? 2000,
        signal: scope.signal,
        shouldRetry: isRetryableCallError,
        ...(policy.onRetry ? { onRetry: policy.onRetry } : {}),
      },
    );
  } catch (error) {
    // The deadline, not the failure it caused, is what the caller should see.
    if (scope.signal.aborted) throw scope.signal.reason;
    throw error;
  } finally {
    scope.dispose();
  }
}
