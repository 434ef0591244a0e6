import { createTRPCClient, httpLink, TRPCClientError } from '@trpc/client';
import type { AppRouter } from '@asyncscope/api';
import { newUser } from '@asyncscope/api/testing';
import { isCallId } from '@asyncscope/contract';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { startTestServer, TEST_TOKEN, type TestServer } from './test-server';

let t: TestServer;
beforeAll(async () => { t = await startTestServer(); });
afterAll(async () => { await t.close(); });
beforeEach(async () => { await t.database.sql`truncate users restart identity`; });

const client = (token = TEST_TOKEN) =>
  createTRPCClient<AppRouter>({ links: [httpLink({ url: `${t.url}/trpc`, headers: { authorization: `Bearer ${token}` } })] });

const snapshot = () => t.database.sql`select * from users order by id`;

interface ErrorBody { error: { message: string; data: { code: string; httpStatus: number; fieldErrors: Record<string, string[]> | null; stack?: string } } }

async function raw(path: string, init: RequestInit & { token?: string | null } = {}): Promise<{ status: number; body: unknown; headers: Headers }> {
  const headers = new Headers(init.headers);
  if (init.token !== null) headers.set('authorization', `Bearer ${init.token ?? TEST_TOKEN}`);
  if (init.body !== undefined) headers.set('content-type', 'application/json');
  const res = await fetch(`${t.url}${path}`, { ...init, headers });
  return { status: res.status, headers: res.headers, body: await res.json() };
}

