/** Small inline-SVG charts of the server's per-second history: the math, apart from the drawing. */
import type { StatsSample } from '@asyncscope/api';

/** A 1·2·5 × 10ⁿ ceiling for a chart's y axis, never below `floor`. */
export function niceCeil(value: number, floor = 1): number {
  const v = Math.max(value, floor);
  const magnitude = 10 ** Math.floor(Math.log10(v));
  for (const step of [1, 2, 5, 10]) {
    if (step * magnitude >= v) return step * magnitude;
  }
  return 10 * magnitude;
}

export interface Point {
  x: number;
  y: number;
}

export interface ChartFrame {
  width: number;
  height: number;
  /** Epoch ms at the right edge (now) and how many ms the chart spans. */
  end: number;
  spanMs: number;
  yMax: number;
}

export function pointsOf(samples: readonly StatsSample[], value: (s: StatsSample) => number, f: ChartFrame): Point[] {
  const start = f.end - f.spanMs;
  const out: Point[] = [];
  for (const s of samples) {
    if (s.at < start) continue;
    const x = ((s.at - start) / f.spanMs) * f.width;
    const y = f.height - (Math.min(value(s), f.yMax) / f.yMax) * f.height;
    out.push({ x: round(x), y: round(y) });
  }
  return out;
}

/** An SVG path: a line through the points, breaking where a sample is missing (gap > 2.5 s: the server was away). */
export function linePath(samples: readonly StatsSample[], value: (s: StatsSample) => number, f: ChartFrame): string {
  const start = f.end - f.spanMs;
  let d = '';
  let previousAt: number | undefined;
  for (const s of samples) {
    if (s.at < start) continue;
    const x = round(((s.at - start) / f.spanMs) * f.width);
    const y = round(f.height - (Math.min(value(s), f.yMax) / f.yMax) * f.height);
    const gap = previousAt === undefined || s.at - previousAt > 2500;
    d += `${gap ? 'M' : 'L'}${x} ${y}`;
    previousAt = s.at;
  }
  return d;
}

/** The largest value over the visible samples of several series. */
export function maxOver(samples: readonly StatsSample[], values: readonly ((s: StatsSample) => number)[], start: number): number {
  let max = 0;
  for (const s of samples) {
    if (s.at < start) continue;
    for (const v of values) max = Math.max(max, v(s));
  }
  return max;
}

function round(n: number): number {
  return Math.round(n * 10) / 10;
}

/** "12.3 ms", "950 µs", "1.2 s": compact latency labels. */
export function fmtLatency(ms: number): string {
  if (ms === 0) return '0';
  if (ms < 1) return `${Math.round(ms * 1000)} µs`;
  if (ms < 10) return `${ms.toFixed(1)} ms`;
  if (ms < 1000) return `${Math.round(ms)} ms`;
  return `${(ms / 1000).toFixed(1)} s`;
}
