/**
 * HTTPS with HTTP/2 (TLS_CERT / TLS_KEY): many calls multiplexed on one HTTP/2 session, a reset stream
 * cancelling only its own call; HTTP/1.1 over the same TLS port (allowHTTP1) for clients without h2, its
 * upgrade requests, its slow-header protection; everything else the handler chain serves (health, the
 * dashboard with its security headers, tRPC's adapter: batches and event streams); and a graceful stop
 * with HTTP/2 sessions open. Real server, real PostgreSQL, a certificate made here.
 */
import { once } from 'node:events';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { request as httpsRequest } from 'node:https';
import type { IncomingMessage } from 'node:http';
import { constants } from 'node:http2';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Duplex } from 'node:stream';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';
import pino from 'pino';
import postgres from 'postgres';
import { afterAll, afterEach, beforeAll, describe, expect, inject, it } from 'vitest';
import { createTestDatabase } from '@asyncscope/db/testing';
import { createHttpServer } from './http';
import { killServers, launchServer, until as untilOutput } from './test-process';
import { startTestServer, TEST_TOKEN, type TestServer } from './test-server';
import { makeTestCertificate, type TestCertificate } from './test-tls';
import { until } from '@asyncscope/concurrency/testing';
import { seedUsers } from '@asyncscope/api/testing';
import { cancellationProbe, expectCancelledHopByHop, expectPoolReturned, failure } from './test/cancellation-probe';
import { dataOf, openTransport, type ApiTransport } from './test/transports';

let cert: TestCertificate;
let t: TestServer;
let observer: postgres.Sql;
let h2: ApiTransport;
let h1: ApiTransport;
let dashboardDir: string;
const warnings: string[] = [];
const onWarning = (w: Error) => { warnings.push(`${w.name}: ${w.message}`); };
const probe = cancellationProbe(() => t, () => observer, 'test-h2');

beforeAll(async () => {
  cert = await makeTestCertificate();
  dashboardDir = await mkdtemp(join(tmpdir(), 'asyncscope-h2-dashboard-'));
  await writeFile(join(dashboardDir, 'index.html'), '<!doctype html><title>asyncscope</title>');
  t = await startTestServer({ poolMax: 12, applicationName: 'test-h2', tls: cert, dashboardDir, bodyTimeoutMs: 500 });
  observer = postgres(t.database.url, { max: 1, onnotice: () => undefined });
  h2 = openTransport('HTTP/2', t.url, TEST_TOKEN, cert.cert);
  h1 = openTransport('HTTP/1.1 over TLS', t.url, TEST_TOKEN, cert.cert);
  process.on('warning', onWarning);
});
afterAll(async () => {
  process.off('warning', onWarning);
  h1.close();
  h2.close();
  await observer.end();
  await t.close();
  await rm(dashboardDir, { recursive: true, force: true });
});

