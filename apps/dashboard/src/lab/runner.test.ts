import type { CallContext } from '@asyncscope/client';
import { TRPCClientError } from '@trpc/client';
import { TaskGroup } from '@asyncscope/concurrency';
import { describe, expect, it, vi } from 'vitest';
import { CallsStore, type RunConfig } from './calls-store';
import { startRun, type FetchUser } from './runner';

const base: RunConfig = { count: 6, concurrency: 2, timeoutMs: 2000, retries: 0, minDelayMs: 5, maxDelayMs: 10, latencyMs: 0, errorRate: 0, mode: 'settled', transport: 'websocket' };

const withCode = (code: string) => Object.assign(new TRPCClientError<never>(`${code} (test)`), { data: { code } });

interface Script {
  ms?: number;
  fail?: string;
}

/** A users.byId stand-in: answers after `ms`, or fails with a tRPC code; honours the signal like fetch does. */
function fakeFetch(script: (callId: string) => Script, seen: CallContext[] = []): FetchUser {
  return (id, { signal, context }) => {
    seen.push(context);
    const { ms = 20, fail } = script(context.callId ?? '');
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        signal.removeEventListener('abort', onAbort);
        if (fail) reject(withCode(fail));
        else resolve({ id });
      }, ms);
      const onAbort = (): void => {
        clearTimeout(timer);
        reject(new TRPCClientError('The operation was aborted', { cause: new DOMException('aborted', 'AbortError') }));
      };
      signal.addEventListener('abort', onAbort, { once: true });
    });
  };
}

const store = () => new CallsStore(() => undefined);
const states = (s: CallsStore) => Array.from({ length: s.run?.config.count ?? 0 }, (_, i) => s.row(i)?.state);
const until = (check: () => boolean): Promise<void> => vi.waitFor(() => { expect(check()).toBe(true); }, { timeout: 1000, interval: 5 });

