/**
 * callProcedure's promises about how a call ends, on a real PostgreSQL: a call whose signal fired never
 * settles OK (even if its statement ignored the cancel and completed), and database faults are
 * SERVICE_UNAVAILABLE.
 */
import { TRPCError } from '@trpc/server';
import { TimeoutError } from '@asyncscope/concurrency';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '@asyncscope/db/testing';
import { createInnerContext } from './context';
import { Runtime } from './runtime';
import { TEST_RUNTIME_OPTIONS } from './test-caller';
import { callProcedure, createCallerFactory, createTRPCRouter } from './trpc';

let t: TestDatabase;
let runtime: Runtime;
beforeAll(async () => {
  t = await createTestDatabase(inject('pgAdminUrl'), inject('pgTemplate'));
  runtime = new Runtime(t, TEST_RUNTIME_OPTIONS);
});
afterAll(async () => {
  await runtime.stop();
  await t[Symbol.asyncDispose]();
});

const router = createTRPCRouter({
  // Swallows the first cancel and then finishes normally: what a statement does when a cancel arrives
  // before the backend has read it.
  ignoresCancel: callProcedure.query(async ({ ctx }) => {
    await ctx.runtime.db.bind(ctx.call).sql.unsafe(`do $$ begin
      begin perform pg_sleep(2); exception when query_canceled then null; end;
    end $$`);
    return 'finished';
  }),
  loseConnection: callProcedure.query(async ({ ctx }) => {
    await ctx.runtime.db.bind(ctx.call).sql`select pg_terminate_backend(pg_backend_pid())`;
    return 'unreachable';
  }),
  // What the call's scope was given to abort: the request's own controller (fast path) or one of its own.
  waitsForDeadline: callProcedure.query(async ({ ctx }) => {
    await ctx.runtime.db.bind(ctx.call).sql`select pg_sleep(5)`;
    return 'unreachable';
  }),
});
const caller = (signal?: AbortSignal) => createCallerFactory(router)(createInnerContext({ runtime, authorized: true }), { signal });

describe('the call scope’s signal', () => {
  it('is the request’s own when the context offers its controller (callController): the deadline aborts that', async () => {
    const request = new AbortController();
    const ctx = createInnerContext({ runtime, authorized: true, clientBudgetMs: 200, callController: request });
    const error: unknown = await createCallerFactory(router)(ctx, { signal: request.signal }).waitsForDeadline().catch((e: unknown) => e);
    expect((error as TRPCError).code).toBe('TIMEOUT');
    expect(request.signal.reason).toBeInstanceOf(TimeoutError);
  });

  it('is one of its own, linked to the request, when the controller is not the request’s signal’s', async () => {
    const request = new AbortController();
    const ctx = createInnerContext({ runtime, authorized: true, clientBudgetMs: 200, callController: new AbortController() });
    const error: unknown = await createCallerFactory(router)(ctx, { signal: request.signal }).waitsForDeadline().catch((e: unknown) => e);
    expect((error as TRPCError).code).toBe('TIMEOUT');
    expect(request.signal.aborted).toBe(false);
    expect(ctx.callController?.signal.aborted).toBe(false);
  });
});

describe('how a call ends', () => {
  it('a call whose signal fired is reported as stopped, even if its statement completed', async () => {
    const controller = new AbortController();
    const result = caller(controller.signal).ignoresCancel();
    setTimeout(() => { controller.abort(); }, 200);
    const error: unknown = await result.catch((e: unknown) => e);
    expect(error).toBeInstanceOf(TRPCError);
    expect((error as TRPCError).code).toBe('CLIENT_CLOSED_REQUEST');
  });

  it('a lost connection is SERVICE_UNAVAILABLE, retryable, never INTERNAL_SERVER_ERROR', async () => {
    const error: unknown = await caller().loseConnection().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(TRPCError);
    expect((error as TRPCError).code).toBe('SERVICE_UNAVAILABLE');
    expect((error as TRPCError).message).toMatch(/connection to the database was lost.*Safe to retry/);
  });
});
