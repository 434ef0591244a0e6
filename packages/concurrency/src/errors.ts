/**
 * The error vocabulary shared by every primitive. Cancellation travels as an AbortSignal's `reason`;
 * these classes give that reason a type and a name callers can branch on.
 */

/** A cancellation. `name` is 'AbortError' so it matches what fetch and DOM APIs throw on abort. */
export class AbortError extends Error {
  override readonly name = 'AbortError';
  /** Why the work was cancelled (whatever was passed to `cancel(reason)` / `abort(reason)`). */
  readonly reason: unknown;

  constructor(message = 'The operation was aborted', options?: { reason?: unknown; cause?: unknown }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.reason = options?.reason;
  }
}

/** Python's name for the same thing; one class, so `instanceof` works with either spelling. */
export { AbortError as CancelledError };

/** A deadline passed. Deliberately NOT an AbortError: a timeout is a failure of the work, not a cancellation by the caller. */
export class TimeoutError extends Error {
  override readonly name = 'TimeoutError';

  constructor(readonly ms: number, message = `Timed out after ${ms}ms`) {
    super(message);
  }
}

/** True for our AbortError and for anything else named 'AbortError' (fetch's DOMException, node streams). */
export function isAbortError(error: unknown): boolean {
  return error instanceof AbortError || (typeof error === 'object' && error !== null && (error as { name?: unknown }).name === 'AbortError');
}

/** Throws the signal's own reason (not a generic error), so callers see why they were cancelled. */
export function throwIfAborted(signal: AbortSignal | undefined): void {
  signal?.throwIfAborted();
}

/**
 * The signal's reason, typed for `reject()`. A reason can be any value (whatever `abort(x)` got);
 * we pass it through untouched because rewrapping would break `err === signal.reason` checks.
 */
export function abortReason(signal: AbortSignal): Error {
  return signal.reason as Error;
}
