/**
 * A poll whose asks may overlap: one ask every `intervalMs`, without waiting for the previous answer (up to
 * `maxPending` unanswered; a tick beyond that is skipped), and only an answer newer than the last one shown
 * is reported. Every ask gets the poll's signal: aborting it stops the timer and the asks in flight (on the
 * page's WebSocket the request is dropped), and nothing is reported after it, whenever the ask settles.
 */
export interface OverlappingPollOptions<T> {
  ask: (signal: AbortSignal) => Promise<T>;
  intervalMs: number;
  maxPending: number;
  onAnswer: (data: T, latencyMs: number) => void;
  onError: (error: unknown) => void;
  signal: AbortSignal;
  now?: () => number;
}

export function pollOverlapping<T>({ ask, intervalMs, maxPending, onAnswer, onError, signal, now = Date.now }: OverlappingPollOptions<T>): void {
  if (signal.aborted) return;
  let pending = 0;
  let sent = 0;
  let newest = 0;
  const tick = (): void => {
    if (pending >= maxPending || signal.aborted) return;
    pending++;
    const n = ++sent;
    const askedAt = now();
    // Asked now; one that throws instead of rejecting fails the same way (the executor catches it).
    new Promise<T>((resolve) => { resolve(ask(signal)); })
      .then(
        (data) => {
          if (signal.aborted || n < newest) return;
          newest = n;
          onAnswer(data, now() - askedAt);
        },
        (error: unknown) => {
          if (signal.aborted || n < newest) return;
          newest = n;
          onError(error);
        },
      )
      .finally(() => { pending--; })
      // A callback that throws is the caller's bug, not a reason for an unhandled rejection.
      .catch((error: unknown) => { reportError(error); });
  };
  const timer = setInterval(tick, intervalMs);
  signal.addEventListener('abort', () => { clearInterval(timer); }, { once: true });
  tick();
}

function reportError(error: unknown): void {
  if (typeof globalThis.reportError === 'function') globalThis.reportError(error);
  else console.error(error);
}