describe('startRun', () => {
  it('settled: every call runs to its end; a failure does not stop the others', async () => {
    const s = store();
    const seen: CallContext[] = [];
    const run = startRun(s, base, [11, 22, 33], fakeFetch((id) => (id.endsWith('-3') ? { fail: 'NOT_FOUND' } : {}), seen), 'rt1');
    await run.done;
    expect(states(s)).toEqual(['succeeded', 'succeeded', 'failed', 'succeeded', 'succeeded', 'succeeded']);
    expect(s.row(2)?.error?.code).toBe('NOT_FOUND');
    expect(s.run?.endedAt).toBeDefined();
    expect(s.run?.cause).toBeUndefined();
    // The call id goes out as x-request-id, and the call goes alone (httpLink) so a cancel reaches the server.
    expect(seen.map((c) => c.callId).sort()).toEqual(['rt1-1', 'rt1-2', 'rt1-3', 'rt1-4', 'rt1-5', 'rt1-6']);
    expect(seen.every((c) => c.transport === 'single' && typeof c.deadlineAt === 'number')).toBe(true);
    expect([s.row(0)?.userId, s.row(3)?.userId]).toEqual([11, 11]);
  });

  it('keeps to the concurrency limit', async () => {
    const s = store();
    let running = 0;
    let peak = 0;
    const slow = fakeFetch(() => ({ ms: 15 }));
    await startRun(s, { ...base, count: 9, concurrency: 3 }, [1], async (id, opts) => {
      peak = Math.max(peak, ++running);
      try {
        return await slow(id, opts);
      } finally {
        running--;
      }
    }).done;
    expect(peak).toBe(3);
  });

  it('fail-fast: the first failure cancels every sibling, and the run names it', async () => {
    const s = store();
    const run = startRun(s, { ...base, mode: 'fail-fast', count: 8, concurrency: 3 }, [1], fakeFetch((id) => (id.endsWith('-2') ? { ms: 10, fail: 'SERVICE_UNAVAILABLE' } : { ms: 200 })), 'rt2');
    await run.done;
    expect(s.run?.cause).toMatchObject({ index: 1, error: { code: 'SERVICE_UNAVAILABLE' } });
    expect(s.row(1)).toMatchObject({ state: 'failed', isCause: true });
    const siblings = [0, 2, 3, 4, 5, 6, 7].map((i) => s.row(i));
    expect(siblings.every((r) => r?.state === 'cancelled' && r.cancelledBy === 'sibling' && r.causeIndex === 1)).toBe(true);
    // The ones still queued never started.
    expect(s.row(7)?.startedAt).toBeUndefined();
  });

  it('retries a retryable failure as `${callId}~1`, and shows it', async () => {
    const s = store();
    const seen: CallContext[] = [];
    await startRun(s, { ...base, count: 1, retries: 2 }, [1], fakeFetch((id) => (id === 'rt3-1' ? { fail: 'SERVICE_UNAVAILABLE', ms: 5 } : { ms: 5 }), seen), 'rt3').done;
    expect(seen.map((c) => c.callId)).toEqual(['rt3-1', 'rt3-1~1']);
    const row = s.row(0);
    expect(row?.state).toBe('succeeded');
    expect(row?.attempts.map((a) => [a.n, a.outcome])).toEqual([[0, 'error'], [1, 'ok']]);
  });

  it('times out at the deadline (retries included) — not "cancelled"', async () => {
    const s = store();
    await startRun(s, { ...base, count: 1, timeoutMs: 40 }, [1], fakeFetch(() => ({ ms: 1000 }))).done;
    expect(s.row(0)).toMatchObject({ state: 'timed-out', error: { code: 'TIMEOUT' } });
  });

  it('cancels one running call, one queued call, then all', async () => {
    const s = store();
    const run = startRun(s, { ...base, count: 6, concurrency: 2 }, [1], fakeFetch(() => ({ ms: 5000 })));
    await until(() => s.row(0)?.state === 'running' && s.row(1)?.state === 'running');
    run.cancel(0);
    run.cancelMany([4]);
    await until(() => s.row(0)?.state === 'cancelled' && s.row(4)?.state === 'cancelled');
    expect(s.row(0)?.cancelledBy).toBe('you');
    expect(s.row(4)?.cancelledBy).toBe('you');
    expect(s.row(4)?.startedAt).toBeUndefined(); // it was still queued: never sent
    await until(() => s.row(2)?.state === 'running'); // the freed slot went to the next in line
    run.cancelAll();
    await run.done;
    expect(states(s)).toEqual(Array(6).fill('cancelled'));
    expect([1, 2, 3, 5].map((i) => s.row(i)?.cancelledBy)).toEqual(['cancel-all', 'cancel-all', 'cancel-all', 'cancel-all']);
  });

  it('stops waiting for a call whose request cannot be aborted (a batched one): cancelled, not "succeeded"', async () => {
    const s = store();
    let answered = 0;
    const deaf: FetchUser = (id) => new Promise((resolve) => setTimeout(() => { answered++; resolve({ id }); }, 150));
    const run = startRun(s, { ...base, count: 2, transport: 'http-batch' }, [1], deaf);
    await until(() => s.row(0)?.state === 'running');
    run.cancel(0);
    await until(() => s.row(0)?.state === 'cancelled');
    expect(answered).toBe(0); // the answer had not even arrived
    await run.done;
    expect(s.row(1)?.state).toBe('succeeded');
  });

  it('sends batched calls through the batch transport when asked', async () => {
    const seen: CallContext[] = [];
    await startRun(store(), { ...base, count: 2, transport: 'http-batch' }, [1], fakeFetch(() => ({ ms: 1 }), seen)).done;
    expect(seen.map((c) => c.transport)).toEqual(['batch', 'batch']);
  });

  it('hands the group a call only when a slot is free: the queue is the rows, not 10,000 tasks made at the start', async () => {
    const spawn = vi.spyOn(TaskGroup.prototype, 'spawn');
    try {
      const s = store();
      const run = startRun(s, { ...base, count: 10_000, concurrency: 3 }, [1], fakeFetch(() => ({ ms: 5000 })));
      expect(spawn).toHaveBeenCalledTimes(0); // the first calls go out after the rows were rendered
      await until(() => s.row(2)?.state === 'running');
      expect(spawn).toHaveBeenCalledTimes(3);
      run.cancel(1); // a running call: its slot goes to the next row
      run.cancel(3); // the next row, still queued in the browser: never sent, the slot goes past it
      await until(() => s.row(4)?.state === 'running');
      expect(spawn).toHaveBeenCalledTimes(4);
      expect(s.row(3)).toMatchObject({ state: 'cancelled', cancelledBy: 'you' });
      expect(s.row(3)?.startedAt).toBeUndefined();
      run.cancelAll();
      await run.done;
      // Every row the group never got is cancelled too, by "cancel all".
      expect(s.getSnapshot().counts.cancelled).toBe(10_000);
      expect(s.row(9_999)?.cancelledBy).toBe('cancel-all');
    } finally {
      spawn.mockRestore();
    }
  });

  it('cancel all before the first call went out: every row cancelled, none sent, the run ends', async () => {
    const s = store();
    const seen: CallContext[] = [];
    const run = startRun(s, { ...base, count: 5 }, [1], fakeFetch(() => ({}), seen));
    run.cancelAll();
    await run.done;
    expect(states(s)).toEqual(Array(5).fill('cancelled'));
    expect(seen).toHaveLength(0);
    expect(s.run?.endedAt).toBeDefined();
  });
});
