import { systemClock, type Clock } from './clock';
import { TimeoutError, abortReason } from './errors';

/** A child AbortSignal you control: aborts when any parent aborts, or when you call `abort()`. */
export interface SignalScope extends Disposable {
  readonly signal: AbortSignal;
  // Closures, not methods: safe to destructure (`const { signal, abort } = linkSignals(a, b)`).
  /** Abort this scope (and only this scope) with `reason`; also detaches it from its parents. */
  readonly abort: (reason?: unknown) => void;
  /** Detach from the parents without aborting. Idempotent. Call it when the work is done. */
  readonly dispose: () => void;
}

/**
 * Returns a signal that aborts with the reason of whichever input aborts first.
 *
 * Why not `AbortSignal.any()`: on Node 20 it leaks. Each derived signal stays reachable from its long-lived
 * parent (a server-wide shutdown signal, a TaskGroup's signal) until the parent is collected
 * (nodejs/node#54614, nodejs/node#55351). Plain listeners plus `dispose()` remove that edge
 * deterministically, and work the same in every browser.
 */
export function linkSignals(...signals: (AbortSignal | undefined)[]): SignalScope {
  const controller = new AbortController();
  const detachers: (() => void)[] = [];
  const dispose = (): void => {
    for (const detach of detachers.splice(0)) detach();
  };
  const abort = (reason?: unknown): void => {
    // Once aborted there is nothing left to listen for, so let go of the parents right away.
    dispose();
    controller.abort(reason);
  };

  for (const parent of signals) {
    if (parent === undefined) continue;
    if (parent.aborted) {
      abort(parent.reason);
      break;
    }
    const onAbort = (): void => {
      abort(parent.reason);
    };
    parent.addEventListener('abort', onAbort, { once: true });
    detachers.push(() => {
      parent.removeEventListener('abort', onAbort);
    });
  }

  return { signal: controller.signal, abort, dispose, [Symbol.dispose]: dispose };
}

export interface DeadlineOptions {
  /** A parent whose abort also aborts the scope (with the parent's reason, not a TimeoutError). */
  signal?: AbortSignal | undefined;
  clock?: Clock | undefined;
}

/**
 * A scope whose signal aborts with `TimeoutError(ms)` after `ms`. `Infinity` means no deadline.
 * The timer is cleared on dispose and on any earlier abort, so a finished scope never holds the event loop open.
 */
export function deadline(ms: number, { signal, clock = systemClock }: DeadlineOptions = {}): SignalScope {
  if (Number.isNaN(ms) || ms < 0) throw new RangeError(`deadline: ms must be >= 0, got ${ms}`);
  const scope = linkSignals(signal);
  if (scope.signal.aborted || ms === Infinity) return scope;

  const handle = clock.setTimeout(() => {
    scope.abort(new TimeoutError(ms));
  }, ms);
  const clear = (): void => {
    clock.clearTimeout(handle);
  };
  scope.signal.addEventListener('abort', clear, { once: true });
  const dispose = (): void => {
    clear();
    scope.dispose();
  };
  return { signal: scope.signal, abort: scope.abort, dispose, [Symbol.dispose]: dispose };
}

/**
 * Runs `fn` under a deadline. At the deadline the signal given to `fn` is aborted (so the work is really
 * cancelled, not just abandoned) and the returned promise rejects with `TimeoutError` right away.
 * If `fn` ignores its signal it keeps running unobserved; use a TaskGroup when you must wait for it.
 * If the parent `signal` aborts first, rejects with the parent's reason.
 */
export async function withTimeout<T>(fn: (signal: AbortSignal) => Promise<T>, ms: number, options: DeadlineOptions = {}): Promise<T> {
  const scope = deadline(ms, options);
  try {
    scope.signal.throwIfAborted();
    return await raceAbort(fn(scope.signal), scope.signal);
  } finally {
    scope.dispose();
  }
}

/** Settles like `promise`, or rejects with the signal's reason as soon as it aborts. Never leaves an unhandled rejection behind. */
function raceAbort<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => {
      reject(abortReason(signal));
    };
    if (signal.aborted) onAbort();
    else signal.addEventListener('abort', onAbort, { once: true });
    // Handles the loser too: a late rejection from `promise` lands in an already-settled reject and is dropped.
    void promise.then(resolve, reject).finally(() => {
      signal.removeEventListener('abort', onAbort);
    });
  });
}
