import { describe, expect, it } from 'vitest';
import { DEFAULT_FORM, parseLabForm } from './config';
import type { PageProtocol } from './transport';

const TLS_H2: PageProtocol = { secure: true, nextHop: 'h2' };

describe('lab form', () => {
  it('defaults to the WebSocket, 20 calls at a time', () => {
    const parsed = parseLabForm(DEFAULT_FORM);
    expect(parsed).toMatchObject({ ok: true, config: { count: 100, concurrency: 20, transport: 'websocket', mode: 'settled', errorRate: 0 } });
  });

  it('converts the error rate from percent and keeps the chosen transport', () => {
    expect(parseLabForm({ ...DEFAULT_FORM, errorRatePct: '12.5', transport: 'http-batch', mode: 'fail-fast' })).toMatchObject({ ok: true, config: { errorRate: 0.125, transport: 'http-batch', mode: 'fail-fast' } });
    expect(parseLabForm({ ...DEFAULT_FORM, transport: 'http' })).toMatchObject({ ok: true, config: { transport: 'http' } });
  });

  it('takes up to 1,000 calls at a time (a WebSocket has no six-connection cap)', () => {
    expect(parseLabForm({ ...DEFAULT_FORM, count: '200', concurrency: '200' })).toMatchObject({ ok: true, config: { concurrency: 200 } });
    expect(parseLabForm({ ...DEFAULT_FORM, concurrency: '1000' })).toMatchObject({ ok: true, config: { concurrency: 1000 } });
    expect(parseLabForm({ ...DEFAULT_FORM, concurrency: '1001' })).toEqual({ ok: false, errors: { concurrency: 'Concurrency: 1–1,000' } });
  });

  it('names every bad field', () => {
    const parsed = parseLabForm({ ...DEFAULT_FORM, count: '10001', concurrency: '0', retries: 'x', errorRatePct: '150', minDelayMs: '500', maxDelayMs: '100', timeoutMs: '' });
    expect(parsed.ok).toBe(false);
    if (parsed.ok) return;
    expect(parsed.errors).toMatchObject({
      count: 'Calls: 1–10,000',
      concurrency: 'Concurrency: 1–1,000',
      retries: 'Retries must be a number',
      errorRatePct: 'Error rate: 0–100 %',
      timeoutMs: expect.any(String) as string,
    });
  });

  it('refuses a max backoff below the min', () => {
    expect(parseLabForm({ ...DEFAULT_FORM, minDelayMs: '500', maxDelayMs: '100' })).toEqual({ ok: false, errors: { maxDelayMs: 'Max backoff must be at least the min backoff' } });
  });

  it('refuses HTTP/2 on a page without TLS, and says why; takes it on an h2 page', () => {
    const plain = parseLabForm({ ...DEFAULT_FORM, transport: 'http2' });
    expect(plain).toEqual({ ok: false, errors: { transport: expect.stringMatching(/only over TLS.*TLS_CERT and TLS_KEY/) as string } });
    expect(parseLabForm({ ...DEFAULT_FORM, transport: 'http2' }, TLS_H2)).toMatchObject({ ok: true, config: { transport: 'http2' } });
    // On an HTTP/2 page a "per-call HTTP/1.1" run would be HTTP/2 all the same.
    expect(parseLabForm({ ...DEFAULT_FORM, transport: 'http' }, TLS_H2)).toMatchObject({ ok: false, errors: { transport: expect.stringMatching(/HTTP\/2/) as string } });
  });

  it('refuses an unknown transport', () => {
    expect(parseLabForm({ ...DEFAULT_FORM, transport: 'carrier-pigeon' as never })).toEqual({ ok: false, errors: { transport: 'Choose how the calls travel' } });
  });
});
