import { afterEach, describe, expect, it } from 'vitest';
import { recordingTrpc } from '../lib/recording-trpc';
import { seedDemoUsers, userListOptions, type DemoUser } from './api';

describe('the users list query', () => {
  const { ops, queryClient, trpc } = recordingTrpc();
  afterEach(() => { queryClient.clear(); });

  it('hands React Query’s signal to the call: a read cancelled (its view gone) is aborted, not left running', async () => {
    const read = queryClient.query(userListOptions(trpc, 10, 20));
    read.catch(() => undefined);
    await new Promise((resolve) => setTimeout(resolve, 0));
    const op = ops.at(-1);
    expect(op?.path).toBe('users.list');
    expect(op?.input).toEqual({ limit: 10, offset: 20 });
    expect(op?.signal?.aborted).toBe(false);
    await queryClient.cancelQueries();
    expect(op?.signal?.aborted).toBe(true);
    await expect(read).rejects.toThrow();
  });
});

describe('seedDemoUsers', () => {
  it('creates 50 users ten at a time, each with an idempotency key, and counts the failures', async () => {
    const made: DemoUser[] = [];
    let inFlight = 0;
    let most = 0;
    const failed = await seedDemoUsers(async (user) => {
      made.push(user);
      most = Math.max(most, ++inFlight);
      await new Promise((resolve) => setTimeout(resolve, 1));
      inFlight--;
      if (user.name.endsWith('-7')) throw new Error('conflict');
    }, new AbortController().signal, 'x');
    expect(made).toHaveLength(50);
    expect(new Set(made.map((u) => u.idempotencyKey)).size).toBe(50);
    expect(most).toBe(10);
    expect(failed).toBe(1);
  });

  it('aborted mid-way: the creates in flight get the signal, no further batch starts, and it rejects', async () => {
    const stop = new AbortController();
    const signals: AbortSignal[] = [];
    const seeding = seedDemoUsers((_user, signal) => {
      signals.push(signal);
      if (signals.length === 15) stop.abort(new Error('view closed'));
      return new Promise((resolve) => setTimeout(resolve, 1));
    }, stop.signal);
    await expect(seeding).rejects.toThrow('view closed');
    expect(signals).toHaveLength(20);
    expect(signals.every((s) => s === stop.signal)).toBe(true);
  });
});
