/** Issue 7 §7: inputs that reached a 500 or a silent stream get a typed, JSON error and change nothing. */
import { request } from 'node:http';
import { apiErrorCode, createApiClient, isApiError } from '@asyncscope/client';
import { EventSource } from 'eventsource';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { startTestServer, TEST_TOKEN, type TestServer } from './test-server';

let t: TestServer;
beforeAll(async () => { t = await startTestServer(); });
afterAll(async () => { await t.close(); });
beforeEach(async () => {
  await t.database.sql`truncate users, lab_writes, idempotency_keys restart identity`;
  await t.database.sql`insert into users (name, email) values ('Keep', 'keep@example.com')`;
});

const bearer = { authorization: `Bearer ${TEST_TOKEN}` };
const snapshot = async () => ({
  users: await t.database.sql`select id, name, email from users order by id`,
  writes: await t.database.sql`select * from lab_writes order by 1`,
});
interface ErrorBody { error: { message: string; data: { code: string; httpStatus: number; fieldErrors: Record<string, string[]> | null } } }

/** fetch() refuses TRACE: a raw request. */
function raw(method: string, path: string): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; text: string }> {
  return new Promise((resolve, reject) => {
    const req = request(`${t.url}${path}`, { method, headers: bearer, agent: false }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => { text += chunk; });
      res.on('end', () => { resolve({ status: res.statusCode ?? 0, headers: res.headers, text }); });
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

async function post(path: string, body: unknown): Promise<{ status: number; body: ErrorBody }> {
  const res = await fetch(`${t.url}/trpc/${path}`, { method: 'POST', headers: { ...bearer, 'content-type': 'application/json' }, body: JSON.stringify(body) });
  return { status: res.status, body: (await res.json()) as ErrorBody };
}

describe('text Postgres cannot store', () => {
  const nul = 'a\u0000b';
  const lone = 'x\uD800y';
  it.each([
    ['users.create', { name: nul, email: 'nul@example.com' }, 'name'],
    ['users.create', { name: 'Nul', email: `a${nul}@example.com` }, 'email'],
    ['users.create', { name: lone, email: 'lone@example.com' }, 'name'],
    ['users.update', { id: 1, name: nul }, 'name'],
    ['lab.slowWrite', { label: nul, ms: 0 }, 'label'],
    ['lab.slowWrite', { label: lone, ms: 0 }, 'label'],
  ] as const)('%s %j: 400 on its field, nothing written', async (path, input, field) => {
    const before = await snapshot();
    const res = await post(path, input);
    expect(res.status).toBe(400);
    expect(res.body.error.data.code).toBe('BAD_REQUEST');
    expect(res.body.error.data.fieldErrors?.[field]).toEqual([`${field} must not contain NUL characters or unpaired surrogates`]);
    expect(await snapshot()).toEqual(before);
  });
});

describe('methods and content types tRPC does not serve', () => {
  it.each(['TRACE', 'PUT', 'DELETE', 'PATCH', 'OPTIONS'])('%s under /trpc: 405 with Allow, a JSON tRPC error', async (method) => {
    const res = await raw(method, '/trpc/users.list');
    expect(res.status).toBe(405);
    expect(res.headers.allow).toBe('GET, POST');
    expect(res.headers['content-type']).toBe('application/json');
    expect((JSON.parse(res.text) as ErrorBody).error.data.code).toBe('METHOD_NOT_SUPPORTED');
  });

  it('TRACE elsewhere: 405 with Allow', async () => {
    const res = await raw('TRACE', '/healthz');
    expect(res.status).toBe(405);
    expect(res.headers.allow).toBe('GET, HEAD');
  });

  it.each([
    ['415: a POST that is not JSON', '/trpc/users.create', { method: 'POST', headers: { ...bearer, 'content-type': 'text/plain' }, body: '{}' }, 415],
    ['415: a POST without a content-type', '/trpc/users.create', { method: 'POST', headers: bearer, body: '{}' }, 415],
    ['jsonl asked for without a batch', `/trpc/users.byId?input=${encodeURIComponent('{"id":1}')}`, { headers: { ...bearer, 'trpc-accept': 'application/jsonl' } }, 400],
    ['a batch of a mutation by GET', `/trpc/users.create,users.create?batch=1&input=${encodeURIComponent('{"0":{},"1":{}}')}`, { headers: bearer }, 405],
    ['a batch with malformed input', '/trpc/users.list,users.list?batch=1&input=%7B', { headers: bearer }, 400],
    ['a batch naming an unknown procedure', `/trpc/users.nope,users.nope?batch=1&input=${encodeURIComponent('{"0":{},"1":{}}')}`, { headers: bearer }, 404],
  ] as const)('%s: the error is JSON', async (_name, path, init, status) => {
    const res = await fetch(`${t.url}${path}`, init);
    expect(res.status).toBe(status);
    expect(res.headers.get('content-type')).toMatch(/^application\/json/);
    const text = await res.text();
    expect(() => JSON.parse(text) as unknown, text).not.toThrow();
  });
});

describe('resume ids', () => {
  /** The first thing a subscription delivers: data, or its error's code. */
  function firstOutcome(open: (handlers: { onData: () => void; onError: (error: unknown) => void }) => { unsubscribe: () => void }): Promise<string> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => { sub.unsubscribe(); resolve('nothing within 8 s'); }, 8000);
      const sub = open({
        onData: () => { clearTimeout(timer); sub.unsubscribe(); resolve('data'); },
        onError: (error) => { clearTimeout(timer); sub.unsubscribe(); resolve(isApiError(error) ? String(apiErrorCode(error)) : String(error)); },
      });
    });
  }
  const api = () => createApiClient({ url: `${t.url}/trpc`, token: TEST_TOKEN, EventSource });

  it('users.stream refuses a lastEventId beyond a user id (2147483648) with BAD_REQUEST', async () => {
    expect(await firstOutcome((h) => api().users.stream.subscribe({ lastEventId: '2147483648' }, h))).toBe('BAD_REQUEST');
    expect(await firstOutcome((h) => api().users.stream.subscribe({ lastEventId: '0' }, h))).toBe('data');
  });

  it('activity.events refuses a 23-digit sequence, and one this boot has not reached, with BAD_REQUEST', async () => {
    const bootId = t.server.runtime.activity.bootId;
    expect(await firstOutcome((h) => api().activity.events.subscribe({ lastEventId: `${bootId}:12345678901234567890123` }, h))).toBe('BAD_REQUEST');
    expect(await firstOutcome((h) => api().activity.events.subscribe({ lastEventId: '12345678901234567890123' }, h))).toBe('BAD_REQUEST');
    expect(await firstOutcome((h) => api().activity.events.subscribe({ lastEventId: `${bootId}:999999999999` }, h))).toBe('BAD_REQUEST');
    // A bare number ahead of this boot may be from before a restart (the dashboard resumes so): this boot's events.
    expect(await firstOutcome((h) => api().activity.events.subscribe({ lastEventId: '999999999999', replay: true }, h))).toBe('data');
  });
});
