import { once, setMaxListeners, EventEmitter } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import { inspect } from 'node:util';
import { setFlagsFromString } from 'node:v8';
import { describe, expect, it } from 'vitest';
import { createAbortController, sharedShapeSignals } from './abort-controller';

const onNode20 = process.versions.node.startsWith('20.');

// Each behaviour is checked on Node's own controller too: the two must not differ.
const kinds = [
  ['createAbortController', () => createAbortController()],
  ["Node's AbortController", () => new AbortController()],
] as const;

describe.each(kinds)('%s', (_name, make) => {
  it('is an AbortSignal to every check', () => {
    const { signal } = make();
    expect(signal).toBeInstanceOf(AbortSignal);
    expect(signal).toBeInstanceOf(EventTarget);
    expect(signal.constructor).toBe(AbortSignal);
    expect(Object.prototype.toString.call(signal)).toBe('[object AbortSignal]');
    expect(inspect(signal)).toBe('AbortSignal { aborted: false }');
  });

  it('aborts once, with a DOMException AbortError by default or the reason given', () => {
    const byDefault = make();
    expect(byDefault.signal.aborted).toBe(false);
    expect(byDefault.signal.reason).toBeUndefined();
    expect(() => { byDefault.signal.throwIfAborted(); }).not.toThrow();
    byDefault.abort();
    expect(byDefault.signal.aborted).toBe(true);
    expect(byDefault.signal.reason).toBeInstanceOf(DOMException);
    expect((byDefault.signal.reason as DOMException).name).toBe('AbortError');

    const given = make();
    const reason = new Error('first');
    given.abort(reason);
    given.abort(new Error('second'));
    expect(given.signal.reason).toBe(reason);
    expect(() => { given.signal.throwIfAborted(); }).toThrow(reason);
    expect(inspect(given.signal)).toBe('AbortSignal { aborted: true }');
  });

  it("fires 'abort' once: a trusted event at the signal, to listeners and onabort; a removed listener hears nothing", () => {
    const controller = make();
    const { signal } = controller;
    const heard: Event[] = [];
    let removedHeard = false;
    let handlerHeard = 0;
    const removed = () => { removedHeard = true; };
    signal.addEventListener('abort', (event) => { heard.push(event); }, { once: true });
    signal.addEventListener('abort', removed);
    signal.removeEventListener('abort', removed);
    signal.onabort = () => { handlerHeard++; };
    controller.abort();
    controller.abort();
    expect(heard).toHaveLength(1);
    expect(heard[0]?.type).toBe('abort');
    expect(heard[0]?.isTrusted).toBe(true);
    expect(heard[0]?.target).toBe(signal);
    expect(handlerHeard).toBe(1);
    expect(removedHeard).toBe(false);
  });

  it('reaches the signals AbortSignal.any made from it, directly and through another', async () => {
    const controller = make();
    const other = make();
    const direct = AbortSignal.any([controller.signal, other.signal]);
    const nested = AbortSignal.any([direct]);
    const fired = new Promise((resolve) => { nested.addEventListener('abort', resolve, { once: true }); });
    const reason = new Error('stop');
    controller.abort(reason);
    expect(direct.aborted).toBe(true);
    expect(direct.reason).toBe(reason);
    expect(nested.reason).toBe(reason);
    await fired;
    expect(other.signal.aborted).toBe(false);
    // Already aborted: AbortSignal.any answers aborted at once.
    expect(AbortSignal.any([controller.signal]).reason).toBe(reason);
  });

  it("is taken by Node's APIs that take a signal: events, timers, fetch", async () => {
    const controller = make();
    const { signal } = controller;
    setMaxListeners(20, signal);
    const waiting = once(new EventEmitter(), 'never', { signal });
    const sleeping = sleep(60_000, undefined, { signal });
    controller.abort(new Error('gone'));
    await expect(waiting).rejects.toMatchObject({ name: 'AbortError' });
    await expect(sleeping).rejects.toMatchObject({ name: 'AbortError' });
    await expect(fetch('http://127.0.0.1:9/', { signal })).rejects.toThrow('gone');
  });
});

describe('createAbortController on this Node', () => {
  it(onNode20 ? 'makes its own signals on Node 20 (internals found)' : "is Node's own controller off Node 20", () => {
    // On Node 20, not finding Node's internal fields means Node changed them: read abort_controller.js again.
    expect(sharedShapeSignals).toBe(onNode20);
    expect(createAbortController() instanceof AbortController).toBe(!onNode20);
  });

  it('the premise: on Node 20 its signals share a hidden class and Node\'s do not (nodejs/node#52505)', () => {
    setFlagsFromString('--allow-natives-syntax');
    // eslint-disable-next-line @typescript-eslint/no-implied-eval -- V8's %HaveSameMap exists only in code compiled with that flag
    const sameShape = new Function('a', 'b', 'return %HaveSameMap(a, b)') as (a: object, b: object) => boolean;
    expect(sameShape(createAbortController().signal, createAbortController().signal)).toBe(true);
    // When a Node 20 release fixes its own signals, this fails: createAbortController can then be retired.
    expect(sameShape(new AbortController().signal, new AbortController().signal)).toBe(!onNode20);
  });
});
