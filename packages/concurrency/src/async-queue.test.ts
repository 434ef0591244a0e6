import { afterEach, describe, expect, it, vi } from 'vitest';
import { AsyncQueue, QueueClosedError } from './async-queue';
import { sleep } from './clock';
import { deadline } from './signals';
import { flush, track } from './test-utils';

afterEach(() => {
  vi.useRealTimers();
});

describe('AsyncQueue', () => {
  it('is FIFO', async () => {
    const queue = new AsyncQueue<number>();
    await queue.put(1);
    await queue.put(2);
    expect(queue.tryPut(3)).toBe(true);
    expect([await queue.get(), await queue.get(), await queue.get()]).toEqual([1, 2, 3]);
  });

  it('put blocks while full and resumes when a get frees a slot', async () => {
    const queue = new AsyncQueue<string>(1);
    await queue.put('a');
    const blocked = track(queue.put('b'));
    await flush();
    expect(blocked.current.state).toBe('pending');
    expect(queue.tryPut('c')).toBe(false);
    expect(await queue.get()).toBe('a');
    await flush();
    expect(blocked.current.state).toBe('fulfilled');
    expect(queue.size).toBe(1);
    expect(await queue.get()).toBe('b');
  });

  it('get blocks while empty and receives the next put', async () => {
    const queue = new AsyncQueue<string>(1);
    const waiting = track(queue.get());
    await flush();
    expect(waiting.current.state).toBe('pending');
    await queue.put('x');
    await flush();
    expect(waiting.current).toEqual({ state: 'fulfilled', value: 'x' });
    expect(queue.size).toBe(0);
  });

  it('an aborted get leaves the queue: the next item is buffered, not lost to it', async () => {
    const queue = new AsyncQueue<number>();
    const controller = new AbortController();
    const aborted = track(queue.get({ signal: controller.signal }));
    controller.abort('stop');
    await flush();
    expect(aborted.current).toEqual({ state: 'rejected', reason: 'stop' });
    await queue.put(7);
    expect(queue.size).toBe(1);
    expect(await queue.get()).toBe(7);
  });

  it('an aborted put never enqueues its item', async () => {
    const queue = new AsyncQueue<string>(1);
    await queue.put('kept');
    const controller = new AbortController();
    const aborted = track(queue.put('dropped', { signal: controller.signal }));
    controller.abort('nope');
    await flush();
    expect(aborted.current).toEqual({ state: 'rejected', reason: 'nope' });
    expect(await queue.get()).toBe('kept');
    expect(queue.size).toBe(0);
  });

  it('close(): buffered items drain, then get rejects and put throws', async () => {
    const queue = new AsyncQueue<number>();
    await queue.put(1);
    await queue.put(2);
    queue.close();
    expect(queue.closed).toBe(true);
    await expect(queue.put(3)).rejects.toBeInstanceOf(QueueClosedError);
    expect(() => queue.tryPut(3)).toThrow(QueueClosedError);
    expect(await queue.get()).toBe(1);
    expect(await queue.get()).toBe(2);
    await expect(queue.get()).rejects.toBeInstanceOf(QueueClosedError);
  });

  it('close() wakes parked getters and fails parked putters', async () => {
    const empty = new AsyncQueue<number>();
    const parkedGet = track(empty.get());
    const full = new AsyncQueue<number>(1);
    await full.put(1);
    const parkedPut = track(full.put(2));
    await flush();
    empty.close();
    full.close();
    await flush();
    expect(parkedGet.current.state === 'rejected' && parkedGet.current.reason).toBeInstanceOf(QueueClosedError);
    expect(parkedPut.current.state === 'rejected' && parkedPut.current.reason).toBeInstanceOf(QueueClosedError);
    expect(await full.get()).toBe(1);
  });

  it('for await drains and ends on close, with backpressure on the producer', async () => {
    const queue = new AsyncQueue<number>(2);
    let maxBuffered = 0;
    const producer = (async () => {
      for (let i = 0; i < 20; i++) {
        await queue.put(i);
        maxBuffered = Math.max(maxBuffered, queue.size);
      }
      queue.close();
    })();
    const received: number[] = [];
    for await (const item of queue) {
      received.push(item);
      if (item % 5 === 0) await sleep(1);
    }
    await producer;
    expect(received).toEqual([...Array(20).keys()]);
    expect(maxBuffered).toBeLessThanOrEqual(2);
  });

  it('values({ signal }) stops iterating with the abort reason (fake timers)', async () => {
    vi.useFakeTimers();
    const queue = new AsyncQueue<number>();
    const scope = deadline(50);
    const received: number[] = [];
    const consumed = track(
      (async () => {
        for await (const item of queue.values({ signal: scope.signal })) received.push(item);
      })(),
    );
    await queue.put(1);
    await vi.advanceTimersByTimeAsync(49);
    expect(consumed.current.state).toBe('pending');
    await vi.advanceTimersByTimeAsync(1);
    expect(consumed.current.state).toBe('rejected');
    expect(received).toEqual([1]);
    await queue.put(2);
    expect(queue.size).toBe(1); // the aborted consumer took nothing
  });

  it('rejects a capacity below 1', () => {
    expect(() => new AsyncQueue(0)).toThrow(RangeError);
    expect(() => new AsyncQueue(Number.NaN)).toThrow(RangeError);
  });
});
