import { getEventListeners } from 'node:events';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { TimeoutError } from './errors';
import { deadline, linkSignals, withTimeout } from './signals';
import { ManualClock, track } from './test-utils';

afterEach(() => {
  vi.useRealTimers();
});

const listeners = (signal: AbortSignal): number => getEventListeners(signal, 'abort').length;

/** Work that never finishes on its own and rejects as soon as its signal aborts. */
const abortable = (signal: AbortSignal): Promise<never> =>
  new Promise<never>((_, reject) => {
    signal.addEventListener('abort', () => {
      reject(new Error('work aborted'));
    });
  });

describe('linkSignals', () => {
  it('aborts with the reason of the first parent to abort', () => {
    const a = new AbortController();
    const b = new AbortController();
    const { signal } = linkSignals(a.signal, undefined, b.signal);
    expect(signal.aborted).toBe(false);
    b.abort('b first');
    a.abort('a later');
    expect(signal.aborted).toBe(true);
    expect(signal.reason).toBe('b first');
  });

  it('is aborted at once when a parent already is, and attaches nothing', () => {
    const live = new AbortController();
    const scope = linkSignals(live.signal, AbortSignal.abort('done'));
    expect(scope.signal.reason).toBe('done');
    expect(listeners(live.signal)).toBe(0);
  });

  it('dispose removes its listeners from a long-lived parent (the AbortSignal.any leak)', () => {
    const root = new AbortController();
    for (let i = 0; i < 1_000; i++) linkSignals(root.signal).dispose();
    expect(listeners(root.signal)).toBe(0);
    const scope = linkSignals(root.signal);
    expect(listeners(root.signal)).toBe(1);
    scope.dispose();
    scope.dispose();
    root.abort();
    expect(scope.signal.aborted).toBe(false);
  });

  it('detaches from every other parent once one of them aborts', () => {
    const a = new AbortController();
    const b = new AbortController();
    linkSignals(a.signal, b.signal);
    a.abort();
    expect(listeners(b.signal)).toBe(0);
  });

  it('abort() aborts the child only, never the parent', () => {
    const parent = new AbortController();
    const scope = linkSignals(parent.signal);
    scope.abort('mine');
    expect(scope.signal.reason).toBe('mine');
    expect(parent.signal.aborted).toBe(false);
    expect(listeners(parent.signal)).toBe(0);
  });

  it('is Disposable: `using` detaches at block end', () => {
    const parent = new AbortController();
    {
      using scope = linkSignals(parent.signal);
      expect(scope.signal.aborted).toBe(false);
      expect(listeners(parent.signal)).toBe(1);
    }
    expect(listeners(parent.signal)).toBe(0);
  });
});

describe('deadline', () => {
  it('aborts with TimeoutError(ms) exactly at ms', async () => {
    vi.useFakeTimers();
    const scope = deadline(100);
    await vi.advanceTimersByTimeAsync(99);
    expect(scope.signal.aborted).toBe(false);
    await vi.advanceTimersByTimeAsync(1);
    expect(scope.signal.reason).toBeInstanceOf(TimeoutError);
    expect((scope.signal.reason as TimeoutError).ms).toBe(100);
  });

  it('dispose clears the timer so nothing fires later', async () => {
    vi.useFakeTimers();
    const scope = deadline(100);
    expect(vi.getTimerCount()).toBe(1);
    scope.dispose();
    expect(vi.getTimerCount()).toBe(0);
    await vi.advanceTimersByTimeAsync(200);
    expect(scope.signal.aborted).toBe(false);
  });

  it('a parent abort wins with its own reason and clears the timer', () => {
    vi.useFakeTimers();
    const parent = new AbortController();
    const scope = deadline(100, { signal: parent.signal });
    parent.abort('shutdown');
    expect(scope.signal.reason).toBe('shutdown');
    expect(vi.getTimerCount()).toBe(0);
  });

  it('aborts the controller it is given, whose signal is the scope’s, and leaves it alone on dispose', async () => {
    vi.useFakeTimers();
    const owned = new AbortController();
    const scope = deadline(100, { controller: owned });
    expect(scope.signal).toBe(owned.signal);
    await vi.advanceTimersByTimeAsync(100);
    expect(owned.signal.reason).toBeInstanceOf(TimeoutError);

    const other = new AbortController();
    const early = deadline(100, { controller: other });
    early.abort('stopped');
    expect(other.signal.reason).toBe('stopped');
    expect(vi.getTimerCount()).toBe(0);

    const kept = new AbortController();
    const disposed = deadline(100, { controller: kept });
    disposed.dispose();
    expect(vi.getTimerCount()).toBe(0);
    await vi.advanceTimersByTimeAsync(200);
    expect(kept.signal.aborted).toBe(false);

    // Its owner aborts it: the scope's signal is that signal; dispose still clears the timer.
    const byOwner = new AbortController();
    const owner = deadline(100, { controller: byOwner });
    byOwner.abort('client gone');
    expect(owner.signal.reason).toBe('client gone');
    owner.dispose();
    expect(vi.getTimerCount()).toBe(0);
  });

  it('with a controller already aborted: no timer, no parent listened to', () => {
    vi.useFakeTimers();
    const owned = new AbortController();
    owned.abort('before');
    const parent = new AbortController();
    const scope = deadline(100, { controller: owned, signal: parent.signal });
    expect(scope.signal.reason).toBe('before');
    expect(vi.getTimerCount()).toBe(0);
    expect(listeners(parent.signal)).toBe(0);
  });

  it('links several parents: the first to abort wins, and dispose detaches from all of them', () => {
    const request = new AbortController();
    const shutdown = new AbortController();
    const scope = deadline(1000, { signal: [request.signal, undefined, shutdown.signal] });
    expect([listeners(request.signal), listeners(shutdown.signal)]).toEqual([1, 1]);
    shutdown.abort('shutting down');
    expect(scope.signal.reason).toBe('shutting down');
    expect([listeners(request.signal), listeners(shutdown.signal)]).toEqual([0, 0]);

    const other = deadline(1000, { signal: [request.signal, shutdown.signal] });
    expect(other.signal.reason).toBe('shutting down'); // an already-aborted parent aborts it at once
    expect(listeners(request.signal)).toBe(0);
    const third = deadline(1000, { signal: [request.signal, new AbortController().signal] });
    const { dispose } = third; // destructured, still bound
    dispose();
    dispose();
    expect(listeners(request.signal)).toBe(0);
    request.abort('late');
    expect(third.signal.aborted).toBe(false);
  });

  it('runs on an injected clock', async () => {
    const clock = new ManualClock();
    const scope = deadline(50, { clock });
    await clock.advance(49);
    expect(scope.signal.aborted).toBe(false);
    await clock.advance(1);
    expect(scope.signal.reason).toBeInstanceOf(TimeoutError);
    expect(clock.pendingTimers).toBe(0);
  });

  it('Infinity means no deadline; negative or NaN is a RangeError', () => {
    vi.useFakeTimers();
    const scope = deadline(Infinity);
    expect(vi.getTimerCount()).toBe(0);
    expect(scope.signal.aborted).toBe(false);
    expect(() => deadline(-1)).toThrow(RangeError);
    expect(() => deadline(Number.NaN)).toThrow(RangeError);
  });

  it('deadline(0) aborts on the next timer turn', async () => {
    vi.useFakeTimers();
    const scope = deadline(0);
    expect(scope.signal.aborted).toBe(false);
    await vi.advanceTimersByTimeAsync(0);
    expect(scope.signal.reason).toBeInstanceOf(TimeoutError);
  });
});

