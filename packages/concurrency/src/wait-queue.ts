import { abortReason } from './errors';

/** One parked caller. `settle`/`fail` remove it from the queue and detach its abort listener. */
export interface Waiter<T, P> {
  readonly payload: P;
  settle(value: T): void;
  fail(error: Error): void;
}

/**
 * FIFO of parked callers, shared by Semaphore, AsyncQueue and AsyncEvent. The one rule that makes them
 * cancellation-safe lives here: an aborted waiter leaves the queue at once, so it can never be handed a
 * permit, an item or a slot it would then leak. Internal; not exported from the package.
 */
export class WaitQueue<T, P = undefined> {
  // A Set keeps insertion order (FIFO) and deletes an aborted waiter from the middle in O(1).
  readonly #waiters = new Set<Waiter<T, P>>();

  get size(): number {
    return this.#waiters.size;
  }

  /** Parks the caller until `shift()`/`drain()` settles it or `signal` aborts (rejecting with its reason). */
  wait(signal: AbortSignal | undefined, payload: P): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      if (signal?.aborted) {
        reject(abortReason(signal));
        return;
      }
      const leave = (): void => {
        this.#waiters.delete(waiter);
        signal?.removeEventListener('abort', onAbort);
      };
      const waiter: Waiter<T, P> = {
        payload,
        settle: (value) => {
          leave();
          resolve(value);
        },
        fail: (error) => {
          leave();
          reject(error);
        },
      };
      const onAbort = (): void => {
        if (signal) waiter.fail(abortReason(signal));
      };
      this.#waiters.add(waiter);
      signal?.addEventListener('abort', onAbort, { once: true });
    });
  }

  /** The longest-waiting caller, or undefined. It stays queued until you settle or fail it. */
  peek(): Waiter<T, P> | undefined {
    for (const waiter of this.#waiters) return waiter;
    return undefined;
  }

  /** Removes every waiter and returns them in FIFO order, for broadcast (event set, queue close). */
  drain(): Waiter<T, P>[] {
    const all = [...this.#waiters];
    this.#waiters.clear();
    return all;
  }
}
