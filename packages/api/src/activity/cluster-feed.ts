/**
 * The cluster's hops as one feed: a bounded ring like ActivityLog's, but filled from outside (the broker's
 * ordered consumer) and numbered by the stream's sequence, so an event id means the same on every instance
 * and a client resumes on any of them with no gap and no duplicate while the ring still holds the events.
 *
 * Every stream sequence is one slot: an event, a gap marker (`addMissed`: n events an instance could not
 * publish), or nothing (a sequence never delivered). `missed` counts markers as their n and empty slots as
 * one each, so it is exact within the ring; sequences older than the ring count one each (their markers
 * are gone with them).
 */
import type { ActivityFeed } from './feed';
import { sleepUnlessAborted, type ActivityBatch, type ActivityEvent } from './log';
import { Wakeups } from './wakeups';

export interface ClusterFeedOptions {
  /** Stream sequences held (events and gap markers). */
  capacity?: number;
  /** Call ids whose owner is remembered for cross-instance cancel (oldest forgotten first). */
  ownersKept?: number;
  /** The real id space is not known yet (the broker has not answered): `whenBound` waits for the first `reset`. */
  pending?: boolean;
}

/**
 * A hop as the broker carries it: the event and the owner (caller's registry key) of its call. The owner
 * routes cancels by (owner, call id) and never reaches the ring (subscribers must not see it).
 */
export type OwnedEvent = ActivityEvent & { owner?: string };

type Slot = ActivityEvent | { gap: number } | undefined;

export class ClusterFeed implements ActivityFeed {
  readonly mayLag = true;
  #bootId: string;
  readonly capacity: number;
  readonly #ownersKept: number;
  #ring: Slot[];
  /** Lowest and highest sequence held (0, 0 while empty). */
  #first = 0;
  #last = 0;
  readonly #wakeups = new Wakeups();
  /**
   * owner + "\n" + call id → instance that produced its hops (ids are unique per caller only, so another
   * caller's call with the same id must not redirect this one's cancel); a Map keeps insertion order, so the
   * oldest goes first.
   */
  readonly #owners = new Map<string, string>();
  #bound: boolean;
  readonly #boundWaiters = new Set<() => void>();

