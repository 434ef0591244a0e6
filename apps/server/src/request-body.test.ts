/**
 * One client must not shut everyone else out (issue 7 §5): slow bodies, slow headers and oversized batches,
 * against the real server (HTTP + tRPC + Postgres). Small limits keep every test a few seconds long.
 */
import { connect, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestServer, TEST_TOKEN, type TestServer } from './test-server';

const BODY_TIMEOUT_MS = 1000;
const IN_FLIGHT = 4;

let t: TestServer;
let port: number;
beforeAll(async () => {
  t = await startTestServer({ maxInFlight: IN_FLIGHT, bodyTimeoutMs: BODY_TIMEOUT_MS, maxBatchSize: 5 });
  port = Number(new URL(t.url).port);
});
afterAll(async () => { await t.close(); });

interface RawAnswer { text: string; closedAfterMs: number }

/** A raw connection: what it received and when the server closed it (or the test's bound passed). */
function rawConnection(boundMs: number): { socket: Socket; answer: Promise<RawAnswer> } {
  const socket = connect({ host: '127.0.0.1', port });
  const started = performance.now();
  let text = '';
  const answer = new Promise<RawAnswer>((resolve) => {
    const bound = setTimeout(() => { socket.destroy(); }, boundMs);
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => { text += chunk; });
    socket.on('error', () => undefined);
    socket.on('close', () => {
      clearTimeout(bound);
      resolve({ text, closedAfterMs: performance.now() - started });
    });
  });
  return { socket, answer };
}

/** Writes one byte every `everyMs` until the socket closes (a slow client). */
function trickle(socket: Socket, everyMs: number): void {
  const timer = setInterval(() => {
    if (socket.destroyed || !socket.writable) clearInterval(timer);
    else socket.write('{');
  }, everyMs);
  socket.once('close', () => { clearInterval(timer); });
}

function statusAndBody(text: string): { status: number; body: unknown } {
  const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(text)?.[1] ?? 0);
  const json = text.slice(text.indexOf('\r\n\r\n') + 4);
  try {
    return { status, body: JSON.parse(json) as unknown };
  } catch {
    return { status, body: json };
  }
}

const authHeaders = `Authorization: Bearer ${TEST_TOKEN}\r\n`;

describe('slow request bodies', () => {
  it('never hold an admission slot: a normal client is served meanwhile, and the slow ones get a JSON 408', async () => {
    // Twice as many trickling connections as there are slots, each with a valid token and a call that would write.
    const slow = Array.from({ length: 2 * IN_FLIGHT }, () => {
      const conn = rawConnection(6000);
      conn.socket.write(`POST /trpc/lab.slowWrite HTTP/1.1\r\nHost: x\r\n${authHeaders}Content-Type: application/json\r\nContent-Length: 200\r\n\r\n`);
      trickle(conn.socket, 150);
      return conn;
    });
    try {
      await new Promise((resolve) => setTimeout(resolve, 300)); // let them arrive (and, before the fix, be admitted)
      for (let i = 0; i < 4; i++) {
        const started = performance.now();
        const res = await fetch(`${t.url}/trpc/users.list`, { headers: { authorization: `Bearer ${TEST_TOKEN}` }, signal: AbortSignal.timeout(2500) });
        expect(res.status).toBe(200);
        expect(performance.now() - started).toBeLessThan(1500);
      }
      for (const { answer } of slow) {
        const { text, closedAfterMs } = await answer;
        const { status, body } = statusAndBody(text);
        expect(status).toBe(408);
        expect(body).toMatchObject({ error: { data: { code: 'TIMEOUT', httpStatus: 408 }, message: expect.stringMatching(/did not arrive in time/) as unknown } });
        expect(text).toMatch(/content-type: application\/json/i);
        // Answered and closed near the deadline, not at Node's 300 s requestTimeout.
        expect(closedAfterMs).toBeGreaterThanOrEqual(BODY_TIMEOUT_MS - 50);
        expect(closedAfterMs).toBeLessThan(BODY_TIMEOUT_MS + 3000);
      }
      expect(t.server.runtime.admission.inFlight).toBe(0);
      expect(await t.database.sql`select 1 from lab_writes`).toHaveLength(0);
    } finally {
      for (const { socket } of slow) socket.destroy();
    }
  });

  it('a token in ?connectionParams= does not get around it', async () => {
    const params = encodeURIComponent(JSON.stringify({ token: TEST_TOKEN }));
    const { socket, answer } = rawConnection(6000);
    socket.write(`POST /trpc/lab.slowWrite?connectionParams=${params} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 200\r\n\r\n`);
    trickle(socket, 150);
    try {
      await new Promise((resolve) => setTimeout(resolve, 300));
      expect(t.server.runtime.admission.inFlight).toBe(0);
      const { text } = await answer;
      // URL credentials are refused before routing (the gate): no slot, no body read.
      expect(statusAndBody(text)).toMatchObject({ status: 401, body: { error: { data: { code: 'UNAUTHORIZED' } } } });
    } finally {
      socket.destroy();
    }
  });

  it('a body that arrives whole in time is served as before, on the fast path and on a batch', async () => {
    const body = JSON.stringify({ label: 'whole', ms: 0 });
    const single = await fetch(`${t.url}/trpc/lab.slowWrite`, { method: 'POST', headers: { authorization: `Bearer ${TEST_TOKEN}`, 'content-type': 'application/json' }, body, signal: AbortSignal.timeout(5000) });
    expect(single.status).toBe(200);
    const batch = await fetch(`${t.url}/trpc/lab.slowWrite,lab.slowWrite?batch=1`, {
      method: 'POST',
      headers: { authorization: `Bearer ${TEST_TOKEN}`, 'content-type': 'application/json' },
      body: JSON.stringify({ 0: { label: 'b0', ms: 0 }, 1: { label: 'b1', ms: 0 } }),
      signal: AbortSignal.timeout(5000),
    });
    expect(batch.status).toBe(200);
    expect(await batch.json()).toEqual([{ result: { data: { rows: 2 } } }, { result: { data: { rows: 2 } } }]);
  });
});

