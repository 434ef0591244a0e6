import { describe, expect, it } from 'vitest';
import { CallRegistry, CancelledError, DuplicateCallIdError } from './registry';

function recorder() {
  const reasons: unknown[] = [];
  return { reasons, call: { cancel: (reason: unknown) => { reasons.push(reason); } } };
}

describe('CallRegistry', () => {
  it('cancels a call in flight, then answers already-settled once it ended, unknown for ids it never saw', async () => {
    const registry = new CallRegistry();
    const a = recorder();
    const settle = registry.register('alice', 'c1', a.call);
    expect(registry.isInFlight('alice', 'c1')).toBe(true);
    expect(await registry.cancel('alice', ['c1', 'nope'])).toEqual([{ callId: 'c1', status: 'cancelled' }, { callId: 'nope', status: 'unknown' }]);
    expect(a.reasons).toHaveLength(1);
    expect(a.reasons[0]).toBeInstanceOf(CancelledError);
    settle();
    expect(registry.size).toBe(0);
    expect(await registry.cancel('alice', ['c1'])).toEqual([{ callId: 'c1', status: 'already-settled' }]);
    expect(a.reasons).toHaveLength(1);
  });

  it('abortAll stops every call in flight of every caller with the reason given, and none that settled', () => {
    const registry = new CallRegistry();
    const [a, b, c] = [recorder(), recorder(), recorder()];
    registry.register('alice', 'c1', a.call);
    registry.register('bob', 'c1', b.call);
    const settleC = registry.register('bob', 'c2', c.call);
    settleC();
    const reason = new Error('shutting down');
    registry.abortAll(reason);
    expect(a.reasons).toEqual([reason]);
    expect(b.reasons).toEqual([reason]);
    expect(c.reasons).toEqual([]);
  });

  it('namespaces ids per owner: another caller cannot reach a call, and may use the same id', async () => {
    const registry = new CallRegistry();
    const a = recorder();
    const b = recorder();
    registry.register('alice', 'same', a.call);
    registry.register('bob', 'same', b.call);
    expect(await registry.cancel('mallory', ['same'])).toEqual([{ callId: 'same', status: 'unknown' }]);
    expect(a.reasons).toHaveLength(0);
    expect(await registry.cancel('bob', ['same'])).toEqual([{ callId: 'same', status: 'cancelled' }]);
    expect(a.reasons).toHaveLength(0);
    expect(b.reasons).toHaveLength(1);
  });

  it('refuses a duplicate id in flight; the id is free again once the call settled', () => {
    const registry = new CallRegistry();
    const settle = registry.register('alice', 'dup', recorder().call);
    expect(() => registry.register('alice', 'dup', recorder().call)).toThrow(DuplicateCallIdError);
    settle();
    expect(() => registry.register('alice', 'dup', recorder().call)).not.toThrow();
  });

  it('a cancel that overtakes its call stops the call on arrival, within the early-cancel window only', async () => {
    let now = 1000;
    const registry = new CallRegistry({ earlyCancelMs: 500, now: () => now });
    expect(await registry.cancel('alice', ['late', 'later'])).toEqual([{ callId: 'late', status: 'unknown' }, { callId: 'later', status: 'unknown' }]);
    const late = recorder();
    registry.register('alice', 'late', late.call);
    expect((late.reasons[0] as CancelledError | undefined)?.beforeArrival).toBe(true);
    now += 501;
    const later = recorder();
    registry.register('alice', 'later', later.call);
    expect(later.reasons).toHaveLength(0); // the window passed: a new call by that id runs
  });

  it('remembers a bounded number of settled ids and early cancels', async () => {
    const registry = new CallRegistry({ settledMemory: 2, earlyCancelMemory: 2 });
    for (const id of ['a', 'b', 'c']) registry.register('o', id, recorder().call)();
    expect((await registry.cancel('o', ['a', 'b', 'c'])).map((r) => r.status)).toEqual(['unknown', 'already-settled', 'already-settled']);
    await registry.cancel('o', ['x', 'y', 'z']);
    const x = recorder();
    registry.register('o', 'x', x.call); // dropped as the oldest early cancel
    expect(x.reasons).toHaveLength(0);
    const z = recorder();
    registry.register('o', 'z', z.call);
    expect(z.reasons).toHaveLength(1);
  });

  it('forgets settled ids oldest first, counting an id settled again from its last settle', async () => {
    const registry = new CallRegistry({ settledMemory: 3 });
    const settle = (id: string): void => { registry.register('o', id, recorder().call)(); };
    const statuses = async (ids: string[]) => (await registry.cancel('o', ids)).map((r) => r.status);
    for (const id of ['a', 'b', 'c']) settle(id);
    settle('a'); // a again: now the newest
    settle('d'); // pushes out b (the oldest), not a
    expect(await statuses(['a', 'b', 'c', 'd'])).toEqual(['already-settled', 'unknown', 'already-settled', 'already-settled']);
    settle('e');
    settle('f');
    expect(await statuses(['a', 'c', 'd', 'e', 'f'])).toEqual(['unknown', 'unknown', 'already-settled', 'already-settled', 'already-settled']);
    // 20,000 more: still bounded, and the last three are the ones remembered.
    for (let i = 0; i < 20_000; i++) settle(`n${i}`);
    expect(await statuses(['n19996', 'n19997', 'n19998', 'n19999'])).toEqual(['unknown', 'already-settled', 'already-settled', 'already-settled']);
  });

  it('keeps early cancels per caller: one flooding caller cannot push out another’s', async () => {
    const registry = new CallRegistry({ earlyCancelMemory: 2 });
    await registry.cancel('alice', ['mine']);
    await registry.cancel('mallory', ['x1', 'x2', 'x3', 'x4']);
    const mine = recorder();
    registry.register('alice', 'mine', mine.call);
    expect(mine.reasons).toHaveLength(1);
  });

  it('supersede: a new call by the id replaces the one in flight, which is cancelled; the old settle is a no-op', () => {
    const registry = new CallRegistry();
    const old = recorder();
    const settleOld = registry.register('alice', 'stream-1', old.call);
    registry.supersede('alice', 'stream-1');
    expect(old.reasons).toHaveLength(1);
    const fresh = recorder();
    registry.register('alice', 'stream-1', fresh.call);
    settleOld(); // the old stream finishes tearing down after the new one registered
    expect(registry.isInFlight('alice', 'stream-1')).toBe(true);
    expect(fresh.reasons).toHaveLength(0);
  });
});

