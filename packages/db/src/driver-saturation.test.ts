/**
 * postgres.js's pool queue under a long saturation (patches/postgres@3.4.9.patch, `src/queue.js`, row 9 of
 * patches/README.md). `Queue.shift()` leaves a hole at the head and the array was reset only when the
 * queue emptied; `remove()` (every cancel of a waiting statement) searched from index 0. Under a pool that
 * never drains, each cancel scanned every caller served since the pool was last idle, and throughput
 * decayed for as long as the saturation lasted (our bench: 12,900 → 5,600 req/s over 50 s). Its own file:
 * it keeps one core busy for 12 s.
 */
import postgres from 'postgres';
import { afterAll, beforeAll, expect, inject, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from './testing';

let t: TestDatabase;
beforeAll(async () => {
  t = await createTestDatabase(inject('pgAdminUrl'), inject('pgTemplate'), { poolMax: 1 });
});
afterAll(async () => {
  await t[Symbol.asyncDispose]();
});

const WINDOW_MS = 1000;
const WINDOWS = 12;

it('keeps its throughput through a long saturation with many cancels (the queue is scanned from its head)', async () => {
  // One connection and always more callers than that: the queue never empties. reserve()/release() hand the
  // connection from caller to caller without a round trip, so in 12 s as many callers pass through the
  // queue as a saturated server sends in a minute; the cancellers meanwhile give up on statements waiting
  // in that queue, each cancel a remove().
  const sql = postgres(t.url, { max: 1, max_pipeline: 0, onnotice: () => undefined } as postgres.Options<Record<string, never>>);
  try {
    await sql`select 1`;
    const done = new Array<number>(WINDOWS).fill(0);
    /** Per window, the fastest batch of cancels seen, in µs per cancel. */
    const cancelUs = new Array<number>(WINDOWS).fill(Infinity);
    const start = performance.now();
    const end = start + WINDOW_MS * WINDOWS;
    const windowNow = (): number => Math.floor((performance.now() - start) / WINDOW_MS);
    const count = (): void => {
      const window = windowNow();
      if (window < WINDOWS) done[window] = (done[window] ?? 0) + 1;
    };
    const nextTurn = () => new Promise<void>((resolve) => { setImmediate(resolve); });
    const reserver = async (): Promise<void> => {
      for (let n = 1; performance.now() < end; n++) {
        const reserved = await sql.reserve();
        // Now and then yield to the event loop while holding the connection: the other callers stay queued.
        if (n % 100 === 0) await nextTurn();
        reserved.release();
        count();
      }
    };
    const canceller = async (): Promise<void> => {
      while (performance.now() < end) {
        const waiting = Array.from({ length: 20 }, () => sql`select 1`.execute());
        const settled = waiting.map((q) => q.then(() => 'answered', (e: unknown) => (e as { code?: string }).code));
        await Promise.resolve(); // postgres.js queues a statement one microtask after execute()
        await Promise.resolve();
        const cancelling = performance.now();
        for (const q of waiting) q.cancel(); // synchronous for a waiting statement: remove() and reject
        const us = ((performance.now() - cancelling) * 1000) / waiting.length;
        const window = windowNow();
        if (window < WINDOWS) cancelUs[window] = Math.min(cancelUs[window] ?? Infinity, us);
        for (const outcome of await Promise.all(settled)) {
          expect(outcome).toBe('57014');
          count();
        }
        await nextTurn();
      }
    };
    // A cancel's own cost is mostly the stack trace of its 57014 error; without it, what a cancel costs
    // beyond that (the scan) shows sooner.
    const stackTraceLimit = Error.stackTraceLimit;
    Error.stackTraceLimit = 0;
    try {
      await Promise.all([reserver(), reserver(), reserver(), reserver(), canceller(), canceller()]);
    } finally {
      Error.stackTraceLimit = stackTraceLimit;
    }
    // Ratios of this run's own windows, so a slow or loaded machine scales both sides; the first window
    // (connecting, JIT) is left out. The cost of a cancel is the fastest batch of each window: a batch
    // that another process preempted is slower, never faster, so the minimum measures the code, not the
    // machine's load. Unpatched, a cancel in the last windows scanned ~100,000 holes and cost many times
    // one in the first; the throughput fell with it.
    const early = Math.min(...cancelUs.slice(1, 4));
    const late = Math.min(...cancelUs.slice(-3));
    console.log(`queue saturation: operations per ${WINDOW_MS} ms: ${done.join(' ')}; fastest µs per cancel: ${cancelUs.map((us) => us.toFixed(1)).join(' ')}`);
    expect(done.reduce((a, b) => a + b, 0)).toBeGreaterThan(20_000);
    expect(late / early).toBeLessThan(3);
  } finally {
    await sql.end({ timeout: 1 });
  }
}, 30_000);
