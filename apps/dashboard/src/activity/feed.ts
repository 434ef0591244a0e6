/**
 * The one activity stream of the dashboard (activity.events over SSE). Batches are tracked by their last
 * sequence number: while the server lives, the link (EventSource's Last-Event-ID) and our own
 * resubscription after an error both resume from the last event we got (`boot:seq`), so there are no gaps
 * and no duplicates. A new id space (a restarted server, or a recreated broker stream) numbers its events
 * from 1 again: a batch with another bootId starts our count over, and `serverRestarted()` re-reads a
 * restarted single server from the oldest event it holds.
 */
import type { ActivityEvent } from '@asyncscope/api';
import type { StatsSample } from '@asyncscope/api';

export interface FeedInput {
  lastEventId?: string | null;
  replay?: boolean;
}

export interface FeedHandlers {
  /** `bootId` names the batch's id space (absent: an older server; the count goes on). */
  onData: (batch: { bootId?: string; events: ActivityEvent[]; missed: number }) => void;
  onError: (error: unknown) => void;
  /** 'connecting' with an error: the link lost the stream and is reconnecting by itself. */
  onConnectionStateChange: (state: { state: 'idle' | 'connecting' | 'pending'; error: unknown }) => void;
}

export type FeedSubscribe = (input: FeedInput, handlers: FeedHandlers) => { unsubscribe(): void };

export type FeedStatus = 'connecting' | 'live' | 'reconnecting' | 'stopped';

export interface FeedState {
  status: FeedStatus;
  /** Last event sequence number received, in id space `bootId`. */
  lastSeq: number;
  /** The id space of `lastSeq` (null before the first batch that names one). */
  bootId: string | null;
  /** Events the server's ring dropped before we read them. */
  missed: number;
  /** Streams opened (1 + reconnections we did ourselves). */
  subscriptions: number;
  lastError: string | null;
}

export interface FeedOptions {
  /** First retry delay after the stream failed; doubles up to maxRetryMs. */
  retryMs?: number;
  maxRetryMs?: number;
  setTimeout?: (fn: () => void, ms: number) => unknown;
  clearTimeout?: (handle: unknown) => void;
}

export class ActivityFeed {
  #state: FeedState = { status: 'stopped', lastSeq: 0, bootId: null, missed: 0, subscriptions: 0, lastError: null };
  #sub: { unsubscribe(): void } | null = null;
  #retryTimer: unknown = null;
  #retryDelay: number;
  readonly #retryMs: number;
  readonly #maxRetryMs: number;
  readonly #setTimeout: (fn: () => void, ms: number) => unknown;
  readonly #clearTimeout: (handle: unknown) => void;
  readonly #stateListeners = new Set<(state: FeedState) => void>();

  constructor(
    private readonly subscribe: FeedSubscribe,
    private readonly onEvents: (events: ActivityEvent[], missed: number) => void,
    options: FeedOptions = {},
  ) {
    this.#retryMs = options.retryMs ?? 500;
    this.#maxRetryMs = options.maxRetryMs ?? 5000;
    this.#retryDelay = this.#retryMs;
    this.#setTimeout = options.setTimeout ?? ((fn, ms) => setTimeout(fn, ms));
    this.#clearTimeout = options.clearTimeout ?? ((h) => { clearTimeout(h as ReturnType<typeof setTimeout>); });
  }

  get state(): FeedState {
    return this.#state;
  }

