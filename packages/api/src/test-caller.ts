/** Shared set-up of the router tests: a database of their own, a Runtime on it, and an authorized caller. */
import { afterAll, beforeAll, inject } from 'vitest';
import { createTestDatabase, type TestDatabase } from '@asyncscope/db/testing';
import { createInnerContext } from './context';
import { createCaller } from './root';
import { Runtime } from './runtime';

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
    fixture.runtime = new Runtime(fixture.t);
    fixture.caller = createCaller(createInnerContext({ runtime: fixture.runtime, authorized: true }));
  });
  afterAll(async () => {
    await fixture.runtime.close();
    await fixture.t[Symbol.asyncDispose]();
  });
  return fixture;
}
