/** Small async helpers of the link: every wait ends on abort, and leaves no listener behind. */

/** Resolves after `ms`, or at once when `signal` aborts (never rejects). */
export function abortableSleep(ms: number, signal: AbortSignal): Promise<void> {
  if (signal.aborted) return Promise.resolve();
  return new Promise((resolve) => {
    const done = (): void => {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener('abort', done, { once: true });
  });
}

/** "Something changed": `wait` resolves on the next `notify`, or when any of its signals aborts. */
export class Notifier {
  readonly #waiters = new Set<() => void>();

  notify(): void {
    const waiters = [...this.#waiters];
    this.#waiters.clear();
    for (const wake of waiters) wake();
  }

  wait(...signals: AbortSignal[]): Promise<void> {
    if (signals.some((s) => s.aborted)) return Promise.resolve();
    return new Promise((resolve) => {
      const wake = (): void => {
        this.#waiters.delete(wake);
        for (const s of signals) s.removeEventListener('abort', wake);
        resolve();
      };
      this.#waiters.add(wake);
      for (const s of signals) s.addEventListener('abort', wake, { once: true });
    });
  }
}

/** A subject token / KV key from an instance id: only what both accept (`host:pid` → `host_pid`). */
export function sanitizeToken(id: string): string {
  return id.replace(/[^A-Za-z0-9_-]/g, '_') || '_';
}

/** Removes `user:pass@` from any URL inside a message (errors may quote the server address). */
export function redactUrl(message: string): string {
  return message.replace(/([a-z][a-z0-9+.-]*:\/\/)[^@/\s]+@/gi, '$1***@');
}
