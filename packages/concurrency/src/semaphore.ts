import { WaitQueue } from './wait-queue';

/** A held permit. Idempotent: releasing twice returns one permit, so `using` plus an early `release()` is safe. */
export interface Release extends Disposable {
  readonly release: () => void;
}

export interface AcquireOptions {
  /** Aborting while waiting removes the caller from the queue; it never acquires. */
  signal?: AbortSignal | undefined;
}

/**
 * Counting semaphore with FIFO fairness: a released permit goes straight to the longest waiter, so a
 * newcomer cannot barge past the queue. Use it as `using _permit = await sem.acquire({ signal })`.
 */
export class Semaphore {
  #available: number;
  readonly #waiters = new WaitQueue<undefined>();

  constructor(readonly permits: number) {
    if (!Number.isInteger(permits) || permits < 1) throw new RangeError(`Semaphore: permits must be a positive integer, got ${permits}`);
    this.#available = permits;
  }

  get available(): number {
    return this.#available;
  }

  /** Callers parked in acquire(). */
  get waiting(): number {
    return this.#waiters.size;
  }

  async acquire({ signal }: AcquireOptions = {}): Promise<Release> {
    signal?.throwIfAborted();
    const permit = this.tryAcquire();
    if (permit) return permit;
    // No decrement here: #handOff passes its permit to us directly.
    await this.#waiters.wait(signal, undefined);
    return this.#permit();
  }

  /** A permit now, or undefined. Respects the queue: fails while others are waiting. */
  tryAcquire(): Release | undefined {
    if (this.#available === 0 || this.#waiters.size > 0) return undefined;
    this.#available--;
    return this.#permit();
  }

  async runExclusive<T>(fn: () => Promise<T> | T, options: AcquireOptions = {}): Promise<T> {
    const permit = await this.acquire(options);
    try {
      return await fn();
    } finally {
      permit.release();
    }
  }

  #permit(): Release {
    let held = true;
    const release = (): void => {
      if (!held) return;
      held = false;
      const next = this.#waiters.peek();
      if (next) next.settle(undefined);
      else this.#available++;
    };
    return { release, [Symbol.dispose]: release };
  }
}

/** A Semaphore of one. */
export class Mutex {
  readonly #semaphore = new Semaphore(1);

  get locked(): boolean {
    return this.#semaphore.available === 0;
  }

  acquire(options?: AcquireOptions): Promise<Release> {
    return this.#semaphore.acquire(options);
  }

  tryAcquire(): Release | undefined {
    return this.#semaphore.tryAcquire();
  }

  runExclusive<T>(fn: () => Promise<T> | T, options?: AcquireOptions): Promise<T> {
    return this.#semaphore.runExclusive(fn, options);
  }
}
