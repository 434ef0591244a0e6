import type { ActivityEvent } from '@asyncscope/api';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { FrameBatcher, viewFrames } from '../lib/frame-batcher';
import { CallsStore, type RunConfig } from './calls-store';

const config: RunConfig = { count: 3, concurrency: 2, timeoutMs: 1000, retries: 0, minDelayMs: 10, maxDelayMs: 20, latencyMs: 0, errorRate: 0, mode: 'settled', transport: 'websocket' };

function manualFrames() {
  const queue: (() => void)[] = [];
  return {
    scheduler: (cb: () => void) => { queue.push(cb); },
    frame: () => { for (const cb of queue.splice(0)) cb(); },
    pending: () => queue.length,
  };
}

describe('CallsStore', () => {
  afterEach(() => { vi.useRealTimers(); });

  it('publishes on the page’s one view clock: a change elsewhere (the header) waits for the lab’s next frame and shares it', () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'performance', 'Date'] });
    const store = new CallsStore();
    const header = new FrameBatcher(() => undefined, viewFrames);
    const published: string[] = [];
    const t0 = performance.now();
    store.subscribe(() => { published.push(`lab@${performance.now() - t0}`); });
    header.subscribe(() => { published.push(`header@${performance.now() - t0}`); });
    store.beginRun('r1', config, [10, 20], Date.now());
    store.dispatch(0, { type: 'started', at: Date.now() });
    vi.advanceTimersByTime(20);
    header.schedule();
    vi.advanceTimersByTime(10);
    store.dispatch(1, { type: 'started', at: Date.now() });
    vi.advanceTimersByTime(200);
    const paced = published.filter((p) => !p.endsWith('@0'));
    // The lab's first paced frame (16 ms: node's stand-in for a frame), then the header's change and the lab's
    // next one together in one frame, no sooner than 50 ms after it (on a clock of its own, the header's
    // change went out at the next frame, 36 ms).
    expect(paced[0]).toBe('lab@16');
    const at = (p: string | undefined): number => Number(p?.split('@')[1]);
    expect(paced.slice(1, 3).map((p) => p.split('@')[0]).sort()).toEqual(['header', 'lab']);
    expect(at(paced[1])).toBe(at(paced[2]));
    expect(at(paced[1])).toBeGreaterThanOrEqual(66);
  });

  it('publishes many changes once per frame', () => {
    const frames = manualFrames();
    const store = new CallsStore(frames.scheduler, () => 5000);
    let notified = 0;
    store.subscribe(() => { notified++; });
    store.beginRun('r1', config, [10, 20], 1000);
    for (let i = 0; i < 3; i++) {
      store.dispatch(i, { type: 'started', at: 1001 });
      store.dispatch(i, { type: 'attempt', at: 1001, attempt: 0 });
    }
    // The run's start is published at once (its queued rows); the changes after it wait for the frame.
    expect(notified).toBe(1);
    expect(store.getSnapshot().rows.map((r) => r.state)).toEqual(['queued', 'queued', 'queued']);
    expect(frames.pending()).toBe(1);
    frames.frame();
    expect(notified).toBe(2);
    const snap = store.getSnapshot();
    expect(snap.rows.map((r) => [r.callId, r.userId, r.state])).toEqual([['r1-1', 10, 'running'], ['r1-2', 20, 'running'], ['r1-3', 10, 'running']]);
    expect(snap.counts.running).toBe(3);
    expect(snap.active).toBe(3);
  });

  it('keeps ticking while calls are active (growing bars), and stops when they are done', () => {
    const frames = manualFrames();
    const store = new CallsStore(frames.scheduler);
    store.beginRun('r1', { ...config, count: 1 }, [1]);
    frames.frame();
    expect(frames.pending()).toBe(1);
    store.dispatch(0, { type: 'cancelled', at: 1 });
    frames.frame();
    frames.frame();
    expect(frames.pending()).toBe(0);
    expect(store.getSnapshot().counts.cancelled).toBe(1);
  });

  it('joins server events by call id (attempts too) and collects the others', () => {
    const frames = manualFrames();
    const store = new CallsStore(frames.scheduler);
    store.beginRun('r1', config, [1]);
    const events = [
      { seq: 1, at: 1, callId: 'r1-2', path: 'users.byId', instance: 'i1', type: 'received', budgetMs: 900 },
      { seq: 2, at: 2, callId: 'r1-2~1', path: 'users.byId', instance: 'i1', type: 'statement.started', statement: 4, pid: 77 },
      { seq: 3, at: 3, callId: 'abc-uuid#0', path: 'users.byId', instance: 'i1', type: 'received', budgetMs: 30000 },
      { seq: 4, at: 4, callId: 'abc-uuid#0', path: 'users.byId', instance: 'i1', type: 'settled', code: 'OK', ms: 2001 },
    ] satisfies ActivityEvent[];
    store.applyServerEvents(events, 5);
    frames.frame();
    const snap = store.getSnapshot();
    expect(snap.rows[1]?.hops.map((h) => [h.type, h.attempt])).toEqual([['received', 0], ['statement.started', 1]]);
    expect(snap.others).toEqual([{ callId: 'abc-uuid#0', path: 'users.byId', firstAt: 3, lastAt: 4, last: 'settled', code: 'OK', ms: 2001 }]);
    expect(snap.missedEvents).toBe(5);
  });

  it('counts the selection, and only active calls as cancellable', () => {
    const store = new CallsStore(() => undefined);
    store.beginRun('r1', config, [1]);
    store.dispatch(0, { type: 'succeeded', at: 5 });
    store.selectActive(true);
    store.select(0, true);
    store.flushNow();
    expect(store.getSnapshot()).toMatchObject({ selected: 3, selectedActive: 2 });
    expect(store.selectedActiveIndices()).toEqual([1, 2]);
    store.dispatch(1, { type: 'cancelled', at: 6 });
    store.flushNow();
    expect(store.getSnapshot()).toMatchObject({ selected: 3, selectedActive: 1 });
    store.selectActive(false);
    store.flushNow();
    expect(store.getSnapshot()).toMatchObject({ selected: 0, selectedActive: 0 });
  });

  it("publishes a person's selection and inspection at once, without waiting for a frame", () => {
    const frames = manualFrames();
    const store = new CallsStore(frames.scheduler);
    store.beginRun('r1', config, [1]);
    frames.frame();
    let notified = 0;
    store.subscribe(() => { notified++; });
    store.select(1, true);
    // A controlled checkbox re-renders from this snapshot inside the click's event handler.
    expect(store.getSnapshot().rows[1]?.selected).toBe(true);
    expect(store.getSnapshot().selected).toBe(1);
    expect(notified).toBe(1);
    store.selectActive(true);
    expect(store.getSnapshot().selected).toBe(3);
    expect(notified).toBe(2); // one notification for the whole selection
    store.inspect(2);
    expect(store.getSnapshot().inspected).toBe(2);
    expect(notified).toBe(3);
  });

  it('names the fail-fast cause once', () => {
    const store = new CallsStore(() => undefined);
    store.beginRun('r1', { ...config, mode: 'fail-fast' }, [1]);
    store.setCause(2, { code: 'SERVICE_UNAVAILABLE', message: 'x' });
    store.setCause(0, { code: 'NOT_FOUND', message: 'y' });
    expect(store.run?.cause).toEqual({ index: 2, error: { code: 'SERVICE_UNAVAILABLE', message: 'x' } });
    expect(store.row(2)?.isCause).toBe(true);
    expect(store.row(0)?.isCause).toBe(false);
  });

  it('counts where the run’s calls are on the server: received, in SQL, waiting for a pool connection, settled', () => {
    const store = new CallsStore(() => undefined);
    store.beginRun('r9', config, [1], 1000);
    let seq = 100;
    const ev = (callId: string, hop: Record<string, unknown>): ActivityEvent => ({ seq: ++seq, at: 2000, callId, path: 'users.byId', instance: 'solo:1', ...hop }) as ActivityEvent;
    const phases = () => {
      store.flushNow();
      const { server } = store.getSnapshot();
      return [server.unseen, server.pool, server.sql, server.settled];
    };
    expect(phases()).toEqual([3, 0, 0, 0]);
    store.applyServerEvents([ev('r9-1', { type: 'received', budgetMs: 900 }), ev('r9-1', { type: 'started' }), ev('r9-2', { type: 'received', budgetMs: 900 }), ev('r9-2', { type: 'started' })]);
    expect(phases()).toEqual([1, 2, 0, 0]);
    expect(store.getSnapshot().firstReceivedAt).toBe(2000);
    expect(store.getSnapshot().hundredthReceivedAt).toBeUndefined();
    store.applyServerEvents([ev('r9-1', { type: 'statement.started', statement: 1, pid: 7 })]);
    expect(phases()).toEqual([1, 1, 1, 0]);
    store.applyServerEvents([ev('r9-1', { type: 'settled', code: 'OK', ms: 5 }), ev('r9-2', { type: 'signal.fired', reason: 'cancelled' })]);
    expect(phases()).toEqual([1, 0, 0, 1]);
    // A new run starts over.
    store.beginRun('r10', { ...config, count: 2 }, [1], 3000);
    expect(phases()).toEqual([2, 0, 0, 0]);
  });

  it('lists the instances that served the run’s calls (other calls’ instances aside), and starts over with a run', () => {
    const store = new CallsStore(() => undefined);
    store.beginRun('r1', config, [1], 1000);
    let seq = 0;
    const ev = (callId: string, instance: string): ActivityEvent => ({ seq: ++seq, at: 2000, callId, path: 'users.byId', instance, type: 'received', budgetMs: 900 });
    store.flushNow();
    expect(store.getSnapshot().instances).toEqual([]);
    store.applyServerEvents([ev('r1-1', 'web-a:11'), ev('r1-2', 'web-b:22'), ev('r1-3', 'web-a:11'), ev('other-uuid', 'web-c:33')]);
    store.flushNow();
    const first = store.getSnapshot().instances;
    expect(first).toEqual(['web-a:11', 'web-b:22']);
    store.applyServerEvents([ev('r1-1~1', 'web-b:22')]);
    store.flushNow();
    expect(store.getSnapshot().instances).toBe(first); // nothing new: the same array
    store.beginRun('r2', config, [1], 3000);
    store.flushNow();
    expect(store.getSnapshot().instances).toEqual([]);
  });

  it('keeps what the server answered a cancel on the call\'s row (attempt ids too), and ignores ids not of this run', () => {
    const store = new CallsStore(() => undefined);
    store.beginRun('r1', config, [1], 1000);
    store.dispatch(0, { type: 'cancelled', at: 1100 });
    store.applyCancelOutcomes([{ callId: 'r1-1', status: 'instance-gone' }, { callId: 'r1-2~1', status: 'already-settled' }, { callId: 'zz-9', status: 'unknown' }]);
    store.flushNow();
    expect(store.getSnapshot().rows.map((r) => r.cancelOutcome)).toEqual(['instance-gone', 'already-settled', undefined]);
  });
});