describe('slow request headers (slowloris)', () => {
  it('are cut off near the headers deadline, not after a minute', async () => {
    const { socket, answer } = rawConnection(6000);
    socket.write(`GET /trpc/users.list HTTP/1.1\r\nHost: x\r\n`);
    const timer = setInterval(() => { if (socket.writable) socket.write('X-Slow: 1\r\n'); }, 150);
    try {
      const { text, closedAfterMs } = await answer;
      expect(text).toMatch(/^HTTP\/1\.1 408/);
      expect(closedAfterMs).toBeLessThan(BODY_TIMEOUT_MS + 3000);
    } finally {
      clearInterval(timer);
      socket.destroy();
    }
  });
});

describe('batches', () => {
  const q = (n: number) => {
    const paths = Array.from({ length: n }, () => 'users.list').join(',');
    const input = Object.fromEntries(Array.from({ length: n }, (_, i) => [i, { limit: 1 }]));
    return `/trpc/${paths}?batch=1&input=${encodeURIComponent(JSON.stringify(input))}`;
  };

  it('up to MAX_BATCH_SIZE calls are served', async () => {
    const res = await fetch(`${t.url}${q(5)}`, { headers: { authorization: `Bearer ${TEST_TOKEN}` }, signal: AbortSignal.timeout(5000) });
    expect(res.status).toBe(200);
    expect(await res.json()).toHaveLength(5);
  });

  it('one call more gets a clear 400 BAD_REQUEST in JSON, and none of its calls runs', async () => {
    const before = t.server.runtime.activity.read(0, 100_000).events.length;
    const res = await fetch(`${t.url}${q(6)}`, { headers: { authorization: `Bearer ${TEST_TOKEN}` }, signal: AbortSignal.timeout(5000) });
    expect(res.status).toBe(400);
    expect(res.headers.get('content-type')).toBe('application/json');
    expect(await res.json()).toMatchObject({ error: { message: 'A batch may hold at most 5 calls; this one has 6. Send smaller batches (httpBatchLink\'s maxItems).', data: { code: 'BAD_REQUEST' } } });
    expect(t.server.runtime.activity.read(0, 100_000).events.length).toBe(before);
  });

  it('the same for a POSTed batch, refused before its body is read', async () => {
    const paths = Array.from({ length: 6 }, () => 'lab.slowWrite').join(',');
    const { socket, answer } = rawConnection(5000);
    // A body that never comes: the refusal must not wait for it.
    socket.write(`POST /trpc/${paths}?batch=1 HTTP/1.1\r\nHost: x\r\n${authHeaders}Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{`);
    const { text, closedAfterMs } = await answer;
    expect(statusAndBody(text)).toMatchObject({ status: 400, body: { error: { data: { code: 'BAD_REQUEST' } } } });
    expect(closedAfterMs).toBeLessThan(BODY_TIMEOUT_MS);
  });
});
