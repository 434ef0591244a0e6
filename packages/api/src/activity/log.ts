import { Wakeups } from './wakeups';

/**
 * The hops of every call, as events in one bounded ring: memory stays flat whatever the load, every
 * subscriber reads the same ring by sequence number (so a reconnecting client resumes from its last id),
 * and a subscriber that falls behind by more than the ring holds is told how many events it missed.
 */
export type CallHop =
  | { type: 'received'; budgetMs: number }
  | { type: 'queued'; position: number }
  | { type: 'started' }
  | { type: 'statement.started'; statement: number; pid: number }
  | { type: 'signal.fired'; reason: AbortCause }
  | { type: 'cancel.sent'; statement: number; pid: number | null; queued: boolean; attempt: number }
  | { type: 'statement.ended'; statement: number; pid: number | null; sqlstate: string | null; ms: number }
  | { type: 'committed'; ms: number }
  | { type: 'rolled_back'; sqlstate: string | null }
  | { type: 'settled'; code: string; ms: number };

/** Why a call's signal fired. */
export type AbortCause = 'client-closed' | 'cancelled' | 'timeout' | 'shutdown' | 'database';

/** `instance`: the server instance that produced the hop (Runtime option `instanceId`). */
export type ActivityEvent = CallHop & { seq: number; at: number; callId: string; path: string; instance: string };

export interface ActivityBatch {
  events: ActivityEvent[];
  /** Events that were overwritten before this reader got them (0 when it kept up). */
  missed: number;
}

/**
 * A hop as recorded: one shape whatever the hop's type. The flat event subscribers see (the hop's fields
 * and these) is made when it is first read, and kept in its place: every call records about five hops, and
 * spreading each into a new object of its own shape cost ~5 % of a `users.byId` call with nobody reading.
 */
class RecordedHop {
  constructor(
    readonly seq: number,
    readonly at: number,
    readonly callId: string,
    readonly path: string,
    readonly hop: CallHop,
  ) {}
}

/** One process's feed (it implements ActivityFeed, ./feed.ts; the Runtime checks that structurally). */
export class ActivityLog {
  /**
   * Names this process's sequence: numbers restart at 1 when the server restarts, so a client resuming
   * with an id from another boot must start over rather than wait for numbers it has already seen.
   */
  readonly bootId = `${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`;
  readonly #ring: (RecordedHop | ActivityEvent | undefined)[];
  #nextSeq = 1;
  readonly #wakeups = new Wakeups();

  constructor(readonly capacity = 10_000, readonly instance = 'local') {
    this.#ring = new Array<RecordedHop | ActivityEvent | undefined>(capacity);
  }

  /** Sequence number of the newest event (0 before the first). */
  get lastSeq(): number {
    return this.#nextSeq - 1;
  }

  /** Adds a hop; returns its sequence number. The hop is kept as given (not copied): never change it after. */
  record(callId: string, path: string, hop: CallHop): number {
    const seq = this.#nextSeq++;
    this.#ring[seq % this.capacity] = new RecordedHop(seq, Date.now(), callId, path, hop);
    this.#wakeups.wakeAll();
    return seq;
  }

  /** The event numbered `seq`, as subscribers see it, while the ring still holds it. */
  event(seq: number): ActivityEvent | undefined {
    const slot = this.#ring[seq % this.capacity];
    return slot?.seq === seq ? this.#eventOf(slot) : undefined;
  }

  #eventOf(slot: RecordedHop | ActivityEvent): ActivityEvent {
    if (!(slot instanceof RecordedHop)) return slot;
    const { seq, at, callId, path, hop } = slot;
    const event: ActivityEvent = { ...hop, seq, at, callId, path, instance: this.instance };
    this.#ring[seq % this.capacity] = event;
    return event;
  }

  /** Events after `after`, oldest first, at most `limit`. */
  read(after: number, limit = 1000): ActivityBatch {
    const oldest = Math.max(1, this.#nextSeq - this.capacity);
    const from = Math.max(after + 1, oldest);
    const missed = from - (after + 1);
    const to = Math.min(this.#nextSeq, from + limit);
    const events: ActivityEvent[] = [];
    for (let seq = from; seq < to; seq++) {
      const slot = this.#ring[seq % this.capacity];
      if (slot) events.push(this.#eventOf(slot));
    }
    return { events, missed };
  }

  /** Resolves when an event newer than `after` exists, or when `signal` aborts (then it resolves too). */
  async waitForNewer(after: number, signal: AbortSignal): Promise<void> {
    if (this.lastSeq > after || signal.aborted) return;
    await this.#wakeups.wait(signal);
  }

  /** Live batches after `after`, until `signal` aborts; `pauseMs` coalesces bursts into fewer messages. */
  async *follow(after: number, signal: AbortSignal, pauseMs = 0): AsyncGenerator<ActivityBatch & { lastSeq: number }> {
    let cursor = after;
    while (!signal.aborted) {
      const batch = this.read(cursor);
      if (batch.events.length > 0 || batch.missed > 0) {
        cursor = batch.events.at(-1)?.seq ?? cursor + batch.missed;
        yield { ...batch, lastSeq: cursor };
        continue;
      }
      await this.waitForNewer(cursor, signal);
      if (pauseMs > 0) await sleepUnlessAborted(pauseMs, signal);
    }
  }
}

export function sleepUnlessAborted(ms: number, signal: AbortSignal): Promise<void> {
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
