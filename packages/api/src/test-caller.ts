/** Shared set-up of the router tests: a database of their own, a Runtime on it, and an authorized caller. */
import { afterAll, beforeAll, inject } from 'vitest';
import { createTestDatabase, type TestDatabase } from '@asyncscope/db/testing';
import { createInnerContext } from './context';
import { createCaller } from './root';
import { Runtime, type RuntimeOptions } from './runtime';

/** The app's settings for a test Runtime: the server's defaults, but a queue per client as long as the whole queue (one test caller is one client). */
export const TEST_RUNTIME_OPTIONS: RuntimeOptions = { maxInFlight: 100, maxQueue: 1000, maxQueuePerClient: 1000, lab: true, callTimeoutMs: 30_000, instanceId: 'test-instance' };

export interface CallerFixture {
  t: TestDatabase;
  runtime: Runtime;
  caller: ReturnType<typeof createCaller>;
}

/** Registers beforeAll/afterAll hooks; the fixture's fields are set once beforeAll has run. */
export function useCallerFixture(): CallerFixture {
  const fixture = {} as CallerFixture;
  beforeAll(async () => {
    fixture.t = await createTestDatabase(inject('pgAdminUrl'), inject('pgTemplate'));
    fixture.runtime = new Runtime(fixture.t, TEST_RUNTIME_OPTIONS).start();
    fixture.caller = createCaller(createInnerContext({ runtime: fixture.runtime, authorized: true }));
  });
  afterAll(async () => {
    await fixture.runtime.stop();
    await fixture.t[Symbol.asyncDispose]();
  });
  return fixture;
}
