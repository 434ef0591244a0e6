import { describe, expect, it } from 'vitest';
import { ActivityLog } from './log';

describe('ActivityLog', () => {
  it('reads events after a sequence number, in order', () => {
    const log = new ActivityLog(10);
    log.record('a', 'users.byId', { type: 'started' });
    log.record('a', 'users.byId', { type: 'settled', code: 'OK', ms: 3 });
    expect(log.read(0).events.map((e) => [e.seq, e.type])).toEqual([[1, 'started'], [2, 'settled']]);
    expect(log.read(1).events.map((e) => e.seq)).toEqual([2]);
    expect(log.read(2)).toEqual({ events: [], missed: 0 });
  });

  it('gives each event the hop, its call and its place, the same object on every read; an overwritten one is gone', () => {
    const log = new ActivityLog(2, 'instance-a');
    const seq = log.record('a', 'users.byId', { type: 'statement.started', statement: 7, pid: 42 });
    const event = log.event(seq);
    expect(event).toEqual({ type: 'statement.started', statement: 7, pid: 42, seq: 1, at: expect.any(Number) as number, callId: 'a', path: 'users.byId', instance: 'instance-a' });
    expect(log.read(0).events[0]).toBe(event);
    log.record('b', 'p', { type: 'started' });
    log.record('c', 'p', { type: 'started' });
    expect(log.event(seq)).toBeUndefined();
    expect(log.event(3)?.callId).toBe('c');
  });

  it('stays bounded and tells a slow reader how much it missed', () => {
    const log = new ActivityLog(5);
    for (let i = 0; i < 12; i++) log.record(`c${i}`, 'p', { type: 'started' });
    const batch = log.read(0);
    expect(batch.missed).toBe(7);
    expect(batch.events.map((e) => e.seq)).toEqual([8, 9, 10, 11, 12]);
  });

  it('follows live events and stops when its signal aborts', async () => {
    const log = new ActivityLog(100);
    const controller = new AbortController();
    const seen: number[] = [];
    const reader = (async () => {
      for await (const batch of log.follow(0, controller.signal)) {
        seen.push(...batch.events.map((e) => e.seq));
        if (seen.length === 3) controller.abort();
      }
    })();
    log.record('a', 'p', { type: 'started' });
    await new Promise((r) => setTimeout(r, 5));
    log.record('a', 'p', { type: 'started' });
    log.record('a', 'p', { type: 'started' });
    await reader;
    expect(seen).toEqual([1, 2, 3]);
  });

  it('ends a waiting follower at once on abort', async () => {
    const log = new ActivityLog(10);
    const controller = new AbortController();
    const reader = (async () => {
      const out = [];
      for await (const batch of log.follow(0, controller.signal)) out.push(batch);
      return out;
    })();
    setTimeout(() => { controller.abort(); }, 20);
    expect(await reader).toEqual([]);
  });
});
