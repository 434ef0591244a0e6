/**
 * The one mapping from domain errors to tRPC's: every domain error class has a code, and a domain error
 * thrown by a service reaches a real tRPC client over HTTP as that code, its HTTP status and its message.
 */
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { CommitOutcomeUnknownError } from '@asyncscope/db';
import { createTestDatabase, type TestDatabase } from '@asyncscope/db/testing';
import { createTRPCClient, httpLink, isTRPCClientError, type TRPCClient } from '@trpc/client';
import { TRPCError } from '@trpc/server';
import { createHTTPServer } from '@trpc/server/adapters/standalone';
import { afterAll, beforeAll, beforeEach, describe, expect, inject, it } from 'vitest';
import { DuplicateCallIdError } from './calls/registry';
import { createInnerContext } from './context';
import { appRouter, type AppRouter } from './root';
import { Runtime } from './runtime';
import { TEST_RUNTIME_OPTIONS } from './test-caller';
import * as domain from './services/errors';
import { ConflictError, DomainError, NotFoundError, OverloadedError } from './services/errors';
import { DOMAIN_ERROR_CODES, toTRPCError } from './trpc-errors';

/** One case per domain error class at least: the first test checks that none is missing. */
const cases = [
  [new NotFoundError('user', 7), 'NOT_FOUND', 'No user with id 7.'],
  [new ConflictError('A user with the email a@b.co already exists.'), 'CONFLICT', 'A user with the email a@b.co already exists.'],
  [new DuplicateCallIdError('c1'), 'CONFLICT', 'A call with id "c1" is already in flight: call ids must be unique among your calls in flight.'],
  [new OverloadedError('The server is at capacity. Retry shortly.'), 'TOO_MANY_REQUESTS', 'The server is at capacity. Retry shortly.'],
] as const;

describe('toTRPCError', () => {
  it('has a case for every domain error class in services/errors.ts', () => {
    const classes = Object.values(domain).filter((value) => typeof value === 'function' && value.prototype instanceof DomainError);
    expect(classes.length).toBeGreaterThan(0);
    for (const c of classes) expect(cases.some(([error]) => error.constructor === c), c.name).toBe(true);
    expect(new Set(cases.map(([error]) => error.kind))).toEqual(new Set(Object.keys(DOMAIN_ERROR_CODES)));
  });

  it.each(cases)('%s → %s, its message as it is', (error, code, message) => {
    const mapped = toTRPCError(error);
    expect(mapped).toBeInstanceOf(TRPCError);
    expect(mapped).toMatchObject({ code, message, cause: error });
    // As a procedure's error arrives: wrapped by tRPC.
    expect(toTRPCError(new TRPCError({ code: 'INTERNAL_SERVER_ERROR', cause: error }))).toMatchObject({ code, message });
  });

  it('maps a database that went away to SERVICE_UNAVAILABLE, a lost COMMIT saying the outcome is unknown', () => {
    const lost = Object.assign(new Error('write CONNECTION_CLOSED'), { code: 'CONNECTION_CLOSED' });
    expect(toTRPCError(lost)?.code).toBe('SERVICE_UNAVAILABLE');
    expect(toTRPCError(new CommitOutcomeUnknownError(lost))?.message).toMatch(/may or may not have been saved/);
  });

  it('leaves anything else alone', () => {
    expect(toTRPCError(new Error('bug'))).toBeUndefined();
    expect(toTRPCError(new TRPCError({ code: 'FORBIDDEN' }))).toBeUndefined();
    expect(toTRPCError('a string')).toBeUndefined();
  });
});

describe('a domain error thrown by a service, as a tRPC client over HTTP sees it', () => {
  let t: TestDatabase;
  let runtime: Runtime;
  let server: ReturnType<typeof createHTTPServer>;
  let client: TRPCClient<AppRouter>;

  beforeAll(async () => {
    t = await createTestDatabase(inject('pgAdminUrl'), inject('pgTemplate'));
    runtime = new Runtime(t, TEST_RUNTIME_OPTIONS);
    server = createHTTPServer({ router: appRouter, createContext: () => createInnerContext({ runtime, authorized: true }) });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const { port } = server.address() as AddressInfo;
    client = createTRPCClient<AppRouter>({ links: [httpLink({ url: `http://127.0.0.1:${port}` })] });
  });
  afterAll(async () => {
    server.close();
    await runtime.stop();
    await t[Symbol.asyncDispose]();
  });
  beforeEach(async () => { await t.sql`truncate users, idempotency_keys restart identity`; });

  async function failure(call: Promise<unknown>): Promise<{ code: string | undefined; httpStatus: number | undefined; message: string }> {
    const error: unknown = await call.then(() => new Error('the call succeeded'), (e: unknown) => e);
    if (!isTRPCClientError<AppRouter>(error)) throw error;
    return { code: error.data?.code, httpStatus: error.data?.httpStatus, message: error.message };
  }

  it('NotFoundError is NOT_FOUND (404)', async () => {
    expect(await failure(client.users.byId.query({ id: 42 }))).toEqual({ code: 'NOT_FOUND', httpStatus: 404, message: 'No user with id 42.' });
    expect(await failure(client.users.delete.mutate({ id: 42 }))).toEqual({ code: 'NOT_FOUND', httpStatus: 404, message: 'No user with id 42.' });
  });

  it('ConflictError from a unique violation (23505) is CONFLICT (409), naming the email', async () => {
    await client.users.create.mutate({ name: 'Ada', email: 'ada@example.com' });
    expect(await failure(client.users.create.mutate({ name: 'Ada', email: 'ada@example.com' }))).toEqual({
      code: 'CONFLICT',
      httpStatus: 409,
      message: 'A user with the email ada@example.com already exists.',
    });
  });

  it('ConflictError from a reused idempotency key is CONFLICT (409)', async () => {
    await client.users.create.mutate({ name: 'Ada', email: 'ada@example.com', idempotencyKey: 'retry-key-1' });
    expect(await failure(client.users.create.mutate({ name: 'Grace', email: 'grace@example.com', idempotencyKey: 'retry-key-1' }))).toEqual({
      code: 'CONFLICT',
      httpStatus: 409,
      message: 'The idempotency key retry-key-1 was already used for a different request.',
    });
  });

  it('records the mapped code as the call settles', async () => {
    const before = runtime.activity.lastSeq;
    await failure(client.users.byId.query({ id: 42 }));
    const settled = runtime.activity.read(before).events.filter((e) => e.path === 'users.byId' && e.type === 'settled');
    expect(settled).toMatchObject([{ code: 'NOT_FOUND' }]);
  });
});
