import { Semaphore, type Release } from '@asyncscope/concurrency';

export class OverloadedError extends Error {
  override readonly name = 'OverloadedError';
}

/**
 * Load shedding: at most `maxInFlight` calls run; up to `maxQueue` more wait in FIFO order (a waiter whose
 * signal fires leaves the queue and never runs); beyond that a call is refused at once rather than piling
 * up memory and latency for everyone.
 */
export class Admission {
  readonly #running: Semaphore;
  #shed = 0;

  constructor(readonly maxInFlight: number, readonly maxQueue: number) {
    this.#running = new Semaphore(maxInFlight);
  }

  get inFlight(): number {
    return this.maxInFlight - this.#running.available;
  }

  get queued(): number {
    return this.#running.waiting;
  }

  /** Calls refused since start. */
  get shed(): number {
    return this.#shed;
  }

  /** A permit to run; `onQueued` is told the queue position when the call has to wait. */
  async enter(signal: AbortSignal, onQueued: (position: number) => void): Promise<Release> {
    const permit = this.#running.tryAcquire();
    if (permit) return permit;
    if (this.#running.waiting >= this.maxQueue) {
      this.#shed++;
      throw new OverloadedError(`The server is at capacity (${this.maxInFlight} calls running, ${this.maxQueue} waiting). Retry shortly.`);
    }
    onQueued(this.#running.waiting + 1);
    return this.#running.acquire({ signal });
  }
}
