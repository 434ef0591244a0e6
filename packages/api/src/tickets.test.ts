import { describe, expect, it } from 'vitest';
import { TicketStore } from './tickets';

describe('TicketStore', () => {
  it('redeems a ticket once, only before it expires', () => {
    let now = 1_000;
    const store = new TicketStore({ ttlMs: 30_000, now: () => now });
    const a = store.issue().ticket;
    const b = store.issue().ticket;
    expect(a).toMatch(/^[\w-]{32}$/);
    expect(a).not.toBe(b);
    expect(store.redeem(a)).toBe(true);
    expect(store.redeem(a)).toBe(false); // single use
    now += 30_000;
    expect(store.redeem(b)).toBe(false); // expired
    expect(store.redeem('made-up')).toBe(false);
  });

  it('forgets expired tickets and caps the outstanding ones', () => {
    let now = 0;
    const store = new TicketStore({ ttlMs: 10, maxOutstanding: 3, now: () => now });
    const first = store.issue().ticket;
    for (let i = 0; i < 5; i++) store.issue();
    expect(store.outstanding).toBe(3);
    expect(store.redeem(first)).toBe(false); // dropped as the oldest
    now = 11;
    store.issue();
    expect(store.outstanding).toBe(1);
  });
});