  constructor(bootId: string, options: ClusterFeedOptions = {}) {
    this.#bootId = bootId;
    this.capacity = options.capacity ?? 10_000;
    this.#ownersKept = options.ownersKept ?? 50_000;
    if (!(this.capacity >= 1) || !(this.#ownersKept >= 1)) throw new RangeError('ClusterFeed: capacity and ownersKept must be at least 1');
    this.#ring = new Array<Slot>(this.capacity);
    this.#bound = !options.pending;
  }

  /** False until the feed has learned its stream's id space (constructed `pending`, not reset yet). */
  get bound(): boolean {
    return this.#bound;
  }

  /** Resolves once the feed is bound to its stream, or when `signal` aborts (the caller checks which). */
  async whenBound(signal: AbortSignal): Promise<void> {
    if (this.#bound || signal.aborted) return;
    await new Promise<void>((resolve) => {
      const done = (): void => {
        signal.removeEventListener('abort', done);
        this.#boundWaiters.delete(done);
        resolve();
      };
      this.#boundWaiters.add(done);
      signal.addEventListener('abort', done, { once: true });
    });
  }

  get bootId(): string {
    return this.#bootId;
  }

  get lastSeq(): number {
    return this.#last;
  }

  /** Events in ascending stream sequence; any at or below lastSeq (a consumer's redelivery) are ignored. */
  ingest(events: readonly OwnedEvent[]): void {
    let added = false;
    for (const owned of events) {
      const { owner, ...event } = owned;
      if (!this.#put(event.seq, event)) continue;
      added = true;
      // Refreshed on every hop: a long call stays among the newest. A hop with no owner routes nothing.
      if (owner === undefined) continue;
      const key = ownerKey(owner, event.callId);
      this.#owners.delete(key);
      this.#owners.set(key, event.instance);
      if (this.#owners.size > this.#ownersKept) this.#owners.delete(this.#owners.keys().next().value as string);
    }
    if (added) this.#wake();
  }

  /** A gap marker at stream sequence `afterSeq + 1`: it stands for `n` events its instance could not publish. */
  addMissed(afterSeq: number, n: number): void {
    if (this.#put(afterSeq + 1, { gap: Math.max(0, n) })) this.#wake();
  }

  /** The instance that served caller `owner`'s recent call `callId` (seen in its hops), if still remembered. */
  instanceOf(owner: string, callId: string): string | undefined {
    return this.#owners.get(ownerKey(owner, callId));
  }

  /** The stream was recreated: a new id space. Followers start over from its first event. */
  reset(bootId: string): void {
    this.#bootId = bootId;
    this.#ring = new Array<Slot>(this.capacity);
    this.#first = 0;
    this.#last = 0;
    this.#wake();
    if (!this.#bound) {
      this.#bound = true;
      for (const done of this.#boundWaiters) done();
      this.#boundWaiters.clear();
    }
  }

  read(after: number, limit = 1000): ActivityBatch {
    const { events, missed } = this.#read(after, limit);
    return { events, missed };
  }

  /** Resolves when a sequence newer than `after` is held, the feed is reset, or `signal` aborts. */
  async waitForNewer(after: number, signal: AbortSignal): Promise<void> {
    if (this.#last > after || signal.aborted) return;
    await this.#wakeups.wait(signal);
  }

  async *follow(after: number, signal: AbortSignal, pauseMs = 0): AsyncGenerator<ActivityBatch & { lastSeq: number }> {
    let cursor = after;
    let boot = this.#bootId;
    while (!signal.aborted) {
      if (boot !== this.#bootId) {
        // A new stream: its numbers start again, so this reader does too.
        boot = this.#bootId;
        cursor = 0;
      }
      const batch = this.#read(cursor, 1000);
      if (batch.through > cursor) {
        cursor = batch.through;
        if (batch.events.length > 0 || batch.missed > 0) yield { events: batch.events, missed: batch.missed, lastSeq: cursor };
        continue;
      }
      await this.waitForNewer(cursor, signal);
      if (pauseMs > 0) await sleepUnlessAborted(pauseMs, signal);
    }
  }

  /** Stores a slot at `seq`; false when it is not newer than what is held. */
  #put(seq: number, slot: Slot): boolean {
    if (!Number.isSafeInteger(seq) || seq <= this.#last) return false;
    // Sequences skipped on the way were never delivered: their slots must not keep what the ring held there before.
    const skipped = Math.min(seq - this.#last - 1, this.capacity);
    for (let s = seq - skipped; s < seq; s++) this.#ring[s % this.capacity] = undefined;
    this.#ring[seq % this.capacity] = slot;
    if (this.#first === 0) this.#first = seq;
    this.#last = seq;
    this.#first = Math.max(this.#first, seq - this.capacity + 1);
    return true;
  }

  /** Events after `after`, and the last sequence this read covered (`after` when none). */
  #read(after: number, limit: number): ActivityBatch & { through: number } {
    if (this.#last === 0 || after >= this.#last) return { events: [], missed: 0, through: after };
    const from = Math.max(after + 1, this.#first);
    let missed = from - (after + 1);
    const to = Math.min(this.#last, from + Math.max(1, limit) - 1);
    const events: ActivityEvent[] = [];
    for (let seq = from; seq <= to; seq++) {
      const slot = this.#ring[seq % this.capacity];
      if (slot === undefined) missed += 1;
      else if ('gap' in slot) missed += slot.gap;
      else events.push(slot);
    }
    return { events, missed, through: to };
  }

  #wake(): void {
    this.#wakeups.wakeAll();
  }
}

function ownerKey(owner: string, callId: string): string {
  return `${owner}\n${callId}`;
}
