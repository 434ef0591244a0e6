import { getEventListeners } from 'node:events';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { sleep } from './clock';
import { AbortError, TimeoutError } from './errors';
import { TaskGroup, TaskGroupError, gather, type TaskEvent } from './task-group';
import { ManualClock, track } from './test-utils';

afterEach(() => {
  vi.useRealTimers();
});

/** A well-behaved task body: never finishes on its own, rejects with the signal's reason when aborted. */
const untilAborted = (signal: AbortSignal): Promise<never> =>
  new Promise<never>((_, reject) => {
    signal.addEventListener('abort', () => {
      reject(signal.reason as Error);
    });
  });

const transient = (): Error => Object.assign(new Error('transient'), { retryable: true });

describe('TaskGroup fail-fast', () => {
  it('the first failure cancels running and queued siblings; their cleanup has run before wait() rejects', async () => {
    const cleanedUp: string[] = [];
    const started: string[] = [];
    const group = new TaskGroup({ mode: 'fail-fast', concurrency: 3 });
    const sibling = (name: string) => async (signal: AbortSignal) => {
      started.push(name);
      try {
        await untilAborted(signal);
      } finally {
        await sleep(5); // async cleanup, e.g. releasing a connection
        cleanedUp.push(name);
      }
    };
    const boom = new Error('boom');
    const a = group.spawn(sibling('a'));
    group.spawn(sibling('b'));
    const failing = group.spawn(
      async () => {
        await sleep(10);
        throw boom;
      },
      { label: 'failing' },
    );
    group.spawn(sibling('queued'));

    const error: unknown = await group.wait().catch((e: unknown) => e);

    expect(cleanedUp.sort()).toEqual(['a', 'b']);
    expect(started).not.toContain('queued');
    expect(error).toBeInstanceOf(TaskGroupError);
    expect(error).toBeInstanceOf(AggregateError);
    const groupError = error as TaskGroupError;
    expect(groupError.errors).toEqual([boom]); // only the real failure, not the three cancellations
    expect(groupError.failedTaskId).toBe(failing.id);
    expect(groupError.cause).toBe(boom);
    expect(groupError.failures).toEqual([{ taskId: failing.id, label: 'failing', error: boom }]);
    await expect(failing.promise).rejects.toBe(boom);
    const siblingReason: unknown = await a.promise.catch((e: unknown) => e);
    expect(siblingReason).toBeInstanceOf(AbortError);
    expect((siblingReason as AbortError).cause).toBe(boom);
    expect(group.signal.aborted).toBe(true);
  });

  it('collects every real failure, including one thrown while a sibling unwinds from cancellation', async () => {
    const group = new TaskGroup({ mode: 'fail-fast' });
    const first = new Error('first');
    const duringCleanup = new Error('cleanup failed');
    group.spawn(async (signal) => {
      try {
        await untilAborted(signal);
      } catch {
        throw duringCleanup;
      }
    });
    group.spawn(() => Promise.reject(first));
    const error = (await group.wait().catch((e: unknown) => e)) as TaskGroupError;
    expect(error.errors).toEqual([first, duringCleanup]);
  });

  it('cancelling one task does not fail the group', async () => {
    const group = new TaskGroup({ mode: 'fail-fast' });
    const doomed = group.spawn(untilAborted);
    const fine = group.spawn(async () => {
      await sleep(5);
      return 'fine';
    });
    doomed.cancel('not needed');
    const outcomes = await group.wait();
    expect(outcomes.map((o) => o.status)).toEqual(['cancelled', 'fulfilled']);
    expect(outcomes[0]).toMatchObject({ status: 'cancelled', reason: 'not needed' });
    await expect(doomed.promise).rejects.toBe('not needed');
    await expect(fine.promise).resolves.toBe('fine');
  });
});

