import type { ActivityEvent, StatsSample } from '@asyncscope/api';
import { describe, expect, it } from 'vitest';
import { ActivityFeed, serverRestarted, type FeedHandlers, type FeedInput } from './feed';

const event = (seq: number): ActivityEvent => ({ seq, at: seq, callId: `c${seq}`, path: 'users.byId', instance: 'i1', type: 'received', budgetMs: 1000 });

function harness() {
  const opened: { input: FeedInput; handlers: FeedHandlers; closed: boolean }[] = [];
  const received: number[] = [];
  const timers: (() => void)[] = [];
  const feed = new ActivityFeed(
    (input, handlers) => {
      const sub = { input, handlers, closed: false };
      opened.push(sub);
      return { unsubscribe: () => { sub.closed = true; } };
    },
    (events) => { received.push(...events.map((e) => e.seq)); },
    { setTimeout: (fn) => { timers.push(fn); return timers.length; }, clearTimeout: () => undefined },
  );
  return { feed, opened, received, runTimers: () => { for (const t of timers.splice(0)) t(); } };
}

describe('ActivityFeed', () => {
  it('follows from now, goes live, and passes events on', () => {
    const h = harness();
    h.feed.start();
    expect(h.opened[0]?.input).toEqual({});
    expect(h.feed.state.status).toBe('connecting');
    h.opened[0]?.handlers.onConnectionStateChange({ state: 'pending', error: null });
    expect(h.feed.state.status).toBe('live');
    h.opened[0]?.handlers.onData({ events: [event(5), event(6)], missed: 0 });
    expect(h.received).toEqual([5, 6]);
    expect(h.feed.state.lastSeq).toBe(6);
  });

  it('after a failed stream, subscribes again from the last event: no gap, no duplicate', () => {
    const h = harness();
    h.feed.start();
    h.opened[0]?.handlers.onData({ events: [event(1), event(2), event(3)], missed: 0 });
    h.opened[0]?.handlers.onError(new Error('stream refused'));
    expect(h.feed.state).toMatchObject({ status: 'reconnecting', lastError: 'stream refused' });
    h.runTimers();
    expect(h.opened[1]?.input).toEqual({ lastEventId: '3' });
    // A late message from the dead stream is ignored; the new one may overlap: only new events pass.
    h.opened[0]?.handlers.onData({ events: [event(4)], missed: 0 });
    h.opened[1]?.handlers.onData({ events: [event(3), event(4), event(5)], missed: 0 });
    expect(h.received).toEqual([1, 2, 3, 4, 5]);
    expect(h.feed.state.status).toBe('live');
  });

  it('reports the link reconnecting by itself, and events the ring dropped', () => {
    const h = harness();
    h.feed.start();
    h.opened[0]?.handlers.onConnectionStateChange({ state: 'connecting', error: new Error('network') });
    expect(h.feed.state.status).toBe('reconnecting');
    h.opened[0]?.handlers.onData({ events: [event(40)], missed: 12 });
    expect(h.feed.state).toMatchObject({ status: 'live', missed: 12, lastSeq: 40 });
  });

  it('after a server restart, re-reads the new server from its first event', () => {
    const h = harness();
    h.feed.start();
    h.opened[0]?.handlers.onData({ events: [event(900)], missed: 0 });
    h.feed.serverRestarted();
    expect(h.opened[0]?.closed).toBe(true);
    expect(h.opened[1]?.input).toEqual({ replay: true });
    h.opened[1]?.handlers.onData({ events: [event(1), event(2)], missed: 0 });
    expect(h.received).toEqual([900, 1, 2]);
  });

  it('a batch of a new id space (recreated stream) starts the count over and drops none of its events', () => {
    const h = harness();
    h.feed.start();
    h.opened[0]?.handlers.onData({ bootId: 'js-old', events: [event(900), event(901)], missed: 0 });
    h.opened[0]?.handlers.onData({ bootId: 'js-new', events: [event(1), event(2)], missed: 0 });
    expect(h.received).toEqual([900, 901, 1, 2]);
    expect(h.feed.state).toMatchObject({ bootId: 'js-new', lastSeq: 2 });
    // The same id space goes on as before: overlap is dropped.
    h.opened[0]?.handlers.onData({ bootId: 'js-new', events: [event(2), event(3)], missed: 0 });
    expect(h.received).toEqual([900, 901, 1, 2, 3]);
  });

  it('resubscribes with the full boot:seq id, not a bare number', () => {
    const h = harness();
    h.feed.start();
    h.opened[0]?.handlers.onData({ bootId: 'js-abc', events: [event(41), event(42)], missed: 0 });
    h.opened[0]?.handlers.onError(new Error('stream refused'));
    h.runTimers();
    expect(h.opened[1]?.input).toEqual({ lastEventId: 'js-abc:42' });
  });

  it('stop closes the stream and cancels a pending retry', () => {
    const h = harness();
    h.feed.start();
    h.opened[0]?.handlers.onError(new Error('x'));
    h.feed.stop();
    h.runTimers();
    expect(h.opened).toHaveLength(1);
    expect(h.feed.state.status).toBe('stopped');
  });
});

describe('serverRestarted', () => {
  const samples = (from: number, n: number): StatsSample[] =>
    Array.from({ length: n }, (_, i) => ({ at: from + i * 1000, requestsPerSecond: 0, latencyP50Ms: 0, latencyP95Ms: 0, latencyP99Ms: 0, eventLoopDelayP50Ms: 0, eventLoopDelayP99Ms: 0, inFlight: 0, queued: 0, shed: 0 }));

  it('a history that grows, or slides once full, is the same process', () => {
    expect(serverRestarted(undefined, samples(0, 3))).toBe(false);
    expect(serverRestarted(samples(0, 3), samples(0, 4))).toBe(false);
    expect(serverRestarted(samples(0, 300), samples(1000, 300))).toBe(false);
    expect(serverRestarted(samples(0, 299), samples(1000, 300))).toBe(false); // a missed poll while it filled up
  });

  it('with the broker, another instance’s (younger) history is not a restart', () => {
    expect(serverRestarted(samples(0, 30), samples(60_000, 2), 'broker')).toBe(false);
    expect(serverRestarted(samples(0, 5), samples(60_000, 40), 'broker')).toBe(false);
    expect(serverRestarted(samples(0, 30), samples(60_000, 2), 'local')).toBe(true);
  });

  it('a shorter history, or one that starts after what we saw, is a new process', () => {
    expect(serverRestarted(samples(0, 30), samples(60_000, 2))).toBe(true);
    expect(serverRestarted(samples(0, 30), [])).toBe(true);
    expect(serverRestarted(samples(0, 5), samples(60_000, 40))).toBe(true);
  });
});