  onState(listener: (state: FeedState) => void): () => void {
    this.#stateListeners.add(listener);
    return () => { this.#stateListeners.delete(listener); };
  }

  /** Starts following from now (events before this moment are not replayed). */
  start(): void {
    if (this.#state.status !== 'stopped') return;
    this.#open({}, 'connecting');
  }

  stop(): void {
    this.#cancelRetry();
    this.#sub?.unsubscribe();
    this.#sub = null;
    this.#set({ status: 'stopped' });
  }

  /** The server restarted (its sequence numbers began again): read everything its new ring holds. */
  serverRestarted(): void {
    if (this.#state.status === 'stopped') return;
    this.#cancelRetry();
    this.#sub?.unsubscribe();
    this.#sub = null;
    this.#set({ lastSeq: 0, bootId: null });
    this.#open({ replay: true }, 'reconnecting');
  }

  #open(input: FeedInput, status: 'connecting' | 'reconnecting'): void {
    this.#set({ status, subscriptions: this.#state.subscriptions + 1 });
    let sub: { unsubscribe(): void } | null = null;
    const isCurrent = (): boolean => this.#sub === sub;
    sub = this.subscribe(input, {
      onData: (batch) => {
        if (!isCurrent()) return;
        this.#retryDelay = this.#retryMs;
        if (this.#state.status !== 'live') this.#set({ status: 'live', lastError: null });
        // Another id space (a restarted server, a recreated stream): its numbers start again, so does our count.
        if (batch.bootId !== undefined && batch.bootId !== this.#state.bootId) this.#set({ bootId: batch.bootId, lastSeq: this.#state.bootId === null ? this.#state.lastSeq : 0 });
        const fresh = batch.events.filter((e) => e.seq > this.#state.lastSeq);
        const last = fresh.at(-1);
        if (last) this.#set({ lastSeq: last.seq });
        if (batch.missed > 0) this.#set({ missed: this.#state.missed + batch.missed });
        if (fresh.length > 0 || batch.missed > 0) this.onEvents(fresh, batch.missed);
      },
      onConnectionStateChange: ({ state, error }) => {
        if (!isCurrent()) return;
        if (state === 'pending') {
          this.#retryDelay = this.#retryMs;
          this.#set({ status: 'live', lastError: null });
        } else if (state === 'connecting' && error) {
          this.#set({ status: 'reconnecting', lastError: errorText(error) });
        }
      },
      onError: (error) => {
        if (!isCurrent()) return;
        // The link gave up (the stream was refused, e.g. the server answered 5xx while starting):
        // subscribe again ourselves, from the last event we have.
        this.#sub = null;
        this.#set({ status: 'reconnecting', lastError: errorText(error) });
        this.#scheduleRetry();
      },
    });
    this.#sub = sub;
  }

  #scheduleRetry(): void {
    this.#cancelRetry();
    const delay = this.#retryDelay;
    this.#retryDelay = Math.min(this.#maxRetryMs, this.#retryDelay * 2);
    this.#retryTimer = this.#setTimeout(() => {
      this.#retryTimer = null;
      if (this.#state.status === 'stopped') return;
      // The full id: a bare number would be read in whatever id space the server has now.
      const { lastSeq, bootId } = this.#state;
      this.#open(lastSeq > 0 ? { lastEventId: bootId === null ? String(lastSeq) : `${bootId}:${lastSeq}` } : {}, 'reconnecting');
    }, delay);
  }

  #cancelRetry(): void {
    if (this.#retryTimer !== null) this.#clearTimeout(this.#retryTimer);
    this.#retryTimer = null;
  }

  #set(patch: Partial<FeedState>): void {
    this.#state = { ...this.#state, ...patch };
    for (const listener of this.#stateListeners) listener(this.#state);
  }
}

function errorText(error: unknown): string {
  if (error instanceof Error) return error.message;
  if (typeof error === 'object' && error !== null && 'type' in error) return `stream ${String(error.type)}`;
  return String(error);
}

/**
 * Whether two consecutive answers of activity.stats come from different server processes. The history
 * holds one sample a second since the process started (the newest 300): while the process lives it never
 * shrinks, and its oldest sample is never newer than the newest one we saw before. With the broker
 * (`mode` 'broker') consecutive answers may come from different instances, and ids are the stream's, the
 * same on every instance: a new id space shows in the events' bootId instead, so this is never a restart.
 */
export function serverRestarted(previous: readonly StatsSample[] | undefined, next: readonly StatsSample[], mode: 'local' | 'broker' = 'local'): boolean {
  if (mode === 'broker') return false;
  const lastSeen = previous?.at(-1);
  if (!previous || !lastSeen) return false;
  if (next.length < previous.length) return true;
  const oldest = next[0];
  return oldest !== undefined && oldest.at > lastSeen.at;
}