describe('TaskGroup concurrency', () => {
  it('never runs more than the limit over 50 tasks, and reaches it', async () => {
    const group = new TaskGroup({ mode: 'fail-fast', concurrency: 4 });
    let running = 0;
    let maxRunning = 0;
    for (let i = 0; i < 50; i++) {
      group.spawn(async () => {
        running++;
        maxRunning = Math.max(maxRunning, running);
        await sleep(i % 4);
        running--;
        return i;
      });
    }
    const outcomes = await group.wait();
    expect(maxRunning).toBe(4);
    expect(outcomes.map((o) => (o.status === 'fulfilled' ? o.value : null))).toEqual([...Array(50).keys()]);
  });

  it('a cancelled task that ignores its signal keeps its slot until it really ends', async () => {
    vi.useFakeTimers();
    const group = new TaskGroup({ mode: 'settled', concurrency: 1 });
    const timeline: string[] = [];
    const stubborn = group.spawn(async () => {
      await new Promise((resolve) => setTimeout(resolve, 100));
      timeline.push('stubborn ended');
    });
    group.spawn(async () => {
      timeline.push('next started');
      return Promise.resolve();
    });
    stubborn.cancel();
    await vi.advanceTimersByTimeAsync(99);
    expect(timeline).toEqual([]);
    await vi.advanceTimersByTimeAsync(1);
    expect(timeline).toEqual(['stubborn ended', 'next started']);
    await group.wait();
  });

  it('a task cancelled after a slot was handed to it, but before it ran, never starts', async () => {
    const events: string[] = [];
    const group = new TaskGroup({
      mode: 'settled',
      concurrency: 1,
      onEvent: (event) => {
        events.push(`${event.type} ${event.taskId}`);
        // Queued now, before the slot is released: runs after the release has handed it to task-2.
        if (event.type === 'settled' && event.taskId === 'task-1') queueMicrotask(() => {
          second.cancel('too late');
        });
      },
    });
    group.spawn(() => Promise.resolve('first'));
    const fn = vi.fn(() => Promise.resolve('second'));
    const second = group.spawn(fn);
    const outcomes = await group.wait();
    expect(fn).not.toHaveBeenCalled();
    expect(outcomes[1]).toMatchObject({ status: 'cancelled', reason: 'too late', durationMs: 0 });
    expect(events).toEqual(['queued task-1', 'started task-1', 'queued task-2', 'settled task-1', 'cancelled task-2']);
  });

  it('queued tasks of a cancelled group never start', async () => {
    const group = new TaskGroup({ mode: 'settled', concurrency: 1 });
    const started: number[] = [];
    for (let i = 0; i < 5; i++) {
      group.spawn(async (signal) => {
        started.push(i);
        return untilAborted(signal);
      });
    }
    await sleep(5);
    group.cancel('shutting down');
    const outcomes = await group.wait();
    expect(started).toEqual([0]);
    expect(outcomes.map((o) => o.status)).toEqual(Array(5).fill('cancelled'));
    expect(outcomes.every((o) => o.status === 'cancelled' && o.reason === 'shutting down')).toBe(true);
    expect(outcomes.slice(1).map((o) => o.durationMs)).toEqual([0, 0, 0, 0]);
  });
});

describe('TaskGroup settled mode', () => {
  it('reports every outcome in spawn order, like gather(return_exceptions=True)', async () => {
    vi.useFakeTimers({ now: 0 });
    const group = new TaskGroup({ mode: 'settled', concurrency: 3 });
    const failure = new Error('nope');
    group.spawn(
      async () => {
        await sleep(30);
        return 'slow value';
      },
      { label: 'slow' },
    );
    group.spawn(
      async () => {
        await sleep(10);
        throw failure;
      },
      { id: 'custom-id' },
    );
    const cancelledWhileRunning = group.spawn(untilAborted);
    const cancelledWhileQueued = group.spawn(() => Promise.resolve('never'));
    cancelledWhileQueued.cancel('too late');
    const waited = track(group.wait());
    await vi.advanceTimersByTimeAsync(20);
    cancelledWhileRunning.cancel('enough');
    await vi.advanceTimersByTimeAsync(10);

    expect(waited.current).toEqual({
      state: 'fulfilled',
      value: [
        { id: 'task-1', label: 'slow', status: 'fulfilled', value: 'slow value', durationMs: 30 },
        { id: 'custom-id', label: undefined, status: 'rejected', reason: failure, durationMs: 10 },
        { id: 'task-3', label: undefined, status: 'cancelled', reason: 'enough', durationMs: 20 },
        { id: 'task-4', label: undefined, status: 'cancelled', reason: 'too late', durationMs: 0 },
      ],
    });
  });

  it('a failure does not cancel siblings', async () => {
    const group = new TaskGroup({ mode: 'settled' });
    group.spawn(() => Promise.reject(new Error('x')));
    const other = group.spawn(async (signal) => {
      await sleep(10);
      return signal.aborted;
    });
    await group.wait();
    await expect(other.promise).resolves.toBe(false);
    expect(group.signal.aborted).toBe(false);
  });
});

