/**
 * Messages a person reads when a request is wrong: said once, with balanced quotes, naming the fix.
 * Both tRPC paths (our fast path and tRPC's adapter alone) answer the same.
 */
import { request } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestServer, TEST_TOKEN, type TestServer } from './test-server';

let t: TestServer;
beforeAll(async () => { t = await startTestServer(); });
afterAll(async () => { await t.close(); });

interface ErrorBody { error: { message: string; data: { code: string; httpStatus: number } } }

/** A POST exactly as given: node:http adds no content-type of its own (fetch would). */
async function post(path: string, body: string, headers: Record<string, string>): Promise<{ status: number; contentType: string | undefined; body: ErrorBody }> {
  return new Promise((resolve, reject) => {
    const req = request(`${t.url}${path}`, { method: 'POST', headers: { authorization: `Bearer ${TEST_TOKEN}`, 'content-length': String(Buffer.byteLength(body)), ...headers } }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (text += chunk));
      res.on('end', () => {
        try {
          resolve({ status: res.statusCode ?? 0, contentType: res.headers['content-type'], body: JSON.parse(text) as ErrorBody });
        } catch (error) {
          reject(error instanceof Error ? error : new Error(String(error)));
        }
      });
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(body);
  });
}

const balancedQuotes = (text: string) => (text.match(/"/g) ?? []).length % 2 === 0;

describe('error messages', () => {
  it('a missing input says "Invalid input" once', async () => {
    const res = await fetch(`${t.url}/trpc/users.byId`, { headers: { authorization: `Bearer ${TEST_TOKEN}` } });
    expect(res.status).toBe(400);
    const { error } = (await res.json()) as ErrorBody;
    expect(error.message).toBe('Invalid input: expected object, received undefined');
  });

  it('a field error keeps its prefix and field name', async () => {
    const res = await fetch(`${t.url}/trpc/users.byId?input=${encodeURIComponent('{"id":0}')}`, { headers: { authorization: `Bearer ${TEST_TOKEN}` } });
    expect(((await res.json()) as ErrorBody).error.message).toBe('Invalid input: id: id must be 1 or more');
  });

  it.each([
    ['curl -d (form encoded)', { 'content-type': 'application/x-www-form-urlencoded' }, 'application/x-www-form-urlencoded'],
    ['text/plain', { 'content-type': 'text/plain;charset=UTF-8' }, 'text/plain;charset=UTF-8'],
    ['no content-type at all', {}, undefined],
  ] as const)('a POST with %s gets 415 in JSON, saying what to send', async (_name, headers, sent) => {
    const res = await post('/trpc/users.create', '{"name":"Ada","email":"ada@example.com"}', headers);
    expect(res.status).toBe(415);
    expect(res.contentType).toBe('application/json');
    expect(res.body.error.data.code).toBe('UNSUPPORTED_MEDIA_TYPE');
    expect(balancedQuotes(res.body.error.message)).toBe(true);
    expect(res.body.error.message).toContain('Content-Type: application/json');
    if (sent) expect(res.body.error.message).toContain(`"${sent}"`);
    // Nothing was created.
    expect(await t.database.sql`select 1 from users where email = 'ada@example.com'`).toHaveLength(0);
  });
});
