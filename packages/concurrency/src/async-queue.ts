import { WaitQueue } from './wait-queue';

/** Thrown by put() after close(), and by get() once a closed queue is drained. */
export class QueueClosedError extends Error {
  override readonly name = 'QueueClosedError';

  constructor(message = 'Queue is closed') {
    super(message);
  }
}

export interface QueueOptions {
  /** Aborting while parked in put()/get() removes the caller from the queue and rejects with the reason. */
  signal?: AbortSignal | undefined;
}

/**
 * Bounded FIFO channel (asyncio.Queue with shutdown). put() waits while full, which is the backpressure;
 * get() waits while empty. close() lets consumers drain what is buffered and then end, and fails every
 * parked put() so no producer hangs forever. `for await (const x of queue)` ends when closed and drained.
 */
export class AsyncQueue<T> implements AsyncIterable<T> {
  readonly #items: T[] = [];
  readonly #getters = new WaitQueue<T>();
  // A parked put() carries its item, so a get() can move it into the buffer as it frees a slot.
  readonly #putters = new WaitQueue<undefined, T>();
  #closed = false;

  constructor(readonly capacity = Infinity) {
    if (!(capacity >= 1)) throw new RangeError(`AsyncQueue: capacity must be >= 1, got ${capacity}`);
  }

  /** Items buffered now (not counting parked producers). */
  get size(): number {
    return this.#items.length;
  }

  get closed(): boolean {
    return this.#closed;
  }

  async put(item: T, { signal }: QueueOptions = {}): Promise<void> {
    if (this.tryPut(item)) return;
    signal?.throwIfAborted();
    await this.#putters.wait(signal, item);
  }

  /** Puts without waiting; false when full. Throws QueueClosedError after close(). */
  tryPut(item: T): boolean {
    if (this.#closed) throw new QueueClosedError();
    const getter = this.#getters.peek();
    if (getter) {
      // Someone is parked in get(), so the buffer is empty: hand the item over directly.
      getter.settle(item);
      return true;
    }
    if (this.#items.length >= this.capacity) return false;
    this.#items.push(item);
    return true;
  }

  async get({ signal }: QueueOptions = {}): Promise<T> {
    signal?.throwIfAborted();
    if (this.#items.length > 0) return this.#take();
    if (this.#closed) throw new QueueClosedError();
    return this.#getters.wait(signal, undefined);
  }

  /** Idempotent. Buffered items stay readable; parked get() (buffer empty) and put() calls reject with QueueClosedError. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const waiter of [...this.#getters.drain(), ...this.#putters.drain()]) waiter.fail(new QueueClosedError());
  }

  /** Iterates until the queue is closed and drained; `signal` ends the iteration by rejecting with its reason. */
  async *values({ signal }: QueueOptions = {}): AsyncGenerator<T, void, undefined> {
    for (;;) {
      let item: T;
      try {
        item = await this.get({ signal });
      } catch (error) {
        if (error instanceof QueueClosedError) return;
        throw error;
      }
      yield item;
    }
  }

  [Symbol.asyncIterator](): AsyncGenerator<T, void, undefined> {
    return this.values();
  }

  #take(): T {
    // Only called when non-empty; the cast is for noUncheckedIndexedAccess (T itself may include undefined).
    const item = this.#items.shift() as T;
    const putter = this.#putters.peek();
    if (putter) {
      this.#items.push(putter.payload);
      putter.settle(undefined);
    }
    return item;
  }
}
