import { getEventListeners } from 'node:events';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { sleep, systemClock } from './clock';
import { ManualClock, track } from './test-utils';

afterEach(() => {
  vi.useRealTimers();
});

describe('systemClock', () => {
  it('reads the globals at call time, so fake timers installed after import drive it', async () => {
    vi.useFakeTimers({ now: 1_000 });
    const fired = vi.fn();
    const handle = systemClock.setTimeout(fired, 50);
    expect(systemClock.now()).toBe(1_000);
    await vi.advanceTimersByTimeAsync(49);
    expect(fired).not.toHaveBeenCalled();
    await vi.advanceTimersByTimeAsync(1);
    expect(fired).toHaveBeenCalledOnce();
    expect(systemClock.now()).toBe(1_050);
    systemClock.clearTimeout(handle);
  });

  it('clearTimeout cancels a pending timer', async () => {
    vi.useFakeTimers();
    const fired = vi.fn();
    systemClock.clearTimeout(systemClock.setTimeout(fired, 10));
    await vi.advanceTimersByTimeAsync(100);
    expect(fired).not.toHaveBeenCalled();
  });
});

describe('sleep', () => {
  it('resolves exactly at ms under fake timers, not a tick earlier', async () => {
    vi.useFakeTimers();
    const slept = track(sleep(100));
    await vi.advanceTimersByTimeAsync(99);
    expect(slept.current.state).toBe('pending');
    await vi.advanceTimersByTimeAsync(1);
    expect(slept.current.state).toBe('fulfilled');
  });

  it('uses the injected clock and leaves global timers alone', async () => {
    vi.useFakeTimers();
    const clock = new ManualClock();
    const slept = track(sleep(30, { clock }));
    expect(vi.getTimerCount()).toBe(0);
    expect(clock.pendingTimers).toBe(1);
    vi.useRealTimers();
    await clock.advance(29);
    expect(slept.current.state).toBe('pending');
    await clock.advance(1);
    expect(slept.current.state).toBe('fulfilled');
  });

  it('rejects with the signal reason on abort and clears its timer', async () => {
    vi.useFakeTimers();
    const controller = new AbortController();
    const slept = sleep(1_000, { signal: controller.signal });
    expect(vi.getTimerCount()).toBe(1);
    const reason = new Error('stop');
    controller.abort(reason);
    await expect(slept).rejects.toBe(reason);
    expect(vi.getTimerCount()).toBe(0);
  });

  it('rejects at once, scheduling nothing, when the signal is already aborted', async () => {
    vi.useFakeTimers();
    const reason = new Error('already');
    await expect(sleep(10, { signal: AbortSignal.abort(reason) })).rejects.toBe(reason);
    expect(vi.getTimerCount()).toBe(0);
  });

  it('removes its abort listener once it resolves', async () => {
    const controller = new AbortController();
    const slept = sleep(5, { signal: controller.signal });
    expect(getEventListeners(controller.signal, 'abort')).toHaveLength(1);
    await slept;
    expect(getEventListeners(controller.signal, 'abort')).toHaveLength(0);
  });

  it('waits roughly ms with real timers', async () => {
    const started = performance.now();
    await sleep(20);
    expect(performance.now() - started).toBeGreaterThanOrEqual(18);
  });
});