describe('withTimeout', () => {
  it('returns the value and clears its timer when the work is fast', async () => {
    vi.useFakeTimers();
    const result = withTimeout(async () => Promise.resolve(42), 1_000);
    await expect(result).resolves.toBe(42);
    expect(vi.getTimerCount()).toBe(0);
  });

  it('rejects with TimeoutError at the deadline and aborts the work (not just abandons it)', async () => {
    vi.useFakeTimers();
    let seen: AbortSignal | undefined;
    const cleanup = vi.fn();
    const result = track(
      withTimeout(
        (signal) =>
          new Promise<never>((_, reject) => {
            seen = signal;
            signal.addEventListener('abort', () => {
              cleanup();
              reject(new Error('work noticed the abort'));
            });
          }),
        100,
      ),
    );
    await vi.advanceTimersByTimeAsync(99);
    expect(result.current.state).toBe('pending');
    await vi.advanceTimersByTimeAsync(1);
    expect(result.current).toEqual({ state: 'rejected', reason: expect.any(TimeoutError) as unknown });
    expect(seen?.aborted).toBe(true);
    expect(cleanup).toHaveBeenCalledOnce();
  });

  it('rejects at the deadline even when the work ignores its signal', async () => {
    vi.useFakeTimers();
    let finished = false;
    const result = track(
      withTimeout(async () => {
        await new Promise((resolve) => setTimeout(resolve, 1_000));
        finished = true;
      }, 100),
    );
    await vi.advanceTimersByTimeAsync(100);
    expect(result.current.state).toBe('rejected');
    expect(finished).toBe(false);
    await vi.advanceTimersByTimeAsync(900);
    expect(finished).toBe(true);
  });

  it('a parent abort rejects with the parent reason and never calls fn when already aborted', async () => {
    const fn = vi.fn(async () => Promise.resolve(1));
    await expect(withTimeout(fn, 100, { signal: AbortSignal.abort('gone') })).rejects.toBe('gone');
    expect(fn).not.toHaveBeenCalled();

    const parent = new AbortController();
    const result = withTimeout((signal) => abortable(signal), 1_000, { signal: parent.signal });
    parent.abort('parent');
    await expect(result).rejects.toBe('parent');
  });

  it('passes the work its own failure', async () => {
    const failure = new Error('bad input');
    await expect(withTimeout(() => Promise.reject(failure), 1_000)).rejects.toBe(failure);
  });

  it('times out with real timers', async () => {
    const started = performance.now();
    const result = withTimeout((signal) => abortable(signal), 20);
    await expect(result).rejects.toBeInstanceOf(TimeoutError);
    const elapsed = performance.now() - started;
    expect(elapsed).toBeGreaterThanOrEqual(18);
    expect(elapsed).toBeLessThan(500);
  });
});
