import { describe, expect, it } from 'vitest';
import { AbortError, CancelledError, TimeoutError, isAbortError, throwIfAborted } from './errors';

describe('errors', () => {
  it('AbortError carries its reason and is the same class as CancelledError', () => {
    const error = new CancelledError('stopped', { reason: 'user left' });
    expect(error).toBeInstanceOf(AbortError);
    expect(error.name).toBe('AbortError');
    expect(error.reason).toBe('user left');
    expect(error.message).toBe('stopped');
  });

  it('isAbortError recognises ours, DOM aborts and plain objects named AbortError, but not timeouts', () => {
    const controller = new AbortController();
    controller.abort();
    expect(isAbortError(new AbortError())).toBe(true);
    expect(isAbortError(controller.signal.reason)).toBe(true);
    expect(isAbortError({ name: 'AbortError' })).toBe(true);
    expect(isAbortError(new TimeoutError(5))).toBe(false);
    expect(isAbortError(new Error('boom'))).toBe(false);
    expect(isAbortError(null)).toBe(false);
    expect(isAbortError('AbortError')).toBe(false);
  });

  it('TimeoutError names itself and keeps ms', () => {
    const error = new TimeoutError(250);
    expect(error.name).toBe('TimeoutError');
    expect(error.ms).toBe(250);
    expect(error.message).toBe('Timed out after 250ms');
  });

  it('throwIfAborted throws the signal reason itself, and nothing otherwise', () => {
    const reason = new Error('why');
    expect(() => {
      throwIfAborted(AbortSignal.abort(reason));
    }).toThrow(reason);
    expect(() => {
      throwIfAborted(new AbortController().signal);
      throwIfAborted(undefined);
    }).not.toThrow();
  });
});
