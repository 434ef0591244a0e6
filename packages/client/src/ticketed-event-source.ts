/**
 * An EventSource whose reconnects carry a fresh stream ticket.
 *
 * A native EventSource reconnects by itself, with the URL it was made with — whose ticket is single-use, so
 * spent: the server answers 401 and the stream is lost for good (and with it the resume from the last id).
 * This wrapper takes the reconnect over: when its inner source fails it closes it, asks for a new ticket,
 * and opens a new source with that ticket and `lastEventId` (the server resumes after it). tRPC's
 * httpSubscriptionLink sees one source that went "connecting" and came back. If the server refuses the
 * token itself, the wrapper closes, and the subscription ends with that error.
 */
import { TRPCClientError } from '@trpc/client';

interface MessageLike { data?: unknown; lastEventId?: string }
interface InnerSource {
  readyState: number;
  addEventListener(type: string, listener: (event: MessageLike) => void): void;
  close(): void;
}
export type EventSourceConstructor = new (url: string, init?: never) => InnerSource;

/** What the server sends (tRPC's SSE events); forwarded as they come. */
const FORWARDED = ['open', 'message', 'connected', 'serialized-error', 'ping', 'return'] as const;
const FIRST_RETRY_MS = 500;
const MAX_RETRY_MS = 5000;

/** Returns an EventSource class for httpSubscriptionLink: `getTicket` is called for every reconnect. */
export function ticketedEventSource(Base: EventSourceConstructor, getTicket: (signal: AbortSignal) => Promise<string>) {
  return class TicketedEventSource extends EventTarget {
    readonly CONNECTING = 0;
    readonly OPEN = 1;
    readonly CLOSED = 2;
    readyState = 0;
    readonly url: string;
    readonly withCredentials = false;
    #inner: InnerSource | undefined;
    #lastEventId: string | undefined;
    #failures = 0;
    #timer: ReturnType<typeof setTimeout> | undefined;
    /** Aborted by close(): a ticket request in flight stops with it. */
    readonly #closed = new AbortController();

    constructor(url: string, init?: never) {
      super();
      this.url = url;
      this.#open(url, init);
    }

    close(): void {
      this.readyState = this.CLOSED;
      this.#closed.abort();
      clearTimeout(this.#timer);
      this.#inner?.close();
      this.#inner = undefined;
    }

    #open(url: string, init?: never): void {
      const inner = new Base(url, init);
      this.#inner = inner;
      for (const type of FORWARDED) inner.addEventListener(type, (event) => { this.#forward(inner, type, event); });
      inner.addEventListener('error', () => { this.#lost(inner); });
    }

    #forward(inner: InnerSource, type: string, event: MessageLike): void {
      if (inner !== this.#inner) return;
      this.readyState = this.OPEN;
      this.#failures = 0;
      if (type === 'message' && event.lastEventId) this.#lastEventId = event.lastEventId;
      this.dispatchEvent(new MessageEvent(type, { data: event.data, lastEventId: event.lastEventId ?? '' }));
    }

    /** The inner source failed (network, server gone, or a refused reconnect): reconnect with a new ticket. */
    #lost(inner: InnerSource): void {
      if (inner !== this.#inner || this.#closed.signal.aborted) return;
      inner.close();
      this.#inner = undefined;
      this.readyState = this.CONNECTING;
      this.dispatchEvent(new Event('error')); // CONNECTING: tRPC reports "connecting" and waits
      this.#retryLater();
    }

    #retryLater(): void {
      const delay = Math.min(MAX_RETRY_MS, FIRST_RETRY_MS * 2 ** this.#failures++);
      this.#timer = setTimeout(() => { this.#reconnect().catch(() => undefined); }, delay);
    }

    async #reconnect(): Promise<void> {
      let ticket: string;
      try {
        ticket = await getTicket(this.#closed.signal);
      } catch (error) {
        if (this.#closed.signal.aborted) return;
        // The server answered and refused (a wrong token): give up, the subscription gets the error.
        // Anything else (server unreachable, timeout) may pass: try again later.
        if (error instanceof TRPCClientError) {
          this.readyState = this.CLOSED;
          this.dispatchEvent(new Event('error'));
          return;
        }
        this.#retryLater();
        return;
      }
      if (this.#closed.signal.aborted) return;
      const url = new URL(this.url);
      url.searchParams.set('connectionParams', JSON.stringify({ ticket }));
      if (this.#lastEventId !== undefined) url.searchParams.set('lastEventId', this.#lastEventId);
      this.#open(url.toString());
    }
  };
}
