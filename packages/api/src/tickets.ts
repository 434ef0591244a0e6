import { randomBytes } from 'node:crypto';

export interface TicketStoreOptions {
  /** How long a ticket stays redeemable, in ms. */
  ttlMs?: number;
  /** Tickets outstanding at once; the oldest is dropped beyond (a token holder cannot grow memory without bound). */
  maxOutstanding?: number;
  /** Clock, for tests. */
  now?: () => number;
}

/**
 * Short-lived, single-use credentials for browser EventSource streams, which cannot send an
 * Authorization header: a holder of the real token asks for a ticket, then puts it in the stream's URL.
 * A URL ends up in logs, proxies and history, so what it carries must be worthless soon after use.
 */
export class TicketStore {
  readonly ttlMs: number;
  readonly #maxOutstanding: number;
  readonly #now: () => number;
  /** Ticket → expiry (epoch ms) and the owner it was issued to; a Map keeps insertion order, i.e. oldest first. */
  readonly #tickets = new Map<string, { expiry: number; owner: string }>();

  constructor(options: TicketStoreOptions = {}) {
    this.ttlMs = options.ttlMs ?? 30_000;
    this.#maxOutstanding = options.maxOutstanding ?? 10_000;
    this.#now = options.now ?? Date.now;
  }

  /** A ticket for `owner` (the credential that asked: the stream's calls are that caller's). */
  issue(owner = ''): { ticket: string; expiresInMs: number } {
    this.#prune();
    if (this.#tickets.size >= this.#maxOutstanding) {
      const oldest = this.#tickets.keys().next();
      if (!oldest.done) this.#tickets.delete(oldest.value);
    }
    const ticket = randomBytes(24).toString('base64url');
    this.#tickets.set(ticket, { expiry: this.#now() + this.ttlMs, owner });
    return { ticket, expiresInMs: this.ttlMs };
  }

  /** True once per ticket, if it has not expired; the ticket is spent either way. */
  redeem(ticket: string): boolean {
    return this.take(ticket) !== undefined;
  }

  /** Spends the ticket; its owner if it was valid. */
  take(ticket: string): { owner: string } | undefined {
    const entry = this.#tickets.get(ticket);
    if (entry === undefined) return undefined;
    this.#tickets.delete(ticket);
    return this.#now() < entry.expiry ? { owner: entry.owner } : undefined;
  }

  get outstanding(): number {
    return this.#tickets.size;
  }

  #prune(): void {
    const now = this.#now();
    for (const [ticket, { expiry }] of this.#tickets) {
      // Same ttl for all, so expiries rise with insertion order: stop at the first live one.
      if (expiry > now) break;
      this.#tickets.delete(ticket);
    }
  }
}
