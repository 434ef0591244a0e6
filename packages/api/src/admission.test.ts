/** Fair admission: a pure scheduler, tested on its own (no database involved). */
import { describe, expect, it } from 'vitest';
import { Admission, type Release } from './admission';
import { OverloadedError } from './services/errors';

const never = new AbortController().signal;
const noop = (): void => undefined;

/** Queues a call of `client` and records its name when it is admitted. */
function queue(admission: Admission, order: string[], name: string, client: string, signal = never): Promise<Release> {
  return admission.enter(signal, noop, client).then((permit) => {
    order.push(name);
    return permit;
  });
}

/** Lets settled promises' callbacks run. */
const flush = () => new Promise((resolve) => setImmediate(resolve));

/** Releases `held`, then each call as it is admitted, until none waits; returns the admission order. */
async function drain(admission: Admission, held: Release, waiting: Map<string, Promise<Release>>, order: string[]): Promise<string[]> {
  let permit = held;
  while (order.length < waiting.size) {
    const before = order.length;
    permit.release();
    await flush();
    expect(order.length).toBe(before + 1); // one slot freed, one call admitted
    const next = waiting.get(order[order.length - 1] ?? '');
    if (!next) throw new Error('admitted a call nobody queued');
    permit = await next;
  }
  permit.release();
  expect(admission.inFlight).toBe(0);
  expect(admission.queued).toBe(0);
  return order;
}

describe('Admission: fair queuing between clients', () => {
  it('hands freed slots to the clients in turn, not in arrival order', async () => {
    const admission = new Admission(1, 100);
    const first = await admission.enter(never, noop, 'greedy');
    const order: string[] = [];
    const calls: [string, string][] = [['g1', 'greedy'], ['g2', 'greedy'], ['g3', 'greedy'], ['n1', 'normal'], ['n2', 'normal'], ['o1', 'other']];
    const waiting = new Map(calls.map(([name, client]) => [name, queue(admission, order, name, client)]));
    expect(admission.queued).toBe(6);
    expect(await drain(admission, first, waiting, order)).toEqual(['g1', 'n1', 'o1', 'g2', 'n2', 'g3']);
  }, 5000);

  it('refuses a client at once beyond its own queue cap, while other clients still queue', async () => {
    const admission = new Admission(1, 100, 2);
    const held = await admission.enter(never, noop, 'a');
    const order: string[] = [];
    const waiting = new Map([['a1', queue(admission, order, 'a1', 'a')], ['a2', queue(admission, order, 'a2', 'a')]]);
    await expect(admission.enter(never, noop, 'a')).rejects.toThrow(/2 calls waiting \(at most 2 per client\)/);
    waiting.set('b1', queue(admission, order, 'b1', 'b'));
    expect(admission.queuedFor('a')).toBe(2);
    expect(admission.queuedFor('b')).toBe(1);
    expect(admission.shed).toBe(1);
    expect(await drain(admission, held, waiting, order)).toEqual(['a1', 'b1', 'a2']);
  }, 5000);

  it('still refuses everyone beyond the shared queue (maxQueue)', async () => {
    const admission = new Admission(1, 2, 2);
    const held = await admission.enter(never, noop, 'a');
    const order: string[] = [];
    const waiting = new Map([['a1', queue(admission, order, 'a1', 'a')], ['b1', queue(admission, order, 'b1', 'b')]]);
    await expect(admission.enter(never, noop, 'c')).rejects.toThrow(OverloadedError);
    await expect(admission.enter(never, noop, 'c')).rejects.toThrow(/at capacity/);
    expect(await drain(admission, held, waiting, order)).toEqual(['a1', 'b1']);
  }, 5000);

  it('a waiter whose signal fires leaves its queue, is never admitted, and its turn passes on', async () => {
    const admission = new Admission(1, 100);
    const held = await admission.enter(never, noop, 'a');
    const order: string[] = [];
    const leaving = new AbortController();
    const gone = queue(admission, order, 'a1', 'a', leaving.signal);
    const stays = queue(admission, order, 'b1', 'b');
    leaving.abort(new Error('client left'));
    await expect(gone).rejects.toThrow('client left');
    expect(admission.queued).toBe(1);
    expect(admission.queuedFor('a')).toBe(0);
    held.release();
    (await stays).release();
    expect(order).toEqual(['b1']);
    await expect(admission.enter(leaving.signal, noop, 'a')).rejects.toThrow('client left');
    expect(admission.inFlight).toBe(0);
  }, 5000);

  it('a newcomer does not barge past waiting calls, and a double release frees one slot', async () => {
    const admission = new Admission(1, 100);
    const held = await admission.enter(never, noop);
    const order: string[] = [];
    const waiting = queue(admission, order, 'w', 'a');
    held.release();
    held.release();
    const late = queue(admission, order, 'late', 'b');
    await flush();
    expect(order).toEqual(['w']);
    (await waiting).release();
    (await late).release();
    expect(admission.inFlight).toBe(0);
  }, 5000);
});

describe('Admission.refuseNow: the early answer', () => {
  it('says no (and counts it) exactly when enter() would refuse at once', async () => {
    const admission = new Admission(1, 3, 2);
    expect(admission.refuseNow('a')).toBeUndefined(); // a free slot
    const held = await admission.enter(never, noop, 'a');
    const order: string[] = [];
    const waiting = new Map([['a1', queue(admission, order, 'a1', 'a')]]);
    expect(admission.refuseNow('a')).toBeUndefined(); // a may queue one more
    waiting.set('a2', queue(admission, order, 'a2', 'a'));
    expect(admission.refuseNow('a')).toMatch(/at most 2 per client/);
    expect(admission.refuseNow('b')).toBeUndefined();
    waiting.set('b1', queue(admission, order, 'b1', 'b'));
    expect(admission.refuseNow('c')).toMatch(/at capacity/);
    expect(admission.shed).toBe(2);
    expect(await drain(admission, held, waiting, order)).toEqual(['a1', 'b1', 'a2']);
  }, 5000);
});

describe('Admission.tryEnter: the synchronous slot', () => {
  it('gives a slot only when one is free and nobody waits, and never counts a refusal', async () => {
    const admission = new Admission(2, 10);
    const first = admission.tryEnter();
    expect(first).toBeDefined();
    const held = await admission.enter(never, noop, 'a');
    expect(admission.tryEnter()).toBeUndefined(); // both slots taken
    const order: string[] = [];
    const waiting = queue(admission, order, 'w', 'b');
    first?.release();
    // The freed slot went to the waiter, not back to the pool: none for a newcomer.
    expect(admission.tryEnter()).toBeUndefined();
    await flush();
    expect(order).toEqual(['w']);
    (await waiting).release();
    held.release();
    expect(admission.inFlight).toBe(0);
    const again = admission.tryEnter();
    expect(admission.inFlight).toBe(1);
    again?.release();
    again?.release(); // a double release frees one slot
    expect(admission.inFlight).toBe(0);
    expect(admission.shed).toBe(0);
  }, 5000);
});
