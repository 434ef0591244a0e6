import { describe, expect, it } from 'vitest';
import { connectionAdvice, DEFAULT_FORM, parseLabForm } from './config';

describe('lab form', () => {
  it('defaults to a sensible run: 4 calls at a time, each alone on the wire', () => {
    const parsed = parseLabForm(DEFAULT_FORM);
    expect(parsed).toMatchObject({ ok: true, config: { count: 50, concurrency: 4, transport: 'single', mode: 'settled', errorRate: 0 } });
    expect(connectionAdvice(4, false)).toBeNull();
  });

  it('converts the error rate from percent and the batched box to a transport', () => {
    expect(parseLabForm({ ...DEFAULT_FORM, errorRatePct: '12.5', batched: true, mode: 'fail-fast' })).toMatchObject({ ok: true, config: { errorRate: 0.125, transport: 'batch', mode: 'fail-fast' } });
  });

  it('names every bad field', () => {
    const parsed = parseLabForm({ ...DEFAULT_FORM, count: '10001', concurrency: '0', retries: 'x', errorRatePct: '150', minDelayMs: '500', maxDelayMs: '100', timeoutMs: '' });
    expect(parsed.ok).toBe(false);
    if (parsed.ok) return;
    expect(parsed.errors).toMatchObject({
      count: 'Calls: 1–10,000',
      concurrency: 'Concurrency: 1–200',
      retries: 'Retries must be a number',
      errorRatePct: 'Error rate: 0–100 %',
      timeoutMs: expect.any(String) as string,
    });
  });

  it('refuses a max backoff below the min', () => {
    expect(parseLabForm({ ...DEFAULT_FORM, minDelayMs: '500', maxDelayMs: '100' })).toEqual({ ok: false, errors: { maxDelayMs: 'Max backoff must be at least the min backoff' } });
  });

  it('explains the browser connection budget when it matters', () => {
    expect(connectionAdvice(5, false)).toBeNull();
    expect(connectionAdvice(6, false)).toMatch(/browser queues requests itself/);
    expect(connectionAdvice(2, true)).toMatch(/server keeps working/);
  });
});
