import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { pollOverlapping } from './stats-poller';

interface Ask {
  signal: AbortSignal;
  resolve: (value: number) => void;
  reject: (error: unknown) => void;
}

/** A poll whose asks the test answers by hand. */
function startPoll(stop: AbortController, maxPending = 3) {
  const asks: Ask[] = [];
  const answers: { data: number; latencyMs: number }[] = [];
  const errors: unknown[] = [];
  pollOverlapping<number>({
    ask: (signal) => new Promise<number>((resolve, reject) => { asks.push({ signal, resolve, reject }); }),
    intervalMs: 500,
    maxPending,
    signal: stop.signal,
    onAnswer: (data, latencyMs) => { answers.push({ data, latencyMs }); },
    onError: (error) => { errors.push(error); },
  });
  return { asks, answers, errors };
}

const at = (asks: Ask[], i: number): Ask => {
  const ask = asks[i];
  if (!ask) throw new Error(`no ask ${i}`);
  return ask;
};

describe('pollOverlapping (the server panel’s activity.stats poll)', () => {
  beforeEach(() => { vi.useFakeTimers(); });
  afterEach(() => { vi.useRealTimers(); });

  it('asks at once, then every interval without waiting for the answers, each ask with the poll’s signal', async () => {
    const stop = new AbortController();
    const { asks, answers } = startPoll(stop);
    expect(asks).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(1000);
    expect(asks).toHaveLength(3);
    for (const ask of asks) expect(ask.signal).toBe(stop.signal);
    vi.advanceTimersByTime(20);
    at(asks, 2).resolve(3);
    await vi.advanceTimersByTimeAsync(0);
    expect(answers).toEqual([{ data: 3, latencyMs: 20 }]);
    stop.abort();
  });

  it('skips a tick while maxPending asks are unanswered, and asks again once one answers', async () => {
    const stop = new AbortController();
    const { asks } = startPoll(stop, 2);
    await vi.advanceTimersByTimeAsync(2000);
    expect(asks).toHaveLength(2);
    at(asks, 0).resolve(1);
    await vi.advanceTimersByTimeAsync(500);
    expect(asks).toHaveLength(3);
    stop.abort();
  });

  it('shows the newest answer: an older one (or an older failure) arriving after it is dropped', async () => {
    const stop = new AbortController();
    const { asks, answers, errors } = startPoll(stop);
    await vi.advanceTimersByTimeAsync(1000);
    at(asks, 2).resolve(3);
    await vi.advanceTimersByTimeAsync(0);
    at(asks, 0).resolve(1);
    at(asks, 1).reject(new Error('late'));
    await vi.advanceTimersByTimeAsync(500);
    at(asks, 3).reject(new Error('newest failed'));
    await vi.advanceTimersByTimeAsync(0);
    expect(answers.map((a) => a.data)).toEqual([3]);
    expect(errors).toEqual([new Error('newest failed')]);
    stop.abort();
  });

  it('on abort: the asks in flight see it, no ask follows, and nothing is reported, whatever settles later', async () => {
    const stop = new AbortController();
    const { asks, answers, errors } = startPoll(stop);
    await vi.advanceTimersByTimeAsync(500);
    expect(asks).toHaveLength(2);
    stop.abort();
    for (const ask of asks) expect(ask.signal.aborted).toBe(true);
    at(asks, 0).resolve(1);
    at(asks, 1).reject(new Error('aborted'));
    await vi.advanceTimersByTimeAsync(5000);
    expect(asks).toHaveLength(2);
    expect(answers).toEqual([]);
    expect(errors).toEqual([]);
    expect(vi.getTimerCount()).toBe(0);
  });

  it('an ask that throws instead of rejecting is reported as that poll’s error, and polling goes on', async () => {
    const stop = new AbortController();
    const errors: unknown[] = [];
    let calls = 0;
    pollOverlapping<number>({
      ask: () => {
        calls++;
        throw new Error('no client');
      },
      intervalMs: 500,
      maxPending: 1,
      signal: stop.signal,
      onAnswer: () => undefined,
      onError: (error) => { errors.push(error); },
    });
    await vi.advanceTimersByTimeAsync(500);
    expect(calls).toBe(2);
    expect(errors).toEqual([new Error('no client'), new Error('no client')]);
    stop.abort();
  });

  it('started with an aborted signal, it asks nothing and sets no timer', () => {
    const stop = new AbortController();
    stop.abort();
    const { asks } = startPoll(stop);
    expect(asks).toHaveLength(0);
    expect(vi.getTimerCount()).toBe(0);
  });
});
