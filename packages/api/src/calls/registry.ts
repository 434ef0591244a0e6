/**
 * The calls in flight, by caller and call id, whatever carried them (an HTTP request, one call of a
 * batch, a WebSocket message, a stream): what `calls.cancel` reaches. Ids are namespaced per caller
 * (per credential): a caller cannot cancel another's calls, nor learn from a cancel whether an id of
 * theirs exists. (The activity stream, which any token may follow, does show every call's id: it is the
 * server's window, not a secret.)
 *
 * `cancel` answers per id and asynchronously, so that a later step can route an id this process does
 * not hold to the instance that does.
 */
import type { CancelOutcome } from '@asyncscope/contract';
import { ConflictError } from '../services/errors';

/** The abort reason of a call stopped by `calls.cancel`. */
export class CancelledError extends Error {
  override readonly name = 'CancelledError';
  constructor(readonly beforeArrival = false) {
    super(beforeArrival ? 'The call was cancelled (calls.cancel) before it reached the server.' : 'The call was cancelled (calls.cancel).');
  }
}

/** A call id already in flight for this caller. */
export class DuplicateCallIdError extends ConflictError {
  override readonly name = 'DuplicateCallIdError';
  constructor(readonly callId: string) {
    super(`A call with id "${callId}" is already in flight: call ids must be unique among your calls in flight.`);
  }
}

export interface CancellableCall {
  /** Stops the call with `reason`: a CancelledError (calls.cancel), or the server's reason to stop every call (`abortAll`). */
  cancel(reason: unknown): void;
}

export interface CallRegistryOptions {
  /** Settled ids remembered, to answer `already-settled` (oldest forgotten first). */
  settledMemory?: number;
  /** How long a cancel for an id not (yet) seen waits for it: a call that arrives after its own cancel is refused unstarted. */
  earlyCancelMs?: number;
  /** Early cancels remembered at once per caller (its oldest dropped beyond): one caller cannot push out another's. */
  earlyCancelMemory?: number;
  now?: () => number;
}

const keyOf = (owner: string, callId: string): string => `${owner}\n${callId}`;

export class CallRegistry {
  readonly #live = new Map<string, CancellableCall>();
  /**
   * Keys of recently settled calls → the number of the settle that put them there; `#settledRing` holds the
   * last `settledMemory` of them by that number, so forgetting the oldest is O(1). (A Map trimmed through
   * `keys().next()` cost ~4 µs per call: the iterator walks the entries deleted from its head until the
   * table is rebuilt.)
   */
  readonly #settled = new Map<string, number>();
  readonly #settledRing: (string | undefined)[];
  #settles = 0;
  /** Per owner, call id → expiry of cancels that named a call not yet seen (the cancel overtook its call). */
  readonly #early = new Map<string, Map<string, number>>();
  readonly #settledMemory: number;
  readonly #earlyCancelMs: number;
  readonly #earlyCancelMemory: number;
  readonly #now: () => number;

  constructor(options: CallRegistryOptions = {}) {
    this.#settledMemory = Math.max(0, Math.floor(options.settledMemory ?? 10_000));
    this.#settledRing = new Array<string | undefined>(this.#settledMemory).fill(undefined);
    this.#earlyCancelMs = options.earlyCancelMs ?? 10_000;
    this.#earlyCancelMemory = options.earlyCancelMemory ?? 10_000;
    this.#now = options.now ?? Date.now;
  }

  /** Calls in flight. */
  get size(): number {
    return this.#live.size;
  }

  isInFlight(owner: string, callId: string): boolean {
    return this.#live.has(keyOf(owner, callId));
  }

  /**
   * Adds a call in flight; throws DuplicateCallIdError if the caller has one by that id. A call whose
   * cancel arrived first is registered and cancelled at once (`call.cancel` runs before this returns).
   * Returns the call's `settle`, to be called exactly once when it ends.
   */
  register(owner: string, callId: string, call: CancellableCall): () => void {
    const key = keyOf(owner, callId);
    if (this.#live.has(key)) throw new DuplicateCallIdError(callId);
    this.#live.set(key, call);
    this.#settled.delete(key);
    const early = this.#early.get(owner);
    const expiry = early?.get(callId);
    if (early && expiry !== undefined) {
      early.delete(callId);
      if (early.size === 0) this.#early.delete(owner);
      if (expiry > this.#now()) call.cancel(new CancelledError(true));
    }
    return () => {
      if (this.#live.get(key) !== call) return;
      this.#live.delete(key);
      this.#rememberSettled(key);
    };
  }

  /**
   * Stops every call in flight with `reason` (shutdown, the database gone). The server signals these through
   * here rather than with one listener per call on its process-wide signals: an EventTarget walks its whole
   * listener list on every add and remove, so with thousands of calls in flight each call paid for all the others.
   */
  abortAll(reason: unknown): void {
    for (const call of [...this.#live.values()]) call.cancel(reason);
  }

  /** Cancels the caller's named calls wherever they are; answers what became of each, in the order asked. */
  cancel(owner: string, callIds: readonly string[]): Promise<CancelOutcome[]> {
    const outcomes = callIds.map((callId): CancelOutcome => {
      const key = keyOf(owner, callId);
      const call = this.#live.get(key);
      if (call) {
        call.cancel(new CancelledError());
        return { callId, status: 'cancelled' };
      }
      if (this.#settled.has(key)) return { callId, status: 'already-settled' };
      this.#rememberEarly(owner, callId);
      return { callId, status: 'unknown' };
    });
    return Promise.resolve(outcomes);
  }

  /**
   * A new call under `callId` replaces the one in flight by that id, which is cancelled: a stream that
   * resumes (a reconnect) while the server has not yet seen its old connection go.
   */
  supersede(owner: string, callId: string): void {
    const key = keyOf(owner, callId);
    const call = this.#live.get(key);
    if (!call) return;
    this.#live.delete(key); // its own settle is then a no-op
    call.cancel(new CancelledError());
  }

  #rememberSettled(key: string): void {
    if (this.#settledMemory === 0) return;
    const n = this.#settles++;
    const slot = n % this.#settledMemory;
    const oldest = this.#settledRing[slot];
    // Forgotten only if that entry is still the one this slot recorded (not settled again since, nor re-registered).
    if (oldest !== undefined && this.#settled.get(oldest) === n - this.#settledMemory) this.#settled.delete(oldest);
    this.#settledRing[slot] = key;
    this.#settled.set(key, n);
  }

  #rememberEarly(owner: string, callId: string): void {
    const now = this.#now();
    let early = this.#early.get(owner);
    if (!early) {
      early = new Map();
      this.#early.set(owner, early);
    }
    for (const [id, expiry] of early) {
      // Same delay for all, so expiries rise with insertion order: stop at the first live one.
      if (expiry > now && early.size < this.#earlyCancelMemory) break;
      early.delete(id);
    }
    early.delete(callId);
    early.set(callId, now + this.#earlyCancelMs);
  }
}
