import { describe, expect, it } from 'vitest';
import { TRPCClientError } from '@trpc/client';
import { transportOf } from './links';
import { isRetryableCallError } from './policy';

describe('transportOf', () => {
  it('sends calls with a signal alone, so their abort reaches the server', () => {
    expect(transportOf({ context: {}, signal: new AbortController().signal })).toBe('single');
    expect(transportOf({ context: {}, signal: null })).toBe('batch');
  });
  it('lets the caller choose', () => {
    expect(transportOf({ context: { transport: 'batch' }, signal: new AbortController().signal })).toBe('batch');
    expect(transportOf({ context: { transport: 'single' }, signal: null })).toBe('single');
  });
});

describe('isRetryableCallError', () => {
  const withCode = (code: string) => Object.assign(new TRPCClientError<never>('x'), { data: { code } });
  it('retries shed and unavailable calls', () => {
    expect(isRetryableCallError(withCode('TOO_MANY_REQUESTS'))).toBe(true);
    expect(isRetryableCallError(withCode('SERVICE_UNAVAILABLE'))).toBe(true);
  });
  it('does not retry client errors, timeouts or aborts', () => {
    for (const code of ['BAD_REQUEST', 'NOT_FOUND', 'CONFLICT', 'UNAUTHORIZED', 'TIMEOUT', 'CLIENT_CLOSED_REQUEST']) {
      expect(isRetryableCallError(withCode(code))).toBe(false);
    }
    expect(isRetryableCallError(new DOMException('aborted', 'AbortError'))).toBe(false);
  });
});
