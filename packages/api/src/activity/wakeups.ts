/**
 * Readers parked until something new arrives: `wait` resolves at the next `wakeAll`, or when its signal
 * aborts (then it resolves too, and leaves nothing behind). One home for the ActivityLog's and the
 * ClusterFeed's waiting.
 */
export class Wakeups {
  readonly #waiters = new Set<() => void>();

  wait(signal: AbortSignal): Promise<void> {
    if (signal.aborted) return Promise.resolve();
    return new Promise<void>((resolve) => {
      const wake = (): void => {
        signal.removeEventListener('abort', wake);
        this.#waiters.delete(wake);
        resolve();
      };
      this.#waiters.add(wake);
      signal.addEventListener('abort', wake, { once: true });
    });
  }

  wakeAll(): void {
    if (this.#waiters.size === 0) return;
    for (const wake of [...this.#waiters]) wake();
  }
}
