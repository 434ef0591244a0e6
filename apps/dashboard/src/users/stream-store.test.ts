import type { ActivityEvent } from '@asyncscope/api';
import type { User } from '@asyncscope/contract';
import { describe, expect, it } from 'vitest';
import { streamRate, UserStream, type StreamHandlers } from './stream-store';

const users = (from: number, n: number): User[] =>
  Array.from({ length: n }, (_, i) => ({ id: from + i, name: `U${from + i}`, email: `u${from + i}@x.co`, createdAt: '', updatedAt: '' }));

function harness() {
  let handlers: StreamHandlers | undefined;
  let unsubscribed = 0;
  let now = 1000;
  const stream = new UserStream(
    (_input, h) => {
      handlers = h;
      return { unsubscribe: () => { unsubscribed++; } };
    },
    () => undefined,
    () => now,
  );
  return {
    stream,
    h: () => {
      if (!handlers) throw new Error('not subscribed');
      return handlers;
    },
    unsubscribed: () => unsubscribed,
    tick: (ms: number) => { now += ms; },
  };
}

describe('UserStream', () => {
  it('counts pages into progress and finishes', () => {
    const t = harness();
    t.stream.start(2);
    expect(t.stream.state.status).toBe('connecting');
    t.h().onData({ id: '2', data: { items: users(1, 2), sent: 2, total: 3 } });
    t.tick(500);
    t.h().onData({ id: '3', data: { items: users(3, 1), sent: 3, total: 3 } });
    expect(t.stream.state).toMatchObject({ status: 'streaming', received: 3, total: 3, pages: 2, lastId: '3' });
    t.h().onComplete();
    expect(t.stream.state.status).toBe('done');
    expect(streamRate(t.stream.state, 99_999)).toBe(6); // 3 users in 0.5 s
  });

  it('cancel unsubscribes and nothing is counted after it', () => {
    const t = harness();
    t.stream.start(10);
    t.h().onData({ id: '10', data: { items: users(1, 10), sent: 10, total: 100 } });
    t.stream.cancel();
    expect(t.unsubscribed()).toBe(1);
    t.h().onData({ id: '20', data: { items: users(11, 10), sent: 20, total: 100 } });
    t.h().onComplete();
    expect(t.stream.state).toMatchObject({ status: 'cancelled', received: 10, receivedAtCancel: 10 });
    t.stream.cancel();
    expect(t.unsubscribed()).toBe(1);
  });

  it('keeps counting across a resumed stream (the server counts from the resume point)', () => {
    const t = harness();
    t.stream.start(5);
    t.h().onData({ id: '5', data: { items: users(1, 5), sent: 5, total: 8 } });
    t.h().onConnectionStateChange({ state: 'connecting', error: new Error('lost') });
    expect(t.stream.state.reconnecting).toBe(true);
    t.h().onData({ id: '8', data: { items: users(6, 3), sent: 3, total: 8 } });
    expect(t.stream.state).toMatchObject({ received: 8, reconnecting: false });
  });

  it('joins the server’s users.stream call that began after we subscribed, and how it ended', () => {
    const t = harness();
    const ev = (e: Partial<ActivityEvent> & Pick<ActivityEvent, 'type' | 'callId' | 'at'>) => ({ seq: 1, path: 'users.stream', ...e }) as ActivityEvent;
    t.stream.applyServerEvents([ev({ type: 'received', callId: 'ignored', at: 10, budgetMs: 1 })]); // not started: ignored
    t.stream.start(5);
    t.stream.applyServerEvents([
      ev({ type: 'received', callId: 'old', at: -5000, budgetMs: 1 }),
      ev({ type: 'received', callId: 's-1', at: 1001, budgetMs: 1 }),
      ev({ type: 'settled', callId: 'other', at: 1002, code: 'OK', ms: 1 }),
    ]);
    expect(t.stream.state.server).toEqual({ callId: 's-1' });
    t.stream.applyServerEvents([ev({ type: 'settled', callId: 's-1', at: 1500, code: 'CLIENT_CLOSED_REQUEST', ms: 480 })]);
    expect(t.stream.state.server).toEqual({ callId: 's-1', code: 'CLIENT_CLOSED_REQUEST', ms: 480 });
  });
});
