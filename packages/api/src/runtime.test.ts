import { afterAll, afterEach, beforeAll, describe, expect, it, inject, vi } from 'vitest';
import { createTestDatabase, type TestDatabase } from '@asyncscope/db/testing';
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
