import { getEventListeners } from 'node:events';
import type { TRPCError } from '@trpc/server';
import { afterAll, afterEach, beforeAll, describe, expect, it, inject, vi } from 'vitest';
import { DatabaseUnavailableError } from '@asyncscope/db';
import { createTestDatabase, type TestDatabase } from '@asyncscope/db/testing';
import { ShutdownError } from './call-scope';
import { createInnerContext } from './context';
import { createCaller } from './root';
import { Runtime } from './runtime';
import { TEST_RUNTIME_OPTIONS } from './test-caller';

let t: TestDatabase;
beforeAll(async () => { t = await createTestDatabase(inject('pgAdminUrl'), inject('pgTemplate'), { poolMax: 1 }); });
afterAll(async () => { await t[Symbol.asyncDispose](); });

afterEach(() => { vi.useRealTimers(); });

describe('Runtime', () => {
  it('starts nothing when built, samples stats from start() on and stops at stop()', async () => {
    vi.useFakeTimers({ toFake: ['setInterval', 'clearInterval'] });
    const runtime = new Runtime(t, TEST_RUNTIME_OPTIONS);
    expect(vi.getTimerCount()).toBe(0);
    expect(runtime.cpu.threads).toBe(0);

    runtime.start();
    expect(vi.getTimerCount()).toBe(1);
    vi.advanceTimersByTime(2000);
    expect(runtime.stats.history()).toHaveLength(2);

    await runtime.stop();
    expect(vi.getTimerCount()).toBe(0);
  });
});

describe('Runtime: stopping every call in flight', () => {
  // Each call used to hang a listener on the shutdown and database-down signals; an EventTarget walks its
  // whole listener list on every add and remove, so each call paid for every other call in flight.
  it('shutdown and the database going away stop the calls in flight through the registry, with no listener per call', async () => {
    const shutdown = new AbortController();
    let down = new AbortController();
    const runtime = new Runtime(t, { ...TEST_RUNTIME_OPTIONS, shutdownSignal: shutdown.signal, databaseDownSignal: () => down.signal });
    const caller = createCaller(createInnerContext({ runtime, authorized: true }));
    const codeOf = (call: Promise<unknown>) => call.then(() => 'OK', (e: unknown) => (e as TRPCError).code);
    try {
      // Outside the pool (poolMax 1): these wait in its queue, so they are in flight until stopped.
      const first = [codeOf(caller.lab.sleep({ ms: 20_000 })), codeOf(caller.lab.sleep({ ms: 20_000 })), codeOf(caller.lab.sleep({ ms: 20_000 }))];
      await vi.waitFor(() => { expect(runtime.calls.size).toBe(3); });
      expect(getEventListeners(shutdown.signal, 'abort')).toHaveLength(1);
      expect(getEventListeners(down.signal, 'abort')).toHaveLength(1);
      down.abort(new DatabaseUnavailableError('gone'));
      expect(await Promise.all(first)).toEqual(['SERVICE_UNAVAILABLE', 'SERVICE_UNAVAILABLE', 'SERVICE_UNAVAILABLE']);

      // The database is back with a new signal: calls opened now are stopped by it, and by shutdown.
      down = new AbortController();
      const second = [codeOf(caller.lab.sleep({ ms: 20_000 })), codeOf(caller.lab.sleep({ ms: 20_000 }))];
      await vi.waitFor(() => { expect(runtime.calls.size).toBe(2); });
      expect(getEventListeners(down.signal, 'abort')).toHaveLength(1);
      shutdown.abort(new ShutdownError());
      expect(await Promise.all(second)).toEqual(['SERVICE_UNAVAILABLE', 'SERVICE_UNAVAILABLE']);
      expect(runtime.calls.size).toBe(0);
      // After shutdown a new call is stopped before it starts.
      expect(await codeOf(caller.lab.sleep({ ms: 20_000 }))).toBe('SERVICE_UNAVAILABLE');
    } finally {
      await runtime.stop();
    }
  });

  // The lab's fault settings (lab.faults, setFault, clearFaults) are not registered calls: each listens to
  // the shutdown signal itself, so a dozen dashboards reading them at once must not trip Node's leak warning.
  it('a dozen lab fault reads waiting at once put no MaxListenersExceededWarning on the shutdown signal, and shutdown stops them', async () => {
    const shutdown = new AbortController();
    const runtime = new Runtime(t, { ...TEST_RUNTIME_OPTIONS, shutdownSignal: shutdown.signal });
    const caller = createCaller(createInnerContext({ runtime, authorized: true }));
    const codeOf = (call: Promise<unknown>) => call.then(() => 'OK', (e: unknown) => (e as TRPCError).code);
    const warnings: string[] = [];
    const onWarning = (w: Error) => { warnings.push(w.name); };
    process.on('warning', onWarning);
    try {
      const holder = codeOf(caller.lab.sleep({ ms: 20_000 })); // takes the pool's one connection
      await vi.waitFor(() => { expect(runtime.calls.size).toBe(1); });
      const reads = Array.from({ length: 12 }, () => codeOf(caller.lab.faults()));
      await vi.waitFor(() => { expect(getEventListeners(shutdown.signal, 'abort').length).toBeGreaterThanOrEqual(13); });
      await new Promise((r) => setImmediate(r)); // a warning is emitted on the next tick
      expect(warnings).not.toContain('MaxListenersExceededWarning');
      shutdown.abort(new ShutdownError());
      expect(new Set(await Promise.all([holder, ...reads]))).toEqual(new Set(['SERVICE_UNAVAILABLE']));
    } finally {
      process.off('warning', onWarning);
      await runtime.stop();
    }
  });
});
