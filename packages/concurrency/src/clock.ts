import { abortReason } from './errors';

/** Opaque timer handle: a number in browsers, a Timeout object in Node. Only the clock that made it understands it. */
export type TimerHandle = unknown;

/**
 * Everything time-related goes through a Clock so tests can drive time. Build on setTimeout only:
 * vitest fake timers do not control AbortSignal.timeout or node:timers/promises, so those are never used here.
 */
export interface Clock {
  now(): number;
  setTimeout(fn: () => void, ms: number): TimerHandle;
  clearTimeout(handle: TimerHandle): void;
}

/**
 * Looks the globals up on every call (not once at import), so `vi.useFakeTimers()` installed after this
 * module loaded still takes effect. Date.now rather than performance.now because fake timers mock Date by default.
 */
export const systemClock: Clock = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => globalThis.setTimeout(fn, ms),
  clearTimeout: (handle) => {
    globalThis.clearTimeout(handle as ReturnType<typeof globalThis.setTimeout>);
  },
};

export interface SleepOptions {
  signal?: AbortSignal | undefined;
  clock?: Clock | undefined;
}

/** Resolves after `ms`. On abort it clears its timer and rejects with the signal's reason at once. */
export function sleep(ms: number, { signal, clock = systemClock }: SleepOptions = {}): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    if (signal === undefined) {
      clock.setTimeout(resolve, ms);
      return;
    }
    if (signal.aborted) {
      reject(abortReason(signal));
      return;
    }
    const onAbort = (): void => {
      clock.clearTimeout(handle);
      reject(abortReason(signal));
    };
    const handle = clock.setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal.addEventListener('abort', onAbort, { once: true });
  });
}
