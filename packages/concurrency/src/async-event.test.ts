import { afterEach, describe, expect, it, vi } from 'vitest';
import { AsyncEvent } from './async-event';
import { TimeoutError } from './errors';
import { deadline } from './signals';
import { flush, track } from './test-utils';

afterEach(() => {
  vi.useRealTimers();
});

describe('AsyncEvent', () => {
  it('set() wakes every waiter', async () => {
    const event = new AsyncEvent();
    const a = track(event.wait());
    const b = track(event.wait());
    await flush();
    expect([a.current.state, b.current.state]).toEqual(['pending', 'pending']);
    event.set();
    await flush();
    expect([a.current.state, b.current.state]).toEqual(['fulfilled', 'fulfilled']);
    expect(event.isSet()).toBe(true);
  });

  it('wait() after set resolves at once; clear() makes it wait again', async () => {
    const event = new AsyncEvent();
    event.set();
    await expect(event.wait()).resolves.toBeUndefined();
    event.clear();
    expect(event.isSet()).toBe(false);
    const again = track(event.wait());
    await flush();
    expect(again.current.state).toBe('pending');
    event.set();
    await flush();
    expect(again.current.state).toBe('fulfilled');
  });

  it('an aborted wait rejects with the reason and leaves the others waiting', async () => {
    const event = new AsyncEvent();
    const controller = new AbortController();
    const aborted = track(event.wait({ signal: controller.signal }));
    const other = track(event.wait());
    controller.abort('bye');
    await flush();
    expect(aborted.current).toEqual({ state: 'rejected', reason: 'bye' });
    expect(other.current.state).toBe('pending');
    event.set();
    await flush();
    expect(other.current.state).toBe('fulfilled');
    expect(aborted.current.state).toBe('rejected');
  });

  it('times out through a deadline signal under fake timers', async () => {
    vi.useFakeTimers();
    const event = new AsyncEvent();
    const waited = track(event.wait({ signal: deadline(30).signal }));
    await vi.advanceTimersByTimeAsync(29);
    expect(waited.current.state).toBe('pending');
    await vi.advanceTimersByTimeAsync(1);
    expect(waited.current.state === 'rejected' && waited.current.reason).toBeInstanceOf(TimeoutError);
  });

  it('an already-aborted signal rejects even when set', async () => {
    const event = new AsyncEvent();
    event.set();
    await expect(event.wait({ signal: AbortSignal.abort('no') })).rejects.toBe('no');
  });
});