describe('HTTP/2: one session, many calls', () => {
  it('runs 10 calls at once on one session; resetting one stream cancels only its statement', async () => {
    expect((await h2.call('users.list', undefined)).httpVersion).toBe('2.0');
    const session = h2.session;
    expect(session?.alpnProtocol).toBe('h2');
    const controller = new AbortController();
    const calls = Array.from({ length: 10 }, (_, i) =>
      failure(h2.call('lab.sleep', { ms: 800 }, { callId: `mux-${i}`, signal: i === 3 ? controller.signal : undefined })));
    // All ten inside PostgreSQL at the same time: multiplexed, not queued behind one another.
    await until('10 statements run at once', async () => (await probe.running('pg_sleep')).length === 10);
    const abortedAt = performance.now();
    controller.abort();
    await expectCancelledHopByHop(probe, 'mux-3', abortedAt);
    // The other nine are still running, and finish OK on the same session.
    expect((await probe.running('pg_sleep')).length).toBe(9);
    const outcomes = await Promise.all(calls);
    expect(outcomes.filter((o) => o !== undefined)).toHaveLength(1);
    for (let i = 0; i < 10; i++) if (i !== 3) expect(probe.hop(`mux-${i}`, 'settled')?.code).toBe('OK');
    expect(session?.destroyed).toBe(false);
    expect(h2.session).toBe(session);
    await expectPoolReturned(probe, t);
  });

  it('a refusal that leaves a POST body unread answers on its stream alone: no connection header, the session goes on', async () => {
    const refused = await h2.request('POST', '/trpc/users.create', { headers: { authorization: `Bearer ${TEST_TOKEN}`, 'content-type': 'text/plain' }, body: 'x'.repeat(1000) });
    expect(refused.status).toBe(415);
    expect(refused.headers.connection).toBeUndefined();
    const tooBig = await h2.request('POST', '/trpc/users.create', { headers: { authorization: `Bearer ${TEST_TOKEN}`, 'content-type': 'application/json' }, body: 'x'.repeat(20_000) });
    expect(tooBig.status).toBe(413);
    expect((dataOf(await h2.call('users.list', undefined)) as { total: number }).total).toBeGreaterThanOrEqual(0);
    expect(h2.session?.destroyed).toBe(false);
    expect(warnings).toEqual([]);
  });

  it('serves batches and event streams through tRPC\'s adapter over HTTP/2, with no connection-specific headers', async () => {
    const batch = await h2.request('GET', `/trpc/users.list,activity.stats?batch=1&input=${encodeURIComponent('{}')}`, { headers: { authorization: `Bearer ${TEST_TOKEN}` } });
    expect(batch.status).toBe(200);
    expect((JSON.parse(batch.body) as unknown[]).length).toBe(2);

    // An event stream: its first event arrives; a reset ends it (the server's generator and its query stop).
    await seedUsers(t.database.sql, 5000);
    const from = t.server.runtime.activity.lastSeq;
    const session = h2.session;
    if (!session) throw new Error('no session');
    const stream = session.request({ ':path': `/trpc/users.stream?input=${encodeURIComponent(JSON.stringify({ pageSize: 50 }))}`, accept: 'text/event-stream', authorization: `Bearer ${TEST_TOKEN}` });
    const [headers] = (await once(stream, 'response')) as [Record<string, string | undefined>];
    expect(headers[':status']).toBe(200);
    expect(headers['content-type']).toContain('text/event-stream');
    expect(headers.connection).toBeUndefined();
    const [chunk] = (await once(stream, 'data')) as [Buffer];
    expect(chunk.toString()).toMatch(/data:|event:/);
    stream.close(constants.NGHTTP2_CANCEL);
    const settled = await until('the stream settled on the server', () =>
      t.server.runtime.activity.read(from, 100_000).events.find((e) => e.path === 'users.stream' && e.type === 'settled'));
    expect(settled).toMatchObject({ code: 'CLIENT_CLOSED_REQUEST' });
    await until('no stream query left', async () => (await probe.sessions()).every((x) => x.state === 'idle'));
    await t.database.sql`truncate users restart identity`;
    expect(warnings).toEqual([]);
  });
});

