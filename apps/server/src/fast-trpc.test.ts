/**
 * The fast tRPC path against tRPC's own adapter: two HTTP servers (createHttpServer, same runtime, same
 * database), one with the fast path, one with `createHTTPHandler` alone. Every request of a corpus goes
 * to both, on the same database state, and must get the same status, headers that matter, body (volatile
 * fields masked) and onError / access-log lines; the same on one keep-alive connection, and on a bare
 * router with lazy routers. Plus cancellation through the fast path, and its fence: the pinned
 * @trpc/server version and FAST_PATH=off.
 */
import { once } from 'node:events';
import { Agent, createServer, request, type IncomingHttpHeaders, type RequestListener, type Server } from 'node:http';
import { createRequire } from 'node:module';
import type { AddressInfo, Server as NetServer } from 'node:net';
import { initTRPC, lazy } from '@trpc/server';
import { createHTTPHandler } from '@trpc/server/adapters/standalone';
import type { TRPCRequestInfo } from '@trpc/server/http';
import type { ActivityEvent } from '@asyncscope/api';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { callControllerOf, createFastTRPCHandler, TRPC_SERVER_VERIFIED } from './fast-trpc';
import { createHttpServer, type HttpServer } from './http';
import { startTestServer, TEST_TOKEN, type TestServer } from './test-server';
import { until } from '@asyncscope/concurrency/testing';

type LogLine = Record<string, unknown>;
interface Mounted { name: 'fast' | 'standard'; http: HttpServer; port: number; lines: LogLine[] }

let t: TestServer;
let fast: Mounted;
let standard: Mounted;

async function listen(server: NetServer): Promise<number> {
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return (server.address() as AddressInfo).port;
}

async function mount(name: Mounted['name']): Promise<Mounted> {
  const lines: LogLine[] = [];
  const log = pino({ level: 'debug' }, { write: (line: string) => { lines.push(JSON.parse(line) as LogLine); } });
  const http = createHttpServer({
    runtime: t.server.runtime,
    apiToken: TEST_TOKEN,
    maxBodyBytes: 16 * 1024,
    bodyTimeoutMs: 10_000,
    maxBatchSize: 50,
    log,
    isDatabaseReady: () => t.server.database.isReady(),
    checkDatabase: () => Promise.resolve(),
    trpcAdapter: name,
  });
  return { name, http, port: await listen(http.server), lines };
}

beforeAll(async () => {
  t = await startTestServer();
  [fast, standard] = await Promise.all([mount('fast'), mount('standard')]);
});
afterAll(async () => {
  for (const m of [fast, standard]) {
    m.http.endStreams();
    m.http.closeAllConnections();
    await new Promise((resolve) => m.http.server.close(resolve));
  }
  await t.close();
});

/** The same database state before every request, on either server: three users with ids 1..3, no faults. */
async function reset(): Promise<void> {
  await t.database.sql`truncate users, lab_writes restart identity`;
  await t.database.sql`insert into users (name, email) values ('Ada', 'ada@example.com'), ('Grace', 'grace@example.com'), ('Linus', 'linus@example.com')`;
  t.server.runtime.faults.clear();
}

interface Raw {
  method?: string;
  path: string;
  headers?: Record<string, string>;
  body?: string | Buffer;
  /** No authorization header unless given in headers. */
  anonymous?: boolean;
}
interface Answer { status: number; headers: IncomingHttpHeaders; text: string; reusedSocket: boolean }

const auth = { authorization: `Bearer ${TEST_TOKEN}` };

/** One request, on a connection of its own unless `agent` keeps them alive. */
function send(port: number, raw: Raw, until?: (text: string) => boolean, agent: Agent | false = false): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const headers = { ...(raw.anonymous ? {} : auth), ...raw.headers };
    const req = request({ host: '127.0.0.1', port, method: raw.method ?? 'GET', path: raw.path, headers, agent }, (res) => {
      let text = '';
      const answer = () => ({ status: res.statusCode ?? 0, headers: res.headers, text, reusedSocket: req.reusedSocket });
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        text += chunk;
        if (until?.(text)) {
          resolve(answer());
          req.destroy();
        }
      });
      res.on('end', () => { resolve(answer()); });
      res.on('error', reject);
    });
    req.on('error', (error) => { if (!until) reject(error); });
    req.end(raw.body);
  });
}

const q = (input: unknown) => `?input=${encodeURIComponent(JSON.stringify(input))}`;
const json = (body: unknown) => ({ method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });

const VOLATILE = new Set(['createdAt', 'updatedAt', 'sleptMs', 'ms']);
const ISO = /\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)/g;

/** Masks values that differ between two runs of the same call (timestamps, durations). */
function mask(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(mask);
  if (value && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, VOLATILE.has(k) ? `<${typeof v}>` : mask(v)]));
  }
  return value;
}

/** Only the shape: keys and types (for answers that are live gauges, like activity.stats). */
function shape(value: unknown): unknown {
  if (Array.isArray(value)) return 'array';
  if (value && typeof value === 'object') return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, shape(v)]));
  return typeof value;
}