describe('TaskGroup wait() and lifetime', () => {
  it('wait() does not return while a task that ignores its signal still runs', async () => {
    vi.useFakeTimers();
    const group = new TaskGroup({ mode: 'fail-fast' });
    let ended = false;
    group.spawn(async () => {
      await new Promise((resolve) => setTimeout(resolve, 1_000));
      ended = true;
    });
    group.spawn(untilAborted);
    group.cancel('stop');
    const waited = track(group.wait());
    await vi.advanceTimersByTimeAsync(999);
    expect(waited.current.state).toBe('pending');
    await vi.advanceTimersByTimeAsync(1);
    expect(ended).toBe(true);
    expect(waited.current).toEqual({ state: 'rejected', reason: 'stop' });
  });

  it('a parent abort cancels everything, wait() rejects with its reason, and the group lets go of the parent', async () => {
    const parent = new AbortController();
    const group = new TaskGroup({ mode: 'fail-fast', signal: parent.signal, concurrency: 1 });
    const seen: unknown[] = [];
    group.spawn(async (signal) => {
      try {
        await untilAborted(signal);
      } finally {
        seen.push(signal.reason);
      }
    });
    const queued = vi.fn(() => Promise.resolve());
    group.spawn(queued);
    const reason = new Error('request closed');
    parent.abort(reason);
    await expect(group.wait()).rejects.toBe(reason);
    expect(seen).toEqual([reason]);
    expect(queued).not.toHaveBeenCalled();
    expect(() => group.spawn(queued)).toThrow(/cannot spawn/);
  });

  it('removes its listener from a long-lived parent once done', async () => {
    const root = new AbortController();
    for (let i = 0; i < 20; i++) {
      const group = new TaskGroup({ mode: 'fail-fast', signal: root.signal });
      group.spawn(() => Promise.resolve(i));
      await group.wait();
    }
    expect(getEventListeners(root.signal, 'abort')).toHaveLength(0);
  });

  it('a group created under an aborted parent refuses to spawn', () => {
    const group = new TaskGroup({ mode: 'settled', signal: AbortSignal.abort('gone') });
    expect(() => group.spawn(() => Promise.resolve())).toThrow(/cancelled/);
  });

  it('spawn throws after wait() finished, after cancel(), and on a duplicate id', async () => {
    const finished = new TaskGroup({ mode: 'settled' });
    await expect(finished.wait()).resolves.toEqual([]);
    expect(() => finished.spawn(() => Promise.resolve())).toThrow(/finished/);

    const cancelled = new TaskGroup({ mode: 'settled' });
    cancelled.cancel();
    expect(() => cancelled.spawn(() => Promise.resolve())).toThrow(/cancelled/);

    const open = new TaskGroup({ mode: 'settled' });
    open.spawn(() => Promise.resolve(), { id: 'x' });
    expect(() => open.spawn(() => Promise.resolve(), { id: 'x' })).toThrow(/duplicate/);
    expect(() => open.spawn(() => Promise.resolve(), { timeoutMs: -1 })).toThrow(RangeError);
    expect(open.pending).toBe(1);
    await open.wait();
  });

  it('tasks may spawn siblings while wait() is pending; wait() includes them', async () => {
    const group = new TaskGroup({ mode: 'settled' });
    group.spawn(async () => {
      await sleep(5);
      group.spawn(async () => {
        await sleep(5);
        return 'child';
      });
      return 'parent';
    });
    const outcomes = await group.wait();
    expect(outcomes.map((o) => (o.status === 'fulfilled' ? o.value : o.status))).toEqual(['parent', 'child']);
  });

  it('a task spawned after the last settle but before wait() resumes is still awaited', async () => {
    let spawnedLate = false;
    const group: TaskGroup = new TaskGroup({
      mode: 'settled',
      onEvent: (event) => {
        if (event.type !== 'settled' || spawnedLate) return;
        spawnedLate = true;
        // Queued before wait()'s continuation: the pending count has just hit zero when this runs.
        queueMicrotask(() => group.spawn(() => sleep(5).then(() => 'late'), { id: 'late' }));
      },
    });
    group.spawn(() => Promise.resolve('first'));
    const outcomes = await group.wait();
    expect(outcomes.map((o) => o.id)).toEqual(['task-1', 'late']);
    expect(outcomes[1]).toMatchObject({ status: 'fulfilled', value: 'late' });
  });

  it('`await using` cancels what is left and awaits its cleanup on scope exit', async () => {
    let cleanedUp = false;
    let group: TaskGroup | undefined;
    {
      await using scoped = new TaskGroup({ mode: 'fail-fast' });
      group = scoped;
      scoped.spawn(async (signal) => {
        try {
          await untilAborted(signal);
        } finally {
          await sleep(5);
          cleanedUp = true;
        }
      });
    }
    expect(cleanedUp).toBe(true);
    expect(group.pending).toBe(0);
  });

  it('an unobserved failing handle causes no unhandled rejection', async () => {
    const group = new TaskGroup({ mode: 'settled' });
    group.spawn(() => Promise.reject(new Error('nobody listens to me')));
    const [outcome] = await group.wait();
    expect(outcome?.status).toBe('rejected');
    // vitest fails the run on an unhandled rejection, so reaching the end of the file is the assertion.
    await sleep(5);
  });

  it('a per-spawn signal cancels only that task', async () => {
    const group = new TaskGroup({ mode: 'fail-fast' });
    const own = new AbortController();
    const mine = group.spawn(untilAborted, { signal: own.signal });
    const other = group.spawn(async () => {
      await sleep(5);
      return 'other';
    });
    own.abort('only me');
    await expect(mine.promise).rejects.toBe('only me');
    await expect(other.promise).resolves.toBe('other');
    await expect(group.wait()).resolves.toHaveLength(2);
  });
});

