/**
 * "Stream all users": a users.stream subscription (SSE, pages tracked by last id) with progress, and a
 * cancel that unsubscribes — which closes the stream, fires the server's signal and cancels the page
 * query in flight. The server's own end of it (the generator's `settled` event) is joined from the
 * activity stream, so the panel shows both sides.
 */
import type { ActivityEvent } from '@asyncscope/api';
import type { UserStreamPage } from '@asyncscope/contract';
import { FrameBatcher, type FrameScheduler } from '../lib/frame-batcher';

export type StreamStatus = 'idle' | 'connecting' | 'streaming' | 'done' | 'cancelled' | 'error';

export interface StreamState {
  status: StreamStatus;
  pageSize: number;
  /** Users received (summed on the client, so a resumed stream keeps counting). */
  received: number;
  total: number | null;
  pages: number;
  lastId: string | null;
  startedAt: number | null;
  endedAt: number | null;
  /** Received when the cancel was asked for; nothing may be counted after it. */
  receivedAtCancel: number | null;
  error: string | null;
  reconnecting: boolean;
  /** The server's side: its call id for the stream and how the generator ended. */
  server: { callId: string; code?: string; ms?: number } | null;
}

export interface StreamHandlers {
  onData: (message: { id: string; data: UserStreamPage }) => void;
  onError: (error: unknown) => void;
  onComplete: () => void;
  onConnectionStateChange: (state: { state: 'idle' | 'connecting' | 'pending'; error: unknown }) => void;
}

export type StreamSubscribe = (input: { pageSize: number }, handlers: StreamHandlers) => { unsubscribe(): void };

const IDLE: StreamState = {
  status: 'idle',
  pageSize: 500,
  received: 0,
  total: null,
  pages: 0,
  lastId: null,
  startedAt: null,
  endedAt: null,
  receivedAtCancel: null,
  error: null,
  reconnecting: false,
  server: null,
};

export class UserStream {
  #state: StreamState = IDLE;
  #snapshot: StreamState = IDLE;
  #sub: { unsubscribe(): void } | null = null;
  readonly #batcher: FrameBatcher;

  constructor(
    private readonly subscribeStream: StreamSubscribe,
    scheduler?: FrameScheduler,
    private readonly clock: () => number = Date.now,
  ) {
    this.#batcher = new FrameBatcher(() => { this.#snapshot = this.#state; }, scheduler);
  }

  subscribe = (listener: () => void): (() => void) => this.#batcher.subscribe(listener);
  getSnapshot = (): StreamState => this.#snapshot;

  get state(): StreamState {
    return this.#state;
  }

  get running(): boolean {
    return this.#state.status === 'connecting' || this.#state.status === 'streaming';
  }

  start(pageSize: number): void {
    if (this.running) return;
    this.#set({ ...IDLE, status: 'connecting', pageSize, startedAt: this.clock() });
    let sub: { unsubscribe(): void } | null = null;
    const current = (): boolean => this.#sub === sub && this.running;
    sub = this.subscribeStream({ pageSize }, {
      onData: ({ id, data }) => {
        if (!current()) return;
        this.#set({
          status: 'streaming',
          received: this.#state.received + data.items.length,
          total: data.total,
          pages: this.#state.pages + 1,
          lastId: id,
          reconnecting: false,
        });
      },
      onConnectionStateChange: ({ state, error }) => {
        if (!current()) return;
        if (state === 'connecting' && error) this.#set({ reconnecting: true });
        else if (state === 'pending') this.#set({ reconnecting: false, status: this.#state.status === 'connecting' ? 'streaming' : this.#state.status });
      },
      onError: (error) => {
        if (!current()) return;
        this.#sub = null;
        this.#set({ status: 'error', endedAt: this.clock(), error: error instanceof Error ? error.message : String(error), reconnecting: false });
      },
      onComplete: () => {
        if (!current()) return;
        this.#sub = null;
        this.#set({ status: 'done', endedAt: this.clock(), reconnecting: false });
      },
    });
    this.#sub = sub;
  }

  /** Unsubscribes: the stream closes, and the server's signal stops the generator and its query. */
  cancel(): void {
    if (!this.running) return;
    const sub = this.#sub;
    this.#sub = null;
    this.#set({ status: 'cancelled', endedAt: this.clock(), receivedAtCancel: this.#state.received, reconnecting: false });
    sub?.unsubscribe();
  }

  /** Picks the server's users.stream call that began after we subscribed, and its end. */
  applyServerEvents(events: readonly ActivityEvent[]): void {
    const { startedAt } = this.#state;
    if (startedAt === null) return;
    for (const event of events) {
      if (event.path !== 'users.stream') continue;
      const server = this.#state.server;
      if (!server && event.type === 'received' && event.at >= startedAt - 2000) {
        this.#set({ server: { callId: event.callId } });
      } else if (server?.callId === event.callId && event.type === 'settled') {
        this.#set({ server: { ...server, code: event.code, ms: event.ms } });
      }
    }
  }

  #set(patch: Partial<StreamState>): void {
    this.#state = { ...this.#state, ...patch };
    this.#batcher.schedule();
  }
}

/** Users per second over the stream's life so far. */
export function streamRate(state: StreamState, now: number): number {
  if (state.startedAt === null) return 0;
  const seconds = ((state.endedAt ?? now) - state.startedAt) / 1000;
  return seconds > 0 ? state.received / seconds : 0;
}
