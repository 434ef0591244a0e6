import { afterEach, describe, expect, it, vi } from 'vitest';
import { AbortError } from './errors';
import { backoffDelay, isRetryable, retry, type RetryInfo } from './retry';
import { ManualClock, track } from './test-utils';

afterEach(() => {
  vi.useRealTimers();
});

/** An error the default policy treats as transient. */
const transient = (message = 'transient'): Error => Object.assign(new Error(message), { retryable: true });

describe('backoffDelay', () => {
  it('is full jitter: random() * min(max, min * factor^attempt)', () => {
    const policy = { minDelayMs: 100, maxDelayMs: 1_000, factor: 2, random: () => 0.5 };
    expect([0, 1, 2, 3, 4, 5].map((attempt) => backoffDelay(attempt, policy))).toEqual([50, 100, 200, 400, 500, 500]);
    expect(backoffDelay(3, { ...policy, random: () => 0 })).toBe(0);
    expect(backoffDelay(3, { ...policy, random: () => 0.999 })).toBe(799);
  });

  it("jitter 'none' uses the cap itself", () => {
    expect(backoffDelay(2, { minDelayMs: 10, factor: 3, jitter: 'none' })).toBe(90);
  });
});

describe('isRetryable', () => {
  it('only errors marked retryable: true', () => {
    expect(isRetryable(transient())).toBe(true);
    expect(isRetryable(new Error('x'))).toBe(false);
    expect(isRetryable({ retryable: 'yes' })).toBe(false);
    expect(isRetryable(undefined)).toBe(false);
  });
});