describe('TaskGroup timeouts and retries', () => {
  it('timeoutMs counts from start, not while queued, and fails the task with TimeoutError', async () => {
    vi.useFakeTimers({ now: 0 });
    const group = new TaskGroup({ mode: 'settled', concurrency: 1 });
    group.spawn(() => sleep(100));
    const slow = group.spawn(untilAborted, { timeoutMs: 150 });
    const waited = track(group.wait());
    await vi.advanceTimersByTimeAsync(249);
    expect(waited.current.state).toBe('pending');
    await vi.advanceTimersByTimeAsync(1);
    expect(waited.current.state).toBe('fulfilled');
    const reason: unknown = await slow.promise.catch((e: unknown) => e);
    expect(reason).toBeInstanceOf(TimeoutError);
    expect((reason as TimeoutError).ms).toBe(150);
    expect(vi.getTimerCount()).toBe(0);
  });

  it('in fail-fast a timeout is a real failure that cancels siblings', async () => {
    const group = new TaskGroup({ mode: 'fail-fast' });
    const sibling = group.spawn(untilAborted);
    group.spawn(untilAborted, { timeoutMs: 10 });
    const error = (await group.wait().catch((e: unknown) => e)) as TaskGroupError;
    expect(error.errors).toHaveLength(1);
    expect(error.errors[0]).toBeInstanceOf(TimeoutError);
    await expect(sibling.promise).rejects.toBeInstanceOf(AbortError);
  });

  it('retries with the group policy; spawn can turn it off', async () => {
    const group = new TaskGroup({ mode: 'settled', retry: { retries: 3, minDelayMs: 1 } });
    const calls = { retried: 0, single: 0 };
    group.spawn(async (_signal, attempt) => {
      calls.retried++;
      if (attempt < 2) throw transient();
      return Promise.resolve(attempt);
    });
    group.spawn(
      () => {
        calls.single++;
        return Promise.reject(transient());
      },
      { retry: false },
    );
    const outcomes = await group.wait();
    expect(outcomes.map((o) => o.status)).toEqual(['fulfilled', 'rejected']);
    expect(calls).toEqual({ retried: 3, single: 1 });
  });

  it('cancelling during a retry backoff ends the task as cancelled, with no further attempt', async () => {
    vi.useFakeTimers();
    const group = new TaskGroup({ mode: 'settled' });
    const fn = vi.fn(() => Promise.reject(transient()));
    const handle = group.spawn(fn, { retry: { minDelayMs: 1_000, jitter: 'none' } });
    await vi.advanceTimersByTimeAsync(10);
    handle.cancel('enough');
    const [outcome] = await group.wait();
    expect(outcome).toMatchObject({ status: 'cancelled', reason: 'enough' });
    await vi.advanceTimersByTimeAsync(5_000);
    expect(fn).toHaveBeenCalledOnce();
  });
});

