import { WaitQueue } from './wait-queue';

/** asyncio.Event: a latch that wakes every waiter when set and stays set until clear(). */
export class AsyncEvent {
  #set = false;
  readonly #waiters = new WaitQueue<undefined>();

  isSet(): boolean {
    return this.#set;
  }

  set(): void {
    if (this.#set) return;
    this.#set = true;
    for (const waiter of this.#waiters.drain()) waiter.settle(undefined);
  }

  clear(): void {
    this.#set = false;
  }

  /** Resolves once set (at once if already set). Abort removes the waiter and rejects with the signal's reason. */
  async wait({ signal }: { signal?: AbortSignal | undefined } = {}): Promise<void> {
    signal?.throwIfAborted();
    if (this.#set) return;
    await this.#waiters.wait(signal, undefined);
  }
}
