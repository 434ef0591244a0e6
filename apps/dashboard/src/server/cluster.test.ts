import { describe, expect, it } from 'vitest';
import { eventsView, instanceLabel, instanceStateText, instanceTotals, type InstanceStats } from './cluster';

function instance(id: string, over: Partial<InstanceStats> = {}): InstanceStats {
  return { instance: id, state: 'up', ageMs: 200, inFlight: 0, queued: 0, shed: 0, maxInFlight: 100, maxQueue: 200, poolMax: 10, poolBusy: 0, eventLoopDelayMs: 1, ...over };
}

/** Three instances behind a balancer, the third killed 5 s ago. */
const THREE: InstanceStats[] = [
  instance('web-a:4101', { inFlight: 12, queued: 3, shed: 1, poolBusy: 10, eventLoopDelayMs: 4.2 }),
  instance('web-b:4102', { inFlight: 7, poolBusy: 7, eventLoopDelayMs: 11.5, maxInFlight: 50 }),
  instance('web-c:4103', { state: 'gone', ageMs: 5400, inFlight: 40, queued: 20, shed: 9, poolBusy: 10, eventLoopDelayMs: 300 }),
];

describe('instanceLabel', () => {
  it('is the pid of a host:pid id, and a configured id whole', () => {
    expect(instanceLabel('ip-10-0-3-17.eu-west-1.compute.internal:48213')).toBe('48213');
    expect(instanceLabel('web-1')).toBe('web-1');
    expect(instanceLabel('api:2')).toBe('2');
  });

  it('keeps the end of a long id, and never comes out empty', () => {
    expect(instanceLabel('asyncscope-api-7d9f8b6c5-x2kqz')).toBe('…5-x2kqz');
    expect(instanceLabel('asyncscope-api-7d9f8b6c5-x2kqz').length).toBeLessThanOrEqual(8);
    expect(instanceLabel('host:')).toBe('host:');
  });

  it('is the same label for the same id (rows and the panel agree)', () => {
    expect(instanceLabel(THREE[0]?.instance ?? '')).toBe(instanceLabel('web-a:4101'));
  });
});

describe('instanceTotals', () => {
  it('sums the instances that are up, leaves the gone one out, and takes the worst event-loop delay', () => {
    expect(instanceTotals(THREE)).toEqual({
      up: 2,
      gone: 1,
      inFlight: 19,
      maxInFlight: 150,
      queued: 3,
      maxQueue: 400,
      shed: 1,
      poolBusy: 17,
      poolMax: 20,
      eventLoopDelayMs: 11.5,
    });
  });

  it('is one instance\'s own figures when there is one', () => {
    const t = instanceTotals([instance('solo', { inFlight: 3, poolBusy: 2 })]);
    expect(t).toMatchObject({ up: 1, gone: 0, inFlight: 3, poolBusy: 2, poolMax: 10 });
  });
});

describe('instanceStateText', () => {
  it('says up, or gone and for how long', () => {
    expect(instanceStateText({ state: 'up', ageMs: 900 })).toBe('up');
    expect(instanceStateText({ state: 'gone', ageMs: 5400 })).toBe('gone 5 s');
    expect(instanceStateText({ state: 'gone', ageMs: 61_000 })).toBe('gone 1 min');
  });
});

describe('eventsView', () => {
  it('says nothing for the in-process log', () => {
    expect(eventsView({ mode: 'local', connected: true, published: 0, dropped: 0 })).toBeNull();
  });

  it('is a quiet line while the broker is connected and nothing was dropped', () => {
    expect(eventsView({ mode: 'broker', connected: true, published: 1200, dropped: 0 })).toMatchObject({ tone: 'ok', text: 'Events: broker connected' });
  });

  it('warns when the broker is disconnected, and counts what was dropped', () => {
    const v = eventsView({ mode: 'broker', connected: false, published: 1200, dropped: 3456 });
    expect(v?.tone).toBe('warn');
    expect(v?.text).toMatch(/^Broker disconnected: no new events are shown/); // this instance's own come through the broker too
    expect(v?.text).toContain('3,456 dropped');
    expect(v?.detail).toContain('Calls are still served');
  });

  it('warns about drops even once connected again', () => {
    expect(eventsView({ mode: 'broker', connected: true, published: 10, dropped: 2 })).toMatchObject({ tone: 'warn', text: 'Events: broker connected · 2 dropped' });
  });
});