function bodyOf(text: string, compare: 'exact' | 'shape'): unknown {
  try {
    const parsed = JSON.parse(text) as unknown;
    return compare === 'shape' ? shape(parsed) : mask(parsed);
  } catch {
    return text.replace(ISO, '<time>').replace(/"sleptMs":\d+/g, '"sleptMs":<n>');
  }
}

/** What the server logged for one request: onError's lines and the access line, minus timings. */
async function logged(m: Mounted, requestId: string): Promise<unknown[]> {
  const deadline = performance.now() + 2000;
  const mine = () => m.lines.filter((l) => l.requestId === requestId);
  while (!mine().some((l) => l.msg === 'request') && performance.now() < deadline) await new Promise((r) => setTimeout(r, 5));
  return mine().map(({ time: _time, pid: _pid, hostname: _hostname, ms: _ms, err, ...rest }) => {
    const e = err as { type?: string; message?: string } | undefined;
    return e ? { ...rest, err: { type: e.type, message: e.message } } : rest;
  });
}

interface Case {
  name: string;
  raw: Raw;
  /** Whether the fast path serves it (else it falls through to tRPC's adapter); 'ahead': refused before either (request-body.ts). */
  served: boolean | 'ahead';
  compare?: 'exact' | 'shape';
  /** Runs before the request, after the reset, on either server. */
  setup?: () => void;
  /** Stop reading when this says so (event streams). */
  until?: (text: string) => boolean;
}

const big = JSON.stringify({ name: 'x', email: `${'a'.repeat(40_000)}@example.com` });
const batchInput = encodeURIComponent(JSON.stringify({ 0: { id: 1 }, 1: { limit: 2 } }));
const firstTracked = (text: string) => /(^|\n)id: ?\d+/.test(text) && text.endsWith('\n\n');

