/**
 * The cancellation chain per transport, on the real server and a real PostgreSQL: a client abort — a closed
 * HTTP/1.1 connection, plain or over TLS, or a reset HTTP/2 stream — fires the call's signal on the server,
 * which cancels its statement inside Postgres (57014), rolls back its transaction, and returns its
 * connection to the pool. The same assertions (test/cancellation-probe.ts) as cancellation.test.ts.
 */
import postgres from 'postgres';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { startTestServer, TEST_TOKEN, type TestServer } from './test-server';
import { makeTestCertificate, type TestCertificate } from './test-tls';
import { until } from '@asyncscope/concurrency/testing';
import { abortOnceRunning, cancellationProbe, expectCancelledHopByHop, expectPoolReturned, expectRolledBack, failure } from './test/cancellation-probe';
import { dataOf, openTransport, type ApiTransport, type TransportName } from './test/transports';

const POOL = 6;

describe.each<TransportName>(['HTTP/1.1', 'HTTP/1.1 over TLS', 'HTTP/2'])('over %s', (name) => {
  let cert: TestCertificate | undefined;
  let t: TestServer;
  let observer: postgres.Sql;
  let client: ApiTransport;
  const probe = cancellationProbe(() => t, () => observer, 'test-transports');
  // Call ids name the transport in the characters x-request-id allows.
  const id = (what: string) => `${name.replaceAll(/[^\w.]+/g, '_')}-${what}`;

  beforeAll(async () => {
    cert = name === 'HTTP/1.1' ? undefined : await makeTestCertificate();
    t = await startTestServer({ poolMax: POOL, applicationName: 'test-transports', tls: cert });
    expect(t.url.startsWith(cert ? 'https://' : 'http://')).toBe(true);
    observer = postgres(t.database.url, { max: 1, onnotice: () => undefined });
    client = openTransport(name, t.url, TEST_TOKEN, cert?.cert);
  });
  afterAll(async () => {
    client.close();
    await observer.end();
    await t.close();
  });
  beforeEach(async () => {
    await t.database.sql`truncate users, lab_writes restart identity`;
  });

  it('speaks the transport it is named after', async () => {
    const answer = await client.call('users.list', undefined);
    expect(answer.status).toBe(200);
    expect(answer.httpVersion).toBe(name === 'HTTP/2' ? '2.0' : '1.1');
  });

  it('an abort fires the server signal and cancels the statement (57014); a concurrent canary on the same client is spared', async () => {
    const controller = new AbortController();
    const call = failure(client.call('lab.sleep', { ms: 10_000 }, { callId: id('abort'), signal: controller.signal }));
    const canary = client.call('lab.sleep', { ms: 400 }, { callId: id('canary') });
    await until('both statements run', async () => (await probe.running('pg_sleep')).length >= 2);
    const abortedAt = performance.now();
    controller.abort();
    expect(await call).toBeInstanceOf(Error);
    await expectCancelledHopByHop(probe, id('abort'), abortedAt);
    expect((dataOf(await canary) as { sleptMs: number }).sleptMs).toBeGreaterThanOrEqual(400);
    expect(probe.hop(id('canary'), 'settled')?.code).toBe('OK');
  });

  it('a cancelled lab.slowWrite rolls back: no row, no session idle in transaction', async () => {
    await abortOnceRunning(probe, (signal) => client.call('lab.slowWrite', { label: id('write'), ms: 10_000 }, { mutation: true, callId: id('write'), signal }));
    await expectRolledBack(probe, observer, id('write'), id('write'));
  });

  it('a call still queued for a connection is never sent', async () => {
    const blockers = Array.from({ length: POOL }, (_, i) => client.call('lab.sleep', { ms: 600 }, { callId: id(`blocker-${i}`) }));
    await until('the pool is busy', async () => (await probe.running('pg_sleep')).length === POOL);
    const controller = new AbortController();
    const call = failure(client.call('lab.slowWrite', { label: id('never'), ms: 0 }, { mutation: true, callId: id('queued'), signal: controller.signal }));
    await until('the call waits', () => Promise.resolve(t.server.database.client.statements().queued > 0 || undefined));
    controller.abort();
    await call;
    await Promise.all(blockers);
    await until('settled', () => Promise.resolve(probe.hop(id('queued'), 'settled')));
    expect(probe.hop(id('queued'), 'statement.started')).toBeUndefined();
    expect(probe.hop(id('queued'), 'settled')?.code).toBe('CLIENT_CLOSED_REQUEST');
    expect(await observer`select * from lab_writes where label = ${id('never')}`).toHaveLength(0);
  });

  it('60 concurrent calls, half aborted at random moments: every received call settles, the pool is returned, the client still works', async () => {
    const ids = Array.from({ length: 60 }, (_, i) => id(`mass-${i}`));
    const outcomes = await Promise.all(ids.map((callId, i) => {
      const controller = new AbortController();
      const promise = failure(client.call('lab.sleep', { ms: 50 + (i % 7) * 40 }, { callId, signal: controller.signal }));
      if (i % 2 === 0) setTimeout(() => { controller.abort(); }, Math.random() * 300);
      return promise;
    }));
    expect(outcomes.filter((o) => o === undefined).length).toBeGreaterThanOrEqual(30);
    const received = ids.filter((callId) => probe.hop(callId, 'received'));
    expect(received.length).toBeGreaterThanOrEqual(30);
    await until('every received call settled on the server', () => Promise.resolve(received.every((callId) => probe.hop(callId, 'settled')) || undefined));
    await expectPoolReturned(probe, t);
    // HTTP/2: thirty resets later, the one session still carries calls.
    const answered = performance.now();
    expect((dataOf(await client.call('users.list', undefined)) as { total: number }).total).toBe(0);
    expect(performance.now() - answered).toBeLessThan(1000);
    if (client.session) expect(client.session.destroyed).toBe(false);
  });
});