describe('retry', () => {
  it('by default retries nothing that is not marked retryable', async () => {
    const failure = new Error('bug');
    const fn = vi.fn(() => Promise.reject(failure));
    await expect(retry(fn, { minDelayMs: 0 })).rejects.toBe(failure);
    expect(fn).toHaveBeenCalledOnce();
  });

  it('retries marked errors until success, passing 0-based attempts', async () => {
    const attempts: number[] = [];
    const value = await retry(
      async (attempt) => {
        attempts.push(attempt);
        if (attempt < 2) throw transient();
        return Promise.resolve('ok');
      },
      { minDelayMs: 0 },
    );
    expect(value).toBe('ok');
    expect(attempts).toEqual([0, 1, 2]);
  });

  it('gives up after `retries` retries with the last error', async () => {
    let calls = 0;
    const result = retry(
      () => {
        calls++;
        return Promise.reject(transient(`failure ${calls}`));
      },
      { retries: 2, minDelayMs: 0 },
    );
    await expect(result).rejects.toThrow('failure 3');
    expect(calls).toBe(3);
  });

  it('asks shouldRetry with the error and attempt', async () => {
    const shouldRetry = vi.fn((error: unknown, _attempt: number) => error instanceof RangeError);
    const fn = vi.fn().mockRejectedValueOnce(new RangeError('retry me')).mockRejectedValueOnce(new TypeError('not me'));
    await expect(retry(fn, { shouldRetry, minDelayMs: 0 })).rejects.toBeInstanceOf(TypeError);
    expect(fn).toHaveBeenCalledTimes(2);
    expect(shouldRetry.mock.calls.map(([, attempt]) => attempt)).toEqual([0, 1]);
  });

  it('sleeps the full-jitter delays on fake timers and reports each retry', async () => {
    vi.useFakeTimers();
    const startedAt: number[] = [];
    const infos: RetryInfo[] = [];
    const result = track(
      retry(
        async (attempt) => {
          startedAt.push(Date.now());
          if (attempt < 3) throw transient();
          return Promise.resolve(attempt);
        },
        { minDelayMs: 100, factor: 2, random: () => 0.5, onRetry: (info) => infos.push(info) },
      ),
    );
    await vi.advanceTimersByTimeAsync(49);
    expect(startedAt).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(1);
    expect(startedAt).toHaveLength(2);
    await vi.advanceTimersByTimeAsync(300);
    expect(result.current).toEqual({ state: 'fulfilled', value: 3 });
    const t0 = startedAt[0] ?? 0;
    expect(startedAt.map((t) => t - t0)).toEqual([0, 50, 150, 350]);
    expect(infos.map(({ attempt, delayMs }) => ({ attempt, delayMs }))).toEqual([
      { attempt: 0, delayMs: 50 },
      { attempt: 1, delayMs: 100 },
      { attempt: 2, delayMs: 200 },
    ]);
  });

  it('sleeps on an injected clock', async () => {
    const clock = new ManualClock();
    const fn = vi.fn().mockRejectedValueOnce(transient()).mockResolvedValueOnce('done');
    const result = track(retry(fn, { clock, minDelayMs: 1_000, jitter: 'none' }));
    await clock.advance(999);
    expect(fn).toHaveBeenCalledOnce();
    await clock.advance(1);
    expect(result.current).toEqual({ state: 'fulfilled', value: 'done' });
  });

  it('an abort during the backoff sleep rejects at once with the reason, clears the timer and never calls again', async () => {
    vi.useFakeTimers();
    const controller = new AbortController();
    const fn = vi.fn(() => Promise.reject(transient()));
    const result = track(retry(fn, { signal: controller.signal, minDelayMs: 10_000, jitter: 'none' }));
    await vi.advanceTimersByTimeAsync(0);
    expect(vi.getTimerCount()).toBe(1);
    controller.abort('user cancelled');
    await vi.advanceTimersByTimeAsync(0);
    expect(result.current).toEqual({ state: 'rejected', reason: 'user cancelled' });
    expect(vi.getTimerCount()).toBe(0);
    await vi.advanceTimersByTimeAsync(60_000);
    expect(fn).toHaveBeenCalledOnce();
  });

  it('an abort during an attempt is not retried, even when shouldRetry says yes to everything', async () => {
    const controller = new AbortController();
    const fn = vi.fn(
      (_attempt: number, signal: AbortSignal) =>
        new Promise<never>((_, reject) => {
          signal.addEventListener('abort', () => {
            reject(new Error('fetch failed because aborted'));
          });
        }),
    );
    const onRetry = vi.fn();
    const result = retry(fn, { signal: controller.signal, shouldRetry: () => true, minDelayMs: 0, onRetry });
    controller.abort('stop');
    await expect(result).rejects.toBe('stop');
    expect(fn).toHaveBeenCalledOnce();
    expect(onRetry).not.toHaveBeenCalled(); // no phantom retry is announced
  });

  it('never retries an abort error thrown by the work itself', async () => {
    const fn = vi.fn(() => Promise.reject(new AbortError('inner abort')));
    await expect(retry(fn, { shouldRetry: () => true, minDelayMs: 0 })).rejects.toBeInstanceOf(AbortError);
    expect(fn).toHaveBeenCalledOnce();
  });

  it('waits for an attempt that ignores the abort before rejecting with the reason', async () => {
    vi.useFakeTimers();
    const controller = new AbortController();
    let attemptEnded = false;
    const result = track(
      retry(
        async () => {
          await new Promise((resolve) => setTimeout(resolve, 100));
          attemptEnded = true;
          throw transient();
        },
        { signal: controller.signal },
      ),
    );
    controller.abort('cancel');
    await vi.advanceTimersByTimeAsync(50);
    expect(result.current.state).toBe('pending');
    await vi.advanceTimersByTimeAsync(50);
    expect(attemptEnded).toBe(true);
    expect(result.current).toEqual({ state: 'rejected', reason: 'cancel' });
  });

  it('does not call fn when the signal is already aborted; rejects a negative retries count', async () => {
    const fn = vi.fn(() => Promise.resolve(1));
    await expect(retry(fn, { signal: AbortSignal.abort('early') })).rejects.toBe('early');
    expect(fn).not.toHaveBeenCalled();
    await expect(retry(fn, { retries: -1 })).rejects.toBeInstanceOf(RangeError);
  });

  it('backs off with real timers', async () => {
    const started = performance.now();
    const fn = vi.fn().mockRejectedValueOnce(transient()).mockRejectedValueOnce(transient()).mockResolvedValueOnce('ok');
    await expect(retry(fn, { minDelayMs: 10, jitter: 'none' })).resolves.toBe('ok');
    expect(performance.now() - started).toBeGreaterThanOrEqual(28);
  });
});
