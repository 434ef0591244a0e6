import { describe, expect, it } from 'vitest';
import { newRow, reduceCall, type CallEvent } from './call-state';
import { barBox, MIN_TICK_PX, niceSpan, segmentsOf, SPAN_STEPS, ticks, timeWindow, xOf } from './waterfall';

const w = { start: 10_000, spanMs: 1000, widthPx: 500 }; // 2 ms per pixel

describe('barBox', () => {
  it('places a segment by time: left = (from − start) / ms-per-px, width = duration / ms-per-px', () => {
    expect(xOf(10_500, w)).toBe(250);
    expect(barBox(10_100, 10_300, w)).toEqual({ left: 50, width: 100, clippedLeft: false, clippedRight: false });
  });

  it('clips to the window and says so', () => {
    expect(barBox(9_000, 10_200, w)).toEqual({ left: 0, width: 100, clippedLeft: true, clippedRight: false });
    expect(barBox(10_900, 12_000, w)).toEqual({ left: 450, width: 50, clippedLeft: false, clippedRight: true });
    expect(barBox(8_000, 9_000, w)).toBeNull();
    expect(barBox(11_500, 12_000, w)).toBeNull();
  });

  it('keeps very short segments visible, inside the window', () => {
    expect(barBox(10_100, 10_101, w)).toMatchObject({ left: 50, width: 2 });
    expect(barBox(11_000, 11_000, w)).toMatchObject({ left: 498, width: 2 });
    expect(barBox(10_100, 10_090, w)).toMatchObject({ left: 50, width: 2 }); // end before start: a point
  });
});

describe('zoom', () => {
  it('fit: the whole run on a nice span with headroom, stable while the run grows within it', () => {
    expect(niceSpan(1)).toBe(1000);
    expect(niceSpan(1001)).toBe(2000);
    expect(niceSpan(4200)).toBe(5000);
    expect(niceSpan(5700, 1000, SPAN_STEPS)).toBe(6000);
    expect(niceSpan(8100, 1000, SPAN_STEPS)).toBe(10_000);
    const a = timeWindow(0, 2500, 800, 'fit');
    const b = timeWindow(0, 2800, 800, 'fit');
    expect(a).toEqual({ start: 0, spanMs: 3000, widthPx: 800 });
    expect(b).toEqual(a);
    expect(timeWindow(0, 2900, 800, 'fit').spanMs).toBe(4000);
  });

  it('a fixed zoom shows that many ms from the pan offset, never past the end', () => {
    expect(timeWindow(1000, 20_000, 600, 5000)).toEqual({ start: 1000, spanMs: 5000, widthPx: 600 });
    expect(timeWindow(1000, 20_000, 600, 5000, 3000)).toEqual({ start: 4000, spanMs: 5000, widthPx: 600 });
    expect(timeWindow(1000, 20_000, 600, 5000, 60_000).start).toBe(15_000);
    expect(timeWindow(1000, 3000, 600, 5000, 500).start).toBe(1000);
    // A 1 s zoom on a 500 px wide column: 2 ms per pixel, so a 300 ms attempt is 150 px.
    const z = timeWindow(0, 10_000, 500, 1000);
    expect(barBox(200, 500, z)).toMatchObject({ left: 100, width: 150 });
  });
});

describe('ticks', () => {
  it('spaces its labels at least MIN_TICK_PX apart on a narrow axis (the 1024 px layout)', () => {
    for (const widthPx of [180, 270, 340]) {
      const xs = ticks({ start: 0, spanMs: 1000, widthPx }, 0).map((t) => t.x);
      expect(xs.length).toBeGreaterThanOrEqual(2);
      for (let i = 1; i < xs.length; i++) expect((xs[i] ?? 0) - (xs[i - 1] ?? 0)).toBeGreaterThanOrEqual(MIN_TICK_PX);
    }
  });

  it('1·2·5 steps, labelled from the run start', () => {
    expect(ticks({ start: 0, spanMs: 5000, widthPx: 500 }, 0).map((t) => [t.x, t.label])).toEqual([
      [0, '0 s'], [100, '1 s'], [200, '2 s'], [300, '3 s'], [400, '4 s'], [500, '5 s'],
    ]);
    expect(ticks({ start: 0, spanMs: 600, widthPx: 600 }, 0).map((t) => t.label)).toEqual(['0 ms', '100 ms', '200 ms', '300 ms', '400 ms', '500 ms', '600 ms']);
    const panned = ticks({ start: 2500, spanMs: 5000, widthPx: 500 }, 0);
    expect(panned[0]).toEqual({ x: 50, label: '3 s' });
  });
});

describe('segmentsOf', () => {
  const row = (...events: CallEvent[]) => events.reduce(reduceCall, newRow(0, 'r-1', 1, 'websocket', 1000));

  it('queued wait, then the attempt growing until now', () => {
    expect(segmentsOf(row(), 1500)).toEqual([{ kind: 'queued', from: 1000, to: 1500 }]);
    expect(segmentsOf(row({ type: 'started', at: 1200 }, { type: 'attempt', at: 1200, attempt: 0 }), 1500)).toEqual([
      { kind: 'queued', from: 1000, to: 1200 },
      { kind: 'attempt', from: 1200, to: 1500 },
    ]);
  });

  it('attempts with the backoff between them, and the end', () => {
    const r = row(
      { type: 'started', at: 1100 },
      { type: 'attempt', at: 1100, attempt: 0 },
      { type: 'retrying', at: 1300, attempt: 0, delayMs: 150, error: { code: 'SERVICE_UNAVAILABLE', message: '' } },
    );
    expect(segmentsOf(r, 1400)).toEqual([
      { kind: 'queued', from: 1000, to: 1100 },
      { kind: 'attempt', from: 1100, to: 1300, outcome: 'error' },
      { kind: 'backoff', from: 1300, to: 1400 },
    ]);
    const done = [{ type: 'attempt', at: 1450, attempt: 1 }, { type: 'succeeded', at: 1600 }] satisfies CallEvent[];
    expect(segmentsOf(done.reduce(reduceCall, r), 9999)).toEqual([
      { kind: 'queued', from: 1000, to: 1100 },
      { kind: 'attempt', from: 1100, to: 1300, outcome: 'error' },
      { kind: 'backoff', from: 1300, to: 1450 },
      { kind: 'attempt', from: 1450, to: 1600, outcome: 'ok' },
    ]);
  });

  it('a call cancelled while queued is only a wait', () => {
    expect(segmentsOf(row({ type: 'cancelled', at: 1700 }), 9999)).toEqual([{ kind: 'queued', from: 1000, to: 1700 }]);
  });
});
