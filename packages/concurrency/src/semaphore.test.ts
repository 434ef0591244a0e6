import { afterEach, describe, expect, it, vi } from 'vitest';
import { sleep } from './clock';
import { TimeoutError } from './errors';
import { Mutex, Semaphore } from './semaphore';
import { deadline } from './signals';
import { flush, track } from './test-utils';

afterEach(() => {
  vi.useRealTimers();
});

describe('Semaphore', () => {
  it('admits at most `permits` holders and hands permits to waiters in FIFO order', async () => {
    const sem = new Semaphore(2);
    const first = await sem.acquire();
    const second = await sem.acquire();
    expect(sem.available).toBe(0);
    const order: string[] = [];
    const c = sem.acquire().then((permit) => (order.push('c'), permit));
    const d = sem.acquire().then((permit) => (order.push('d'), permit));
    await flush();
    expect(order).toEqual([]);
    expect(sem.waiting).toBe(2);
    first.release();
    await flush();
    expect(order).toEqual(['c']);
    second.release();
    (await c).release();
    (await d).release();
    expect(order).toEqual(['c', 'd']);
    expect(sem.available).toBe(2);
  });

  it('an aborted waiter leaves the queue at once and never acquires', async () => {
    const sem = new Semaphore(1);
    const held = await sem.acquire();
    const controller = new AbortController();
    const aborted = track(sem.acquire({ signal: controller.signal }));
    const next = track(sem.acquire());
    await flush();
    expect(sem.waiting).toBe(2);
    controller.abort('gave up');
    await flush();
    expect(aborted.current).toEqual({ state: 'rejected', reason: 'gave up' });
    expect(sem.waiting).toBe(1);
    held.release();
    await flush();
    expect(next.current.state).toBe('fulfilled');
    if (next.current.state === 'fulfilled') next.current.value.release();
    expect(sem.available).toBe(1);
  });

  it('`using` releases at block end, even when the block throws', async () => {
    const sem = new Semaphore(1);
    const attempt = async (): Promise<void> => {
      using _permit = await sem.acquire();
      expect(sem.available).toBe(0);
      await Promise.resolve();
      throw new Error('inside');
    };
    await expect(attempt()).rejects.toThrow('inside');
    expect(sem.available).toBe(1);
  });

  it('releasing twice returns one permit', async () => {
    const sem = new Semaphore(1);
    const permit = await sem.acquire();
    permit.release();
    permit.release();
    permit[Symbol.dispose]();
    expect(sem.available).toBe(1);
  });

  it('tryAcquire does not barge past waiters', async () => {
    const sem = new Semaphore(1);
    const held = sem.tryAcquire();
    expect(held).toBeDefined();
    expect(sem.tryAcquire()).toBeUndefined();
    const waiter = track(sem.acquire());
    held?.release(); // goes straight to the waiter...
    expect(sem.tryAcquire()).toBeUndefined(); // ...so a newcomer gets nothing
    await flush();
    expect(waiter.current.state).toBe('fulfilled');
  });

  it('rejects an already-aborted signal even when a permit is free', async () => {
    const sem = new Semaphore(1);
    await expect(sem.acquire({ signal: AbortSignal.abort('no') })).rejects.toBe('no');
    expect(sem.available).toBe(1);
  });

  it('a deadline signal times a waiter out under fake timers', async () => {
    vi.useFakeTimers();
    const sem = new Semaphore(1);
    const held = await sem.acquire();
    const scope = deadline(100);
    const waiter = track(sem.acquire({ signal: scope.signal }));
    await vi.advanceTimersByTimeAsync(99);
    expect(waiter.current.state).toBe('pending');
    await vi.advanceTimersByTimeAsync(1);
    expect(waiter.current.state).toBe('rejected');
    expect(waiter.current.state === 'rejected' && waiter.current.reason).toBeInstanceOf(TimeoutError);
    expect(sem.waiting).toBe(0);
    held.release();
    expect(sem.available).toBe(1);
  });

  it('runExclusive limits concurrency with real timers and releases on failure', async () => {
    const sem = new Semaphore(3);
    let running = 0;
    let maxRunning = 0;
    await Promise.all(
      Array.from({ length: 12 }, (_, i) =>
        sem.runExclusive(async () => {
          running++;
          maxRunning = Math.max(maxRunning, running);
          await sleep(1 + (i % 3));
          running--;
        }),
      ),
    );
    expect(maxRunning).toBe(3);
    await expect(sem.runExclusive(() => Promise.reject(new Error('x')))).rejects.toThrow('x');
    expect(sem.available).toBe(3);
  });

  it('rejects a non-positive or fractional permit count', () => {
    expect(() => new Semaphore(0)).toThrow(RangeError);
    expect(() => new Semaphore(1.5)).toThrow(RangeError);
  });
});

describe('Mutex', () => {
  it('runs critical sections one at a time, in call order', async () => {
    const mutex = new Mutex();
    const log: string[] = [];
    const section = (name: string, ms: number) =>
      mutex.runExclusive(async () => {
        log.push(`${name}:in`);
        await sleep(ms);
        log.push(`${name}:out`);
        return name;
      });
    const results = await Promise.all([section('a', 5), section('b', 1), section('c', 1)]);
    expect(results).toEqual(['a', 'b', 'c']);
    expect(log).toEqual(['a:in', 'a:out', 'b:in', 'b:out', 'c:in', 'c:out']);
  });

  it('reports locked and supports `using`', async () => {
    const mutex = new Mutex();
    {
      using _lock = await mutex.acquire();
      expect(mutex.locked).toBe(true);
      expect(mutex.tryAcquire()).toBeUndefined();
    }
    expect(mutex.locked).toBe(false);
  });
});
