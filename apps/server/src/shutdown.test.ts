import { apiErrorCode as codeOf, createApiClient } from '@asyncscope/client';
import { describe, expect, it } from 'vitest';
import { startTestServer, TEST_TOKEN } from './test-server';


describe('graceful shutdown', () => {
  it('lets in-flight calls finish, then refuses new connections', async () => {
    const t = await startTestServer({ shutdownTimeoutMs: 5000 });
    const api = createApiClient({ url: `${t.url}/trpc`, token: TEST_TOKEN });
    const inFlight = api.lab.sleep.query({ ms: 400 }, { context: { transport: 'single' } });
    await new Promise((r) => setTimeout(r, 100));
    const closing = t.server.close();
    expect((await inFlight).sleptMs).toBeGreaterThanOrEqual(400);
    await closing;
    await expect(fetch(`${t.url}/healthz`)).rejects.toThrow();
    await t.database[Symbol.asyncDispose]();
  });

  it('stops calls still running at the deadline: statement cancelled, SERVICE_UNAVAILABLE', async () => {
    const t = await startTestServer({ shutdownTimeoutMs: 300 });
    const api = createApiClient({ url: `${t.url}/trpc`, token: TEST_TOKEN });
    const slow = api.lab.sleep.query({ ms: 10_000 }, { context: { transport: 'single', callId: 'slow-at-shutdown' } }).then(
      () => 'finished',
      (e: unknown) => codeOf(e),
    );
    await new Promise((r) => setTimeout(r, 100));
    const started = performance.now();
    await t.server.close();
    expect(performance.now() - started).toBeLessThan(3000);
    expect(await slow).toBe('SERVICE_UNAVAILABLE');
    const events = t.server.runtime.activity.read(0).events.filter((e) => e.callId === 'slow-at-shutdown');
    expect(events.find((e) => e.type === 'signal.fired')).toMatchObject({ reason: 'shutdown' });
    expect(events.find((e) => e.type === 'statement.ended')).toMatchObject({ sqlstate: '57014' });
    await t.database[Symbol.asyncDispose]();
  });
});
