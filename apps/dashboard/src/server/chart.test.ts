import type { StatsSample } from '@asyncscope/api';
import { describe, expect, it } from 'vitest';
import { fmtLatency, linePath, maxOver, niceCeil, pointsOf } from './chart';

const s = (at: number, rps: number): StatsSample => ({ at, requestsPerSecond: rps, latencyP50Ms: 0, latencyP95Ms: 0, latencyP99Ms: 0, eventLoopDelayP50Ms: 0, eventLoopDelayP99Ms: 0, inFlight: 0, queued: 0, shed: 0 });

describe('charts', () => {
  it('y axis ceilings are 1·2·5 steps', () => {
    expect([0, 0.3, 1, 1.2, 3, 7, 12, 480, 501].map((v) => niceCeil(v))).toEqual([1, 1, 1, 2, 5, 10, 20, 500, 1000]);
  });

  it('maps time to x (right edge = now) and value to y (0 at the bottom), clamping at the max', () => {
    const frame = { width: 100, height: 50, end: 10_000, spanMs: 10_000, yMax: 100 };
    expect(pointsOf([s(0, 0), s(5000, 50), s(10_000, 400)], (x) => x.requestsPerSecond, frame)).toEqual([
      { x: 0, y: 50 },
      { x: 50, y: 25 },
      { x: 100, y: 0 },
    ]);
  });

  it('breaks the line where samples are missing (the server was away) and skips samples before the span', () => {
    const frame = { width: 100, height: 10, end: 10_000, spanMs: 8000, yMax: 10 };
    const d = linePath([s(1000, 5), s(2000, 10), s(3000, 10), s(8000, 0), s(9000, 0)], (x) => x.requestsPerSecond, frame);
    expect(d).toBe('M0 0L12.5 0M75 10L87.5 10');
    expect(maxOver([s(1000, 50), s(5000, 7)], [(x) => x.requestsPerSecond], 2000)).toBe(7);
  });

  it('formats latencies compactly', () => {
    expect([0, 0.25, 4.56, 42.4, 1500].map(fmtLatency)).toEqual(['0', '250 µs', '4.6 ms', '42 ms', '1.5 s']);
  });
});