describe('TaskGroup events', () => {
  it('emits queued → started → retrying → settled | cancelled, stamped by the injected clock', async () => {
    const clock = new ManualClock();
    const events: TaskEvent[] = [];
    const group = new TaskGroup({ mode: 'settled', concurrency: 1, clock, onEvent: (e) => events.push(e) });
    const failure = transient();
    group.spawn(
      async (signal, attempt) => {
        await sleep(30, { clock, signal });
        if (attempt === 0) throw failure;
        return 'ok';
      },
      { id: 'flaky', label: 'load', retry: { minDelayMs: 100, jitter: 'none' } },
    );
    group.spawn(() => Promise.reject(new Error('bad')), { id: 'bad' });
    const never = group.spawn(() => Promise.resolve(), { id: 'never' });
    const waited = track(group.wait());
    await clock.advance(10);
    never.cancel('skip');
    await clock.advance(200);
    expect(waited.current.state).toBe('fulfilled');

    expect(events).toEqual([
      { type: 'queued', taskId: 'flaky', label: 'load', at: 0 },
      { type: 'started', taskId: 'flaky', label: 'load', at: 0 },
      { type: 'queued', taskId: 'bad', label: undefined, at: 0 },
      { type: 'queued', taskId: 'never', label: undefined, at: 0 },
      { type: 'cancelled', taskId: 'never', label: undefined, at: 10, reason: 'skip', durationMs: 0 },
      { type: 'retrying', taskId: 'flaky', label: 'load', at: 30, attempt: 0, error: failure, delayMs: 100 },
      { type: 'settled', taskId: 'flaky', label: 'load', at: 160, outcome: 'fulfilled', durationMs: 160 },
      { type: 'started', taskId: 'bad', label: undefined, at: 160 },
      { type: 'settled', taskId: 'bad', label: undefined, at: 160, outcome: 'rejected', error: expect.any(Error) as unknown, durationMs: 0 },
    ]);
  });
});

describe('gather', () => {
  it('resolves with the values in order, typed per position', async () => {
    const [n, s] = await gather([
      async () => {
        await sleep(10);
        return 1;
      },
      () => Promise.resolve('two'),
    ]);
    const sum: number = n + 1;
    const upper: string = s.toUpperCase();
    expect([sum, upper]).toEqual([2, 'TWO']);
  });

  it('fail-fast rejects with TaskGroupError and cancels the rest', async () => {
    let cancelled = false;
    const failure = new Error('down');
    const result = gather([
      async (signal) => {
        try {
          await untilAborted(signal);
        } finally {
          cancelled = true;
        }
      },
      () => Promise.reject(failure),
    ]);
    await expect(result).rejects.toBeInstanceOf(TaskGroupError);
    expect(cancelled).toBe(true);
  });

  it("'settled' returns outcomes and honours concurrency and the parent signal", async () => {
    let running = 0;
    let maxRunning = 0;
    const work = async (): Promise<number> => {
      running++;
      maxRunning = Math.max(maxRunning, running);
      await sleep(2);
      running--;
      return running;
    };
    const outcomes = await gather([work, work, work, work, () => Promise.reject(new Error('x'))], { mode: 'settled', concurrency: 2 });
    expect(maxRunning).toBe(2);
    expect(outcomes.map((o) => o.status)).toEqual(['fulfilled', 'fulfilled', 'fulfilled', 'fulfilled', 'rejected']);

    await expect(gather([untilAborted], { signal: AbortSignal.abort('early') })).rejects.toBe('early');
  });
});