describe('plain requests over TLS, HTTP/2 and HTTP/1.1 alike', () => {
  it.each(['h2', 'HTTP/1.1'] as const)('%s: health, readiness, the dashboard with its security headers, 404s', async (which) => {
    const client = which === 'h2' ? h2 : h1;
    const health = await client.request('GET', '/healthz');
    expect([health.status, JSON.parse(health.body)]).toEqual([200, { status: 'ok' }]);
    expect(health.httpVersion).toBe(which === 'h2' ? '2.0' : '1.1');
    expect((await client.request('GET', '/readyz')).status).toBe(200);
    const page = await client.request('GET', '/');
    expect(page.status).toBe(200);
    expect(page.body).toContain('<title>asyncscope</title>');
    expect(page.headers['content-security-policy']).toContain("default-src 'self'");
    expect(page.headers['x-frame-options']).toBe('DENY');
    expect((await client.request('GET', '/trpc/users.list')).status).toBe(401);
    expect((await client.request('DELETE', '/healthz')).status).toBe(405);
  });

  it('a client that offers no ALPN (curl --http1.1, old tools) gets HTTP/1.1', async () => {
    const answer = await new Promise<IncomingMessage>((resolve, reject) => {
      httpsRequest(`${t.url}/trpc/users.list`, { ca: cert.cert, headers: { authorization: `Bearer ${TEST_TOKEN}` }, agent: false }, resolve).on('error', reject).end();
    });
    expect(answer.httpVersion).toBe('1.1');
    expect(answer.statusCode).toBe(200);
    answer.resume();
  });

  it('HTTP/1.1 over TLS keeps the slow-header protection: headers that never end get 408 near the deadline', async () => {
    const socket = tlsConnect({ host: '127.0.0.1', port: Number(new URL(t.url).port), ca: cert.cert, ALPNProtocols: ['http/1.1'] });
    await once(socket, 'secureConnect');
    const started = performance.now();
    socket.write(`GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: `);
    let reply = '';
    socket.on('data', (b: Buffer) => { reply += b.toString(); });
    await once(socket, 'close');
    expect(reply).toMatch(/^HTTP\/1\.1 408/);
    expect(performance.now() - started).toBeLessThan(3000);
  });
});

describe('the server object keeps its HTTP/1.1 upgrade event over TLS', () => {
  it("emits 'upgrade' for an HTTP/1.1 client's upgrade request on the TLS port (WebSocket endpoints attach there)", async () => {
    const http = createHttpServer({
      runtime: t.server.runtime,
      apiToken: TEST_TOKEN,
      maxBodyBytes: 16 * 1024,
      bodyTimeoutMs: 10_000,
      maxBatchSize: 50,
      log: pino({ level: 'silent' }),
      isDatabaseReady: () => true,
      checkDatabase: () => Promise.resolve(),
      tls: cert,
    });
    const upgrades: string[] = [];
    http.server.on('upgrade', (req: IncomingMessage, socket: Duplex) => {
      upgrades.push(`${req.httpVersion} ${req.url ?? ''} ${req.headers.upgrade ?? ''}`);
      socket.end('HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n');
    });
    http.server.listen(0, '127.0.0.1');
    await once(http.server, 'listening');
    try {
      const { port } = http.server.address() as AddressInfo;
      const socket: TLSSocket = tlsConnect({ host: '127.0.0.1', port, ca: cert.cert, ALPNProtocols: ['http/1.1'] });
      await once(socket, 'secureConnect');
      socket.write('GET /trpc HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n');
      const [reply] = (await once(socket, 'data')) as [Buffer];
      expect(reply.toString()).toMatch(/^HTTP\/1\.1 101/);
      expect(upgrades).toEqual(['1.1 /trpc websocket']);
      socket.destroy();
    } finally {
      http.closeAllConnections();
      await new Promise((resolve) => http.server.close(resolve));
    }
  });
});