const cases: Case[] = [
  // Success, every users.* and lab.* procedure
  { name: 'users.byId', raw: { path: `/trpc/users.byId${q({ id: 2 })}` }, served: true },
  { name: 'users.byId, raw JSON in the query', raw: { path: '/trpc/users.byId?input={"id":3}' }, served: true },
  { name: 'users.list, no input', raw: { path: '/trpc/users.list' }, served: true },
  { name: 'users.list, empty input', raw: { path: '/trpc/users.list?input=' }, served: true },
  { name: 'users.list, trailing ?', raw: { path: '/trpc/users.list?' }, served: true },
  { name: 'users.list, paged', raw: { path: `/trpc/users.list${q({ limit: 2, offset: 1 })}` }, served: true },
  { name: 'users.list, + as a space', raw: { path: '/trpc/users.list?input={"limit":+1}' }, served: true },
  { name: 'users.create', raw: { path: '/trpc/users.create', ...json({ name: 'Barbara', email: 'Barbara@Example.com' }) }, served: true },
  { name: 'users.create, idempotency key', raw: { path: '/trpc/users.create', ...json({ name: 'Barbara', email: 'b@example.com', idempotencyKey: 'key-12345' }) }, served: true },
  { name: 'users.create, charset in content-type', raw: { path: '/trpc/users.create', method: 'POST', headers: { 'content-type': 'Application/JSON; charset=utf-8' }, body: JSON.stringify({ name: 'Cé', email: 'ce@example.com' }) }, served: true },
  { name: 'users.create, body with a BOM', raw: { path: '/trpc/users.create', method: 'POST', headers: { 'content-type': 'application/json' }, body: Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from(JSON.stringify({ name: 'Bom', email: 'bom@example.com' }))]) }, served: true },
  { name: 'users.update', raw: { path: '/trpc/users.update', ...json({ id: 1, email: 'lovelace@example.com' }) }, served: true },
  { name: 'users.delete', raw: { path: '/trpc/users.delete', ...json({ id: 3 }) }, served: true },
  { name: 'lab.sleep', raw: { path: `/trpc/lab.sleep${q({ ms: 20 })}` }, served: true },
  { name: 'lab.slowWrite', raw: { path: '/trpc/lab.slowWrite', ...json({ label: 'w', ms: 0 }) }, served: true },
  { name: 'lab.cpu', raw: { path: `/trpc/lab.cpu${q({ rounds: 100 })}` }, served: true },
  { name: 'lab.setFaults', raw: { path: '/trpc/lab.setFaults', ...json({ procedure: 'users.list', fault: { latencyMs: 0, errorRate: 0.5 } }) }, served: true },
  { name: 'lab.faults', raw: { path: '/trpc/lab.faults' }, served: true, setup: () => { t.server.runtime.faults.set('users.byId', { latencyMs: 1, errorRate: 0 }); } },
  { name: 'lab.clearFaults with no body (input never read)', raw: { path: '/trpc/lab.clearFaults', method: 'POST', headers: { 'content-type': 'application/json' } }, served: true },
  { name: 'activity.stats', raw: { path: '/trpc/activity.stats' }, served: true, compare: 'shape' },
  { name: 'content-type on a GET', raw: { path: `/trpc/users.byId${q({ id: 1 })}`, headers: { 'content-type': 'text/plain' } }, served: true },

  // Bad input (http.test.ts) and other refusals
  { name: 'id not an integer', raw: { path: `/trpc/users.byId${q({ id: 'one' })}` }, served: true },
  { name: 'id zero', raw: { path: `/trpc/users.byId${q({ id: 0 })}` }, served: true },
  { name: 'id negative', raw: { path: `/trpc/users.byId${q({ id: -1 })}` }, served: true },
  { name: 'id fractional', raw: { path: `/trpc/users.byId${q({ id: 2.5 })}` }, served: true },
  { name: 'id beyond int4', raw: { path: `/trpc/users.byId${q({ id: 2 ** 31 })}` }, served: true },
  { name: 'id unknown', raw: { path: `/trpc/users.byId${q({ id: 424242 })}` }, served: true },
  { name: 'empty name', raw: { path: '/trpc/users.create', ...json({ name: '', email: 'a@b.co' }) }, served: true },
  { name: 'blank name', raw: { path: '/trpc/users.create', ...json({ name: '   ', email: 'a@b.co' }) }, served: true },
  { name: '101-char name', raw: { path: '/trpc/users.create', ...json({ name: 'x'.repeat(101), email: 'a@b.co' }) }, served: true },
  { name: 'invalid email', raw: { path: '/trpc/users.create', ...json({ name: 'A', email: 'a@' }) }, served: true },
  { name: 'missing field', raw: { path: '/trpc/users.create', ...json({ name: 'A' }) }, served: true },
  { name: 'unknown field', raw: { path: '/trpc/users.create', ...json({ name: 'A', email: 'a@b.co', admin: true }) }, served: true },
  { name: 'null body', raw: { path: '/trpc/users.create', method: 'POST', headers: { 'content-type': 'application/json' }, body: 'null' }, served: true },
  { name: 'limit 0', raw: { path: `/trpc/users.list${q({ limit: 0 })}` }, served: true },
  { name: 'limit 101', raw: { path: `/trpc/users.list${q({ limit: 101 })}` }, served: true },
  { name: 'negative offset', raw: { path: `/trpc/users.list${q({ offset: -1 })}` }, served: true },
  { name: 'update with nothing to change', raw: { path: '/trpc/users.update', ...json({ id: 1 }) }, served: true },
  { name: 'duplicate email: 409', raw: { path: '/trpc/users.create', ...json({ name: 'B', email: 'ADA@EXAMPLE.COM' }) }, served: true },
  { name: 'malformed JSON body', raw: { path: '/trpc/users.create', method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"name": "A",' }, served: true },
  { name: 'empty body where input is needed', raw: { path: '/trpc/users.create', method: 'POST', headers: { 'content-type': 'application/json' } }, served: true },
  { name: 'malformed JSON in the query', raw: { path: '/trpc/users.byId?input=%7B%22id%22%3A' }, served: true },
  { name: 'unknown procedure (GET)', raw: { path: '/trpc/users.explode' }, served: true },
  { name: 'unknown procedure (POST)', raw: { path: '/trpc/users.explode', ...json({}) }, served: true },
  // Without a valid token, http.ts's gate answers before either handler runs (issue 7 §6): served: false.
  { name: 'unknown procedure, no token: 401 (the gate, before routing)', raw: { path: '/trpc/nope', anonymous: true }, served: false },
  { name: 'body over the limit: 413', raw: { path: '/trpc/users.create', method: 'POST', headers: { 'content-type': 'application/json' }, body: big }, served: 'ahead' },
  { name: 'body over the limit, no token: 401 first', raw: { path: '/trpc/users.create', method: 'POST', headers: { 'content-type': 'application/json' }, body: big, anonymous: true }, served: false },
  { name: 'malformed JSON, no token: 401 first', raw: { path: '/trpc/users.create', method: 'POST', headers: { 'content-type': 'application/json' }, body: '{', anonymous: true }, served: false },
  { name: 'missing token (POST)', raw: { path: '/trpc/users.create', ...json({ name: 'A', email: 'a@b.co' }), anonymous: true }, served: false },
  { name: 'missing token (GET)', raw: { path: `/trpc/users.byId${q({ id: 1 })}`, anonymous: true }, served: false },
  { name: 'wrong token', raw: { path: '/trpc/users.create', ...json({ name: 'A', email: 'a@b.co' }), headers: { 'content-type': 'application/json', authorization: 'Bearer wrong' } }, served: false },
  { name: 'mutation by GET: 405', raw: { path: `/trpc/users.create${q({ name: 'A', email: 'a@b.co' })}` }, served: true },
  { name: 'query by POST: 405', raw: { path: '/trpc/users.byId', ...json({ id: 1 }) }, served: true },
  { name: 'deadline header: TIMEOUT', raw: { path: `/trpc/lab.sleep${q({ ms: 2000 })}`, headers: { 'x-deadline-ms': '100' } }, served: true },
  { name: 'injected fault: 503', raw: { path: '/trpc/users.list' }, served: true, setup: () => { t.server.runtime.faults.set('users.list', { latencyMs: 0, errorRate: 1 }); } },

  // Falls through to tRPC's adapter
  { name: 'unsupported content-type: 415', raw: { path: '/trpc/users.create', method: 'POST', headers: { 'content-type': 'text/plain' }, body: '{}' }, served: false },
  { name: 'no content-type on a POST: 415', raw: { path: '/trpc/users.create', method: 'POST', body: '{}' }, served: false },
  { name: 'multipart on a GET', raw: { path: '/trpc/users.list', headers: { 'content-type': 'multipart/form-data; boundary=x' } }, served: false },
  { name: 'batch GET', raw: { path: `/trpc/users.byId,users.list?batch=1&input=${batchInput}` }, served: false },
  { name: 'batch POST', raw: { path: '/trpc/users.create,users.delete?batch=1', ...json({ 0: { name: 'Z', email: 'z@example.com' }, 1: { id: 2 } }) }, served: false },
  { name: 'batch streamed (jsonl)', raw: { path: `/trpc/users.byId?batch=1&input=${encodeURIComponent(JSON.stringify({ 0: { id: 1 } }))}`, headers: { 'trpc-accept': 'application/jsonl' } }, served: false },
  { name: 'jsonl without a batch: 400', raw: { path: `/trpc/users.byId${q({ id: 1 })}`, headers: { 'trpc-accept': 'application/jsonl' } }, served: false },
  { name: 'batch=0 (not a batch)', raw: { path: `/trpc/users.byId${q({ id: 1 })}&batch=0` }, served: false },
  { name: 'connectionParams token', raw: { path: `/trpc/users.list?connectionParams=${encodeURIComponent(JSON.stringify({ token: TEST_TOKEN }))}`, anonymous: true }, served: false },
  { name: 'repeated input', raw: { path: '/trpc/users.byId?input={"id":1}&input={"id":2}' }, served: false },
  { name: 'malformed escape in the query', raw: { path: '/trpc/users.byId?input=%7B%22id%22:1%ZZ' }, served: false },
  { name: 'percent-encoded path', raw: { path: `/trpc/users%2EbyId${q({ id: 1 })}` }, served: false },
  { name: 'trailing slash', raw: { path: `/trpc/users.byId/${q({ id: 1 })}` }, served: false },
  { name: 'host that is no URL host', raw: { path: '/trpc/users.list', headers: { host: 'bad host' } }, served: false },
  { name: 'query with an event-stream accept', raw: { path: `/trpc/users.byId${q({ id: 1 })}`, headers: { accept: 'text/event-stream' } }, served: false },
  { name: 'subscription over SSE', raw: { path: `/trpc/users.stream${q({ pageSize: 2 })}`, headers: { accept: 'text/event-stream' } }, served: false, until: firstTracked },
  { name: 'subscription without an accept header', raw: { path: `/trpc/users.stream${q({ pageSize: 2 })}` }, served: false, until: firstTracked },
  { name: 'subscription, bad input', raw: { path: `/trpc/users.stream${q({ pageSize: 0 })}` }, served: false, until: (text) => text.includes('serialized-error') && text.endsWith('\n\n') },
  { name: 'OPTIONS', raw: { path: '/trpc/users.list', method: 'OPTIONS' }, served: false },
  { name: 'HEAD', raw: { path: '/trpc/users.list', method: 'HEAD' }, served: false },
  { name: 'PUT', raw: { path: '/trpc/users.create', method: 'PUT', headers: { 'content-type': 'application/json' }, body: '{}' }, served: false },
];

describe('the fast path answers exactly as tRPC’s adapter', () => {
  it.each(cases.map((c, i) => [c.name, c, i] as const))('%s', async (_name, c, i) => {
    const requestId = `diff-${i}`;
    const results: { answer: Answer; log: unknown[] }[] = [];
    for (const m of [fast, standard]) {
      await reset();
      c.setup?.();
      const answer = await send(m.port, { ...c.raw, headers: { 'x-request-id': requestId, ...c.raw.headers } }, c.until);
      results.push({ answer, log: c.until ? [] : await logged(m, requestId) });
    }
    const [f, s] = results as [(typeof results)[0], (typeof results)[0]];
    const view = ({ answer }: (typeof results)[0]) => ({
      status: answer.status,
      contentType: answer.headers['content-type'],
      vary: answer.headers.vary,
      requestId: answer.headers['x-request-id'],
      body: bodyOf(answer.text, c.compare ?? 'exact'),
    });
    expect(view(f)).toEqual(view(s));
    expect(f.log).toEqual(s.log);
    expect(f.answer.headers['x-request-id']).toBe(requestId);
    if (c.served === 'ahead') {
      // Answered before either path saw it (body read first, request-body.ts): the same bytes from both.
      expect(f.answer.headers['content-length']).toBe(s.answer.headers['content-length']);
      expect(f.answer.headers['transfer-encoding']).toBeUndefined();
    } else if (c.served) {
      // Served by the fast path: a content-length, no chunks; tRPC's adapter streams its answer.
      expect(f.answer.headers['transfer-encoding']).toBeUndefined();
      expect(Number(f.answer.headers['content-length'])).toBe(Buffer.byteLength(f.answer.text));
      expect(s.answer.headers['transfer-encoding']).toBe('chunked');
    } else {
      expect(f.answer.headers['transfer-encoding']).toBe(s.answer.headers['transfer-encoding']);
      expect(f.answer.headers['content-length']).toBe(s.answer.headers['content-length']);
    }
  });

  it('makes a request id when none is given, on both', async () => {
    await reset();
    for (const m of [fast, standard]) {
      const answer = await send(m.port, { path: `/trpc/users.byId${q({ id: 1 })}` });
      expect(answer.status).toBe(200);
      expect(answer.headers['x-request-id']).toMatch(/^r-[0-9a-z]+-[0-9a-z]+$/);
    }
  });

  it('answers a burst of concurrent calls identically', async () => {
    await reset();
    const paths = Array.from({ length: 60 }, (_, i) => `/trpc/users.byId${q({ id: (i % 5) + 1 })}`);
    const answers = await Promise.all([fast, standard].map((m) => Promise.all(paths.map((path) => send(m.port, { path })))));
    const [a, b] = answers.map((list) => list.map((r) => ({ status: r.status, body: bodyOf(r.text, 'exact') })));
    expect(a).toEqual(b);
    expect(a?.filter((r) => r.status === 200)).toHaveLength(36);
  });

  it('answers a run of requests on one keep-alive connection identically, reusing it as tRPC’s adapter does', async () => {
    // Successes, refusals that never read the body (405, 404), a fallback (batch), then a refusal that
    // closes the connection (413: the body is left unread) and a call on the next one.
    const run = ['users.byId', 'users.create', 'malformed JSON body', 'unknown procedure (POST)', 'query by POST: 405', 'mutation by GET: 405', 'batch GET', 'users.list, paged', 'body over the limit: 413', 'users.delete'];
    const views: unknown[][] = [];
    for (const m of [fast, standard]) {
      const agent = new Agent({ keepAlive: true, maxSockets: 1 });
      const seen: unknown[] = [];
      try {
        for (const name of run) {
          const c = cases.find((k) => k.name === name);
          if (!c) throw new Error(`no case ${name}`);
          await reset();
          const answer = await send(m.port, c.raw, undefined, agent);
          seen.push({ name, reused: answer.reusedSocket, connection: answer.headers.connection, status: answer.status, body: bodyOf(answer.text, 'exact') });
        }
      } finally {
        agent.destroy();
      }
      views.push(seen);
    }
    expect(views[0]).toEqual(views[1]);
    // One connection for the first nine, a new one after the 413 closed it.
    expect(views[0]?.map((v) => (v as { reused: boolean }).reused)).toEqual([false, true, true, true, true, true, true, true, true, false]);
  });
});

const events = (callId: string): ActivityEvent[] => t.server.runtime.activity.read(0, 100_000).events.filter((e) => e.callId === callId);
const hop = <K extends ActivityEvent['type']>(callId: string, type: K) => events(callId).find((e) => e.type === type) as Extract<ActivityEvent, { type: K }> | undefined;

/** Opens a call and returns the socket's request, to abort it. */
function open(port: number, raw: Raw, callId: string, partialBody?: string) {
  const req = request({ host: '127.0.0.1', port, method: raw.method ?? 'GET', path: raw.path, headers: { ...auth, 'x-request-id': callId, ...raw.headers }, agent: false });
  req.on('error', () => undefined);
  if (partialBody === undefined) req.end(raw.body);
  else req.write(partialBody);
  return req;
}

describe('cancellation through the fast path', () => {
  it('a client abort fires the procedure signal: statement cancelled (57014), call settled CLIENT_CLOSED_REQUEST, like tRPC’s adapter', async () => {
    await reset();
    const path = `/trpc/lab.sleep${q({ ms: 10_000 })}`;
    // Same shape of request, short: the fast path serves it (content-length, not chunked).
    const control = await send(fast.port, { path: `/trpc/lab.sleep${q({ ms: 0 })}` });
    expect(control.headers['content-length']).toBeDefined();

    const hops: string[][] = [];
    for (const m of [fast, standard]) {
      const callId = `abort-${m.name}`;
      const req = open(m.port, { path }, callId);
      await until('the statement runs', () => hop(callId, 'statement.started'));
      const abortedAt = performance.now();
      req.destroy();
      const fired = await until('the signal fires', () => hop(callId, 'signal.fired'));
      expect(fired.reason).toBe('client-closed');
      const ended = await until('the statement ends', () => hop(callId, 'statement.ended'));
      expect(ended.sqlstate).toBe('57014');
      expect((await until('settled', () => hop(callId, 'settled'))).code).toBe('CLIENT_CLOSED_REQUEST');
      expect(performance.now() - abortedAt).toBeLessThan(1000);
      const access = await until('the access line', () => m.lines.find((l) => l.requestId === callId && l.msg === 'request'));
      expect(access).toMatchObject({ status: 499, aborted: true });
      expect(m.lines.find((l) => l.requestId === callId && l.msg === 'procedure refused')).toMatchObject({ code: 'CLIENT_CLOSED_REQUEST' });
      // Each kind once, in order of first appearance: under load a CancelRequest is repeated (cancel.sent,
      // attempt 2) when the statement has not ended yet, on either path; what must match is the story.
      hops.push([...new Set(events(callId).map((e) => e.type))]);
    }
    expect(hops[0]).toEqual(hops[1]);
    expect(t.server.runtime.admission.inFlight).toBe(0);
  });

  it('a client that leaves in the middle of its request body: its call never opens, nothing is admitted', async () => {
    await reset();
    const callId = 'half-body';
    const body = JSON.stringify({ label: 'half', ms: 0 });
    const req = open(fast.port, { path: '/trpc/lab.slowWrite', method: 'POST', headers: { 'content-type': 'application/json', 'content-length': String(body.length + 100) } }, callId, body);
    // The body is read whole before the call reaches tRPC (request-body.ts): no call yet, no slot taken.
    await new Promise((r) => setTimeout(r, 200));
    expect(events(callId)).toEqual([]);
    expect(t.server.runtime.admission.inFlight).toBe(0);
    req.destroy();
    const access = await until('the access line', () => fast.lines.find((l) => l.requestId === callId && l.msg === 'request'));
    expect(access).toMatchObject({ status: 499, aborted: true });
    expect(events(callId)).toEqual([]);
    expect(await t.database.sql`select * from lab_writes where label = 'half'`).toHaveLength(0);
  });
});

describe('the fence around the fast path', () => {
  it('runs on the @trpc/server version it was checked against', () => {
    const { version } = createRequire(import.meta.url)('@trpc/server/package.json') as { version: string };
    expect(
      version,
      `@trpc/server is now ${version}; fast-trpc.ts restates parts of ${TRPC_SERVER_VERIFIED}. Re-run this differential ` +
        'corpus (npx vitest run src/fast-trpc.test.ts), walk the upgrade checklist at the top of fast-trpc.ts, ' +
        `then set TRPC_SERVER_VERIFIED to '${version}'.`,
    ).toBe(TRPC_SERVER_VERIFIED);
  });

  it('FAST_PATH=off (fastPath: false): every call answered by tRPC’s adapter, and they all work', async () => {
    const lines: LogLine[] = [];
    const log = pino({ level: 'info' }, { write: (line: string) => { lines.push(JSON.parse(line) as LogLine); } });
    const off = await startTestServer({ fastPath: false, log });
    try {
      const port = Number(new URL(off.url).port);
      expect(lines.some((l) => typeof l.msg === 'string' && l.msg.startsWith('FAST_PATH=off'))).toBe(true);
      const created = await send(port, { path: '/trpc/users.create', ...json({ name: 'Off', email: 'off@example.com' }) });
      const read = await send(port, { path: `/trpc/users.byId${q({ id: 1 })}` });
      const refused = await send(port, { path: `/trpc/users.byId${q({ id: 0 })}` });
      for (const answer of [created, read, refused]) {
        // tRPC's adapter streams its answer (chunked); the fast path writes a content-length (the corpus above).
        expect(answer.headers['transfer-encoding']).toBe('chunked');
        expect(answer.headers['content-length']).toBeUndefined();
      }
      expect(created.status).toBe(200);
      expect(JSON.parse(read.text)).toMatchObject({ result: { data: { id: 1, name: 'Off', email: 'off@example.com' } } });
      expect(refused.status).toBe(400);
      // The same call on the default server: the fast path's content-length.
      const onFast = await send(Number(new URL(t.url).port), { path: '/trpc/users.list' });
      expect(onFast.headers['content-length']).toBeDefined();
    } finally {
      await off.close();
    }
  });
});

describe('createFastTRPCHandler on its own', () => {
  const tr = initTRPC.create();
  const aborted: string[] = [];
  const router = tr.router({
    hello: tr.procedure.query(() => 'hi'),
    wait: tr.procedure.query(({ signal }) =>
      new Promise<string>((resolve) => {
        signal?.addEventListener('abort', () => {
          aborted.push('wait');
          resolve('aborted');
        }, { once: true });
      }),
    ),
  });
  const fellThrough: string[] = [];
  /** What callControllerOf gave each createContext: the controller of the call's signal, or none. */
  const controllers: string[] = [];
  let server: Server;
  let port: number;

  beforeAll(async () => {
    const createContext = ({ info }: { info: TRPCRequestInfo }) => {
      const controller = callControllerOf(info);
      controllers.push(controller === undefined ? 'none' : controller.signal === info.signal ? 'the signal’s' : 'another');
      return {};
    };
    const standardHandler = createHTTPHandler({ router, basePath: '/trpc/', createContext });
    const fallback: RequestListener = (req, res) => {
      fellThrough.push(`${req.method ?? ''} ${req.url ?? ''}`);
      standardHandler(req, res);
    };
    server = createServer(createFastTRPCHandler({ router, basePath: '/trpc/', createContext, fallback }));
    port = await listen(server);
  });
  afterAll(async () => {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  });

  it('serves single calls itself and hands batches to the fallback', async () => {
    const one = await send(port, { path: '/trpc/hello' });
    expect(one).toMatchObject({ status: 200, text: '{"result":{"data":"hi"}}' });
    expect(fellThrough).toEqual([]);
    const batch = await send(port, { path: '/trpc/hello?batch=1' });
    expect(batch.status).toBe(200);
    expect(JSON.parse(batch.text)).toEqual([{ result: { data: 'hi' } }]);
    expect(fellThrough).toEqual(['GET /trpc/hello?batch=1']);
    // A single call's context may take its request's controller as its own (callControllerOf); a batch's may not.
    expect(controllers).toEqual(['the signal’s', 'none']);
  });

  it('fires the procedure signal when the client goes away, without the fallback', async () => {
    fellThrough.length = 0;
    const req = request({ host: '127.0.0.1', port, path: '/trpc/wait', agent: false });
    req.on('error', () => undefined);
    req.end();
    await new Promise((r) => setTimeout(r, 50));
    expect(aborted).toEqual([]);
    req.destroy();
    await until('the signal fires', () => aborted.length > 0 || undefined);
    expect(aborted).toEqual(['wait']);
    expect(fellThrough).toEqual([]);
  });
});

describe('createFastTRPCHandler and tRPC’s adapter, side by side on a bare router', () => {
  interface Seen { code: string; message: string; path: string | undefined; type: string; input: unknown; ctx: unknown; cause: string | undefined }
  const tr = initTRPC.context<{ user: string }>().create({ isDev: false });
  const parseId = (raw: unknown) => {
    if (typeof raw !== 'object' || raw === null || typeof (raw as { id?: unknown }).id !== 'number') throw new Error('id must be a number');
    return raw as { id: number };
  };
  const router = tr.router({
    get: tr.procedure.input(parseId).query(({ input, ctx }) => ({ id: input.id, user: ctx.user })),
    save: tr.procedure.input(parseId).mutation(({ input }) => ({ saved: input.id })),
    crash: tr.procedure.query(() => { throw new TypeError('boom'); }),
    streamy: tr.procedure.query(() => ({ later: Promise.resolve(1) })),
    bigint: tr.procedure.query(() => ({ n: 1n })),
    nested: { deep: tr.procedure.query(() => 'deep') },
  });
  const servers: { port: number; seen: Seen[]; infos: unknown[]; fell: number; server: Server }[] = [];

  beforeAll(async () => {
    for (const kind of ['fast', 'standard'] as const) {
      const entry = { port: 0, seen: [] as Seen[], infos: [] as unknown[], fell: 0, server: createServer() };
      const options = {
        router,
        basePath: '/trpc/',
        maxBodySize: 64,
        createContext: ({ req, info }: { req: { headers: Record<string, unknown> }; info: { type: string; isBatchCall: boolean; connectionParams: unknown; accept: unknown; calls: { path: string }[]; url: URL | null } }) => {
          // The servers' ports differ; everything else of the URL must not.
          const url = info.url?.href.replace(`:${entry.port}/`, ':<port>/');
          entry.infos.push({ type: info.type, isBatchCall: info.isBatchCall, connectionParams: info.connectionParams, accept: info.accept, paths: info.calls.map((c) => c.path), url });
          if (req.headers['x-fail'] === 'ctx') throw new Error('no context today');
          // The fast path awaits only a context that is a promise: both kinds must answer as tRPC does.
          if (req.headers['x-async'] === 'ctx') return Promise.resolve({ user: 'later' });
          if (req.headers['x-async'] === 'fail') return Promise.reject(new Error('no context later'));
          return { user: 'u' };
        },
        onError: ({ error, path, type, input, ctx }: { error: { code: string; message: string; cause?: unknown }; path: string | undefined; type: string; input: unknown; ctx: unknown }) => {
          entry.seen.push({ code: error.code, message: error.message, path, type, input, ctx, cause: error.cause instanceof Error ? error.cause.name : undefined });
        },
      };
      const standardHandler = createHTTPHandler(options);
      const handler = kind === 'fast'
        ? createFastTRPCHandler({ ...options, fallback: (req, res) => { entry.fell++; standardHandler(req, res); } })
        : standardHandler;
      entry.server.on('request', handler);
      entry.port = await listen(entry.server);
      servers.push(entry);
    }
  });
  afterAll(async () => {
    for (const { server } of servers) await new Promise((resolve) => server.close(resolve));
  });

  const cases: [string, Raw][] = [
    ['query', { path: `/trpc/get${q({ id: 7 })}` }],
    ['nested path', { path: '/trpc/nested.deep' }],
    ['bad input (parser throws)', { path: `/trpc/get${q({ id: 'x' })}` }],
    ['no input', { path: '/trpc/get' }],
    ['malformed JSON', { path: '/trpc/get?input={' }],
    ['mutation', { path: '/trpc/save', ...json({ id: 3 }) }],
    ['body over maxBodySize', { path: '/trpc/save', ...json({ id: 3, pad: 'x'.repeat(100) }) }],
    ['unknown', { path: '/trpc/nope' }],
    ['wrong method', { path: '/trpc/save' }],
    ['createContext throws', { path: `/trpc/get${q({ id: 1 })}`, headers: { 'x-fail': 'ctx' } }],
    ['createContext throws, unknown path', { path: '/trpc/nope', headers: { 'x-fail': 'ctx' } }],
    ['createContext resolves later', { path: `/trpc/get${q({ id: 4 })}`, headers: { 'x-async': 'ctx' } }],
    ['createContext rejects later', { path: `/trpc/get${q({ id: 4 })}`, headers: { 'x-async': 'fail' } }],
    ['procedure throws a plain error', { path: '/trpc/crash' }],
    ['stream-like result', { path: '/trpc/streamy' }],
    ['result JSON cannot hold', { path: '/trpc/bigint' }],
    ['a Host header of its own (info.url)', { path: `/trpc/get${q({ id: 2 })}`, headers: { host: 'api.example.com:8443' } }],
  ];

  it.each(cases)('%s: same answer, same onError, same createContext info', async (_name, raw) => {
    const results = [];
    for (const server of servers) {
      server.seen.length = 0;
      server.infos.length = 0;
      const answer = await send(server.port, raw);
      results.push({ status: answer.status, contentType: answer.headers['content-type'], body: JSON.parse(answer.text) as unknown, seen: [...server.seen], infos: [...server.infos] });
    }
    expect(results[0]).toEqual(results[1]);
    expect(servers[0]?.fell).toBe(0);
  });

  it('answers the whole list on one keep-alive connection as tRPC’s adapter does', async () => {
    const runs = [];
    for (const server of servers) {
      const agent = new Agent({ keepAlive: true, maxSockets: 1 });
      const run = [];
      try {
        for (const [name, raw] of cases) {
          const answer = await send(server.port, raw, undefined, agent);
          run.push({ name, status: answer.status, connection: answer.headers.connection, reused: answer.reusedSocket, body: answer.text });
        }
      } finally {
        agent.destroy();
      }
      runs.push(run);
    }
    expect(runs[0]).toEqual(runs[1]);
    expect(runs[0]?.filter((r) => !r.reused).map((r) => r.name)).toEqual([cases[0]?.[0]]);
    expect(servers[0]?.fell).toBe(0);
  });
});

describe('createFastTRPCHandler and tRPC’s adapter on a router with a lazy router in it', () => {
  const tr = initTRPC.create({ isDev: false }); // no stacks: they name the file that answered
  /** A router each: the lazy one loads into the router that is asked first. */
  const makeRouter = () =>
    tr.router({
      hello: tr.procedure.query(() => 'hi'),
      slow: lazy(() =>
        Promise.resolve(
          tr.router({
            ping: tr.procedure.query(() => 'pong'),
            echo: tr.procedure.input((raw: unknown) => raw as { n: number }).mutation(({ input }) => input.n),
          }),
        ),
      ),
    });
  const servers: { port: number; fell: number; server: Server }[] = [];

  beforeAll(async () => {
    for (const kind of ['fast', 'standard'] as const) {
      const router = makeRouter();
      const standardHandler = createHTTPHandler({ router, basePath: '/trpc/' });
      const entry = { port: 0, fell: 0, server: createServer() };
      entry.server.on('request', kind === 'fast'
        ? createFastTRPCHandler({ router, basePath: '/trpc/', createContext: () => ({}), fallback: (req, res) => { entry.fell++; standardHandler(req, res); } })
        : standardHandler);
      entry.port = await listen(entry.server);
      servers.push(entry);
    }
  });
  afterAll(async () => {
    for (const { server } of servers) {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    }
  });

  it('falls back while a lazy router is unloaded, serves its procedures once it is, answering the same', async () => {
    // In this order: what the fast path does depends on whether `slow` has been loaded yet.
    const steps: [string, Raw, boolean][] = [
      ['a loaded procedure, lazy router not loaded yet', { path: '/trpc/hello' }, false],
      ['an unknown path, lazy router not loaded: tRPC decides', { path: '/trpc/nope' }, true],
      ['first call into the lazy router: tRPC loads it', { path: '/trpc/slow.ping' }, true],
      ['the same call, loaded', { path: '/trpc/slow.ping' }, false],
      ['a mutation of the loaded router', { path: '/trpc/slow.echo', ...json({ n: 5 }) }, false],
      ['an unknown path under it, everything loaded', { path: '/trpc/slow.nope' }, false],
      ['an unknown path, everything loaded', { path: '/trpc/nope' }, false],
    ];
    const [fastServer, standardServer] = servers as [(typeof servers)[0], (typeof servers)[0]];
    for (const [name, raw, fallsBack] of steps) {
      const before = fastServer.fell;
      const [f, s] = [await send(fastServer.port, raw), await send(standardServer.port, raw)];
      expect({ name, status: f.status, body: JSON.parse(f.text) as unknown }).toEqual({ name, status: s.status, body: JSON.parse(s.text) as unknown });
      expect({ name, fellBack: fastServer.fell > before }).toEqual({ name, fellBack: fallsBack });
    }
  });
});
