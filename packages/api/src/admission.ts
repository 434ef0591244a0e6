import { OverloadedError } from './services/errors';

/** A held admission slot. Idempotent: releasing twice frees one slot. */
export interface Release extends Disposable {
  readonly release: () => void;
}

/** One queued call: settled with a slot, or failed (its signal fired). */
interface Waiter {
  readonly client: ClientQueue;
  readonly signal: AbortSignal;
  readonly resolve: (permit: Release) => void;
  readonly reject: (error: unknown) => void;
  /** Its abort listener, removed whichever way it leaves the queue. */
  readonly onAbort: () => void;
}

/** The calls one client has waiting, oldest first (a Set: FIFO, and O(1) removal of an aborted waiter). */
class ClientQueue {
  readonly waiters = new Set<Waiter>();
  constructor(readonly key: string) {}
}

/**
 * Load shedding with fair queuing. At most `maxInFlight` calls run; up to `maxQueue` more wait; beyond that,
 * or beyond `maxQueuePerClient` waiting calls of one client, a call is refused at once (OverloadedError →
 * 429) rather than piling up memory and latency for everyone.
 *
 * Fair between clients: every client (a key the caller chooses; the server uses the remote address) has its
 * own FIFO queue, and a freed slot goes to the clients in turn (round-robin), so one client's thousand
 * queued calls delay another client's call by at most one call per client ahead of it, not by a thousand.
 * A waiter whose signal fires leaves the queue at once and is never admitted.
 */
export class Admission {
  readonly maxQueuePerClient: number;
  #running = 0;
  #queued = 0;
  #shed = 0;
  /** Clients with waiting calls, in turn order: the first is served next, then moves to the back. */
  readonly #turns = new Map<string, ClientQueue>();

  constructor(readonly maxInFlight: number, readonly maxQueue: number, maxQueuePerClient = maxQueue) {
    this.maxQueuePerClient = maxQueuePerClient;
  }

  get inFlight(): number {
    return this.#running;
  }

  get queued(): number {
    return this.#queued;
  }

  /** Calls refused since start. */
  get shed(): number {
    return this.#shed;
  }

  /** Calls `client` has waiting. */
  queuedFor(client: string): number {
    return this.#turns.get(client)?.waiters.size ?? 0;
  }

  /**
   * Whether a call of `client` would be refused right now; if so it is counted as shed and the refusal's
   * message returned. Lets the HTTP layer answer 429 before it spends anything on the call (reading its
   * body, tRPC's machinery, a call scope), so shed calls are answered at once even in a burst.
   */
  refuseNow(client: string): string | undefined {
    if (this.#running < this.maxInFlight && this.#queued === 0) return undefined;
    const mine = this.#turns.get(client)?.waiters.size ?? 0;
    if (this.#queued < this.maxQueue && mine < this.maxQueuePerClient) return undefined;
    this.#shed++;
    return this.#refusal(mine);
  }

  #refusal(mine: number): string {
    return mine >= this.maxQueuePerClient && this.#queued < this.maxQueue
      ? `The server is busy and you already have ${mine} calls waiting (at most ${this.maxQueuePerClient} per client). Retry shortly.`
      : `The server is at capacity (${this.maxInFlight} calls running, ${this.maxQueue} waiting). Retry shortly.`;
  }

  /**
   * A slot at once if one is free and nobody waits, else undefined (then `enter`). Synchronous: a call that
   * is admitted straight away, as nearly every call is, takes no promise and no turn of the microtask queue.
   */
  tryEnter(): Release | undefined {
    if (this.#running >= this.maxInFlight || this.#queued > 0) return undefined;
    this.#running++;
    return this.#permit();
  }

  /**
   * A slot to run, or OverloadedError at once. `onQueued` is told the queue position when the call has to
   * wait; `signal` firing while it waits rejects with the signal's reason.
   */
  enter(signal: AbortSignal, onQueued: (position: number) => void, client = ''): Promise<Release> {
    if (signal.aborted) return Promise.reject(signal.reason as Error);
    const free = this.tryEnter();
    if (free) return Promise.resolve(free);
    const queue = this.#turns.get(client);
    const mine = queue?.waiters.size ?? 0;
    if (this.#queued >= this.maxQueue || mine >= this.maxQueuePerClient) {
      this.#shed++;
      return Promise.reject(new OverloadedError(this.#refusal(mine)));
    }
    onQueued(this.#queued + 1);
    return new Promise<Release>((resolve, reject) => {
      const clientQueue = queue ?? new ClientQueue(client);
      if (!queue) this.#turns.set(client, clientQueue);
      const waiter: Waiter = {
        client: clientQueue,
        signal,
        resolve,
        reject,
        onAbort: () => {
          this.#leave(waiter);
          reject(signal.reason as Error);
        },
      };
      clientQueue.waiters.add(waiter);
      this.#queued++;
      signal.addEventListener('abort', waiter.onAbort, { once: true });
    });
  }

  #leave(waiter: Waiter): void {
    const { client } = waiter;
    if (!client.waiters.delete(waiter)) return;
    this.#queued--;
    waiter.signal.removeEventListener('abort', waiter.onAbort);
    if (client.waiters.size === 0) this.#turns.delete(client.key);
  }

  /** A freed slot: to the next client in turn's oldest waiter, else back to the pool. */
  #handOff(): void {
    for (const client of this.#turns.values()) {
      const waiter = client.waiters.values().next().value;
      if (!waiter) {
        this.#turns.delete(client.key); // cannot happen (emptied queues are removed); stay safe
        continue;
      }
      this.#leave(waiter);
      // Its turn is used: to the back of the line, if it has more waiting.
      if (client.waiters.size > 0) {
        this.#turns.delete(client.key);
        this.#turns.set(client.key, client);
      }
      // Aborted waiters left the queue in their abort listener, so this one's signal has not fired.
      waiter.resolve(this.#permit());
      return;
    }
    this.#running--;
  }

  #permit(): Release {
    let held = true;
    const release = (): void => {
      if (!held) return;
      held = false;
      this.#handOff();
    };
    return { release, [Symbol.dispose]: release };
  }
}