describe('graceful stop with HTTP/2 sessions open', () => {
  it('lets an in-flight stream finish, does not wait on idle sessions, then refuses connections', async () => {
    await using s = await startTestServer({ tls: cert, shutdownTimeoutMs: 5000, applicationName: 'test-h2-stop' });
    const busy = openTransport('HTTP/2', s.url, TEST_TOKEN, cert.cert);
    const idle = openTransport('HTTP/2', s.url, TEST_TOKEN, cert.cert);
    try {
      expect((await idle.request('GET', '/healthz')).status).toBe(200); // a session left open, idle
      const inFlight = busy.call('lab.sleep', { ms: 400 });
      await until('the call runs', () => Promise.resolve(s.server.runtime.admission.inFlight > 0 || undefined));
      const started = performance.now();
      const closing = s.server.close();
      expect((dataOf(await inFlight) as { sleptMs: number }).sleptMs).toBeGreaterThanOrEqual(400);
      await closing;
      // Not the shutdown deadline (5 s): the idle session was sent GOAWAY and closed.
      expect(performance.now() - started).toBeLessThan(2000);
      const again = openTransport('HTTP/2', s.url, TEST_TOKEN, cert.cert);
      // Nothing listens any more: the stream is cancelled because the connection was refused.
      await expect(again.request('GET', '/healthz')).rejects.toMatchObject({ code: 'ERR_HTTP2_STREAM_CANCEL', cause: { code: 'ECONNREFUSED' } });
      again.close();
    } finally {
      busy.close();
      idle.close();
    }
  });

  it('at the deadline stops the calls still running on HTTP/2 streams (SERVICE_UNAVAILABLE, statement cancelled) and closes the sessions', async () => {
    await using s = await startTestServer({ tls: cert, shutdownTimeoutMs: 300, applicationName: 'test-h2-stop' });
    const client = openTransport('HTTP/2', s.url, TEST_TOKEN, cert.cert);
    try {
      const slow = client.call('lab.sleep', { ms: 10_000 }, { callId: 'h2-slow-at-shutdown' }).then((a) => JSON.parse(a.body) as { error?: { data?: { code?: string } } }, (e: unknown) => e);
      await until('the call runs', () => Promise.resolve(s.server.runtime.admission.inFlight > 0 || undefined));
      const started = performance.now();
      await s.server.close();
      expect(performance.now() - started).toBeLessThan(3000);
      expect(await slow).toMatchObject({ error: { data: { code: 'SERVICE_UNAVAILABLE' } } });
      const events = s.server.runtime.activity.read(0).events.filter((e) => e.callId === 'h2-slow-at-shutdown');
      expect(events.find((e) => e.type === 'signal.fired')).toMatchObject({ reason: 'shutdown' });
      expect(events.find((e) => e.type === 'statement.ended')).toMatchObject({ sqlstate: '57014' });
      await until('the session closed', () => Promise.resolve(client.session?.closed || client.session?.destroyed || undefined), 2000);
    } finally {
      client.close();
    }
  });
});


describe('the built server with TLS_CERT and TLS_KEY', () => {
  afterEach(killServers);

  it('prints an https:// address and answers HTTP/2 there; a file it cannot read stops it at once, named', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'asyncscope-tls-start-'));
    const db = await createTestDatabase(inject('pgAdminUrl'), inject('pgTemplate'), { poolMax: 1 });
    try {
      await writeFile(join(dir, 'cert.pem'), cert.cert);
      await writeFile(join(dir, 'key.pem'), cert.key, { mode: 0o600 });
      const env = { DATA_DIR: dir, DATABASE_URL: db.url, PORT: '0', API_TOKEN: TEST_TOKEN, TLS_CERT: join(dir, 'cert.pem'), TLS_KEY: join(dir, 'key.pem') };
      const child = launchServer(env);
      const url = await untilOutput('the banner', () => /^ {2}API\s+(https:\/\/\S+)\/trpc$/m.exec(child.output())?.[1], child);
      const client = openTransport('HTTP/2', url, TEST_TOKEN, cert.cert);
      try {
        const answer = await client.call('users.list', undefined);
        expect([answer.status, answer.httpVersion]).toEqual([200, '2.0']);
      } finally {
        client.close();
      }
      child.proc.kill('SIGTERM');
      expect(await child.exited).toBe(0);

      const broken = launchServer({ ...env, TLS_KEY: join(dir, 'missing-key.pem') });
      expect(await broken.exited).toBe(1);
      expect(broken.stderr()).toMatch(/TLS_KEY=".*missing-key\.pem": cannot read it/);
    } finally {
      await db[Symbol.asyncDispose]();
      await rm(dir, { recursive: true, force: true });
    }
  }, 60_000);
});