describe('the users API over HTTP with the typed client', () => {
  it('does the whole round trip', async () => {
    const api = client();
    const ada = await api.users.create.mutate({ name: 'Ada', email: 'Ada@Example.com' });
    expect(ada.email).toBe('ada@example.com');
    expect(typeof ada.createdAt).toBe('string');
    expect(await api.users.byId.query({ id: ada.id })).toEqual(ada);
    expect(await api.users.list.query({ limit: 5 })).toEqual({ items: [ada], total: 1 });
    expect((await api.users.update.mutate({ id: ada.id, email: 'lovelace@example.com' })).email).toBe('lovelace@example.com');
    await api.users.delete.mutate({ id: ada.id });
    expect((await api.users.list.query()).total).toBe(0);
  });

  it('gives typed errors with field details to the client', async () => {
    const error: unknown = await client().users.create.mutate({ name: '', email: 'nope' }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(TRPCClientError);
    const e = error as TRPCClientError<AppRouter>;
    expect(e.data?.code).toBe('BAD_REQUEST');
    expect(e.data?.httpStatus).toBe(400);
    expect(e.data?.fieldErrors).toEqual({ name: ['name must not be empty'], email: ['email must be a valid address, like ada@example.com'] });
    expect(e.message).toBe('Invalid input: name: name must not be empty; email: email must be a valid address, like ada@example.com');
  });

  it('maps a duplicate email to 409 CONFLICT', async () => {
    await client().users.create.mutate(newUser('Ada'));
    const res = await raw('/trpc/users.create', { method: 'POST', body: JSON.stringify({ name: 'B', email: 'ADA@EXAMPLE.COM' }) });
    expect(res.status).toBe(409);
    expect((res.body as ErrorBody).error.data.code).toBe('CONFLICT');
  });
});

describe('bad input over HTTP: right status, readable message, nothing changed', () => {
  const big = JSON.stringify({ name: 'x', email: `${'a'.repeat(40_000)}@example.com` });
  const q = (input: unknown) => `?input=${encodeURIComponent(JSON.stringify(input))}`;
  const cases: [string, string, RequestInit & { token?: string | null }, number, string, RegExp][] = [
    ['id not an integer', `/trpc/users.byId${q({ id: 'one' })}`, {}, 400, 'BAD_REQUEST', /id must be a number/],
    ['id zero', `/trpc/users.byId${q({ id: 0 })}`, {}, 400, 'BAD_REQUEST', /id must be 1 or more/],
    ['id negative', `/trpc/users.byId${q({ id: -1 })}`, {}, 400, 'BAD_REQUEST', /id must be 1 or more/],
    ['id fractional', `/trpc/users.byId${q({ id: 2.5 })}`, {}, 400, 'BAD_REQUEST', /whole number/],
    ['id beyond int4', `/trpc/users.byId${q({ id: 2 ** 31 })}`, {}, 400, 'BAD_REQUEST', /at most 2147483647/],
    ['id unknown', `/trpc/users.byId${q({ id: 424242 })}`, {}, 404, 'NOT_FOUND', /No user with id 424242/],
    ['empty name', '/trpc/users.create', { method: 'POST', body: JSON.stringify({ name: '', email: 'a@b.co' }) }, 400, 'BAD_REQUEST', /name must not be empty/],
    ['blank name', '/trpc/users.create', { method: 'POST', body: JSON.stringify({ name: '   ', email: 'a@b.co' }) }, 400, 'BAD_REQUEST', /name must not be empty/],
    ['101-char name', '/trpc/users.create', { method: 'POST', body: JSON.stringify({ name: 'x'.repeat(101), email: 'a@b.co' }) }, 400, 'BAD_REQUEST', /at most 100 characters/],
    ['invalid email', '/trpc/users.create', { method: 'POST', body: JSON.stringify({ name: 'A', email: 'a@' }) }, 400, 'BAD_REQUEST', /valid address/],
    ['missing field', '/trpc/users.create', { method: 'POST', body: JSON.stringify({ name: 'A' }) }, 400, 'BAD_REQUEST', /email/],
    ['limit 0', `/trpc/users.list${q({ limit: 0 })}`, {}, 400, 'BAD_REQUEST', /between 1 and 100/],
    ['limit 101', `/trpc/users.list${q({ limit: 101 })}`, {}, 400, 'BAD_REQUEST', /between 1 and 100/],
    ['negative offset', `/trpc/users.list${q({ offset: -1 })}`, {}, 400, 'BAD_REQUEST', /offset must be 0 or more/],
    ['malformed JSON', '/trpc/users.create', { method: 'POST', body: '{"name": "A",' }, 400, 'BAD_REQUEST', /not valid JSON/],
    ['unknown procedure', '/trpc/users.explode', {}, 404, 'NOT_FOUND', /No procedure found/],
    ['body over the limit', '/trpc/users.create', { method: 'POST', body: big }, 413, 'PAYLOAD_TOO_LARGE', /larger than the server accepts/],
    ['missing token', '/trpc/users.create', { method: 'POST', body: JSON.stringify({ name: 'A', email: 'a@b.co' }), token: null }, 401, 'UNAUTHORIZED', /API token/],
    ['wrong token', '/trpc/users.create', { method: 'POST', body: JSON.stringify({ name: 'A', email: 'a@b.co' }), token: 'wrong' }, 401, 'UNAUTHORIZED', /API token/],
  ];

  it.each(cases)('%s', async (_name, path, init, status, code, message) => {
    await client().users.create.mutate(newUser('Keep'));
    const before = await snapshot();
    const res = await raw(path, init);
    const body = res.body as ErrorBody;
    expect(res.status).toBe(status);
    expect(body.error.data.code).toBe(code);
    expect(body.error.message).toMatch(message);
    expect(JSON.stringify(body)).not.toMatch(/\bat .*\.(ts|js):\d+/); // no stack trace
    expect(body.error.data.stack).toBeUndefined();
    expect(await snapshot()).toEqual(before);
  });
});

describe('plain HTTP endpoints', () => {
  it('answers /healthz and /readyz without a token', async () => {
    expect(await raw('/healthz', { token: null })).toMatchObject({ status: 200, body: { status: 'ok' } });
    expect(await raw('/readyz', { token: null })).toMatchObject({ status: 200, body: { status: 'ready' } });
  });

  it('echoes a client request id, and makes one otherwise', async () => {
    const given = await raw('/trpc/users.list', { headers: { 'x-request-id': 'call-42' } });
    expect(given.headers.get('x-request-id')).toBe('call-42');
    const made = await raw('/trpc/users.list');
    const again = await raw('/trpc/users.list');
    const ids = [made.headers.get('x-request-id'), again.headers.get('x-request-id')];
    for (const id of ids) expect(isCallId(id)).toBe(true);
    expect(ids[0]).toMatch(/^r-/);
    expect(ids[1]).not.toBe(ids[0]);
  });
});
