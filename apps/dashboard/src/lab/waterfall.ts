/**
 * Waterfall layout: where a row's segments and markers go, in pixels, for a time window. Times are epoch
 * milliseconds (Date.now on the client, the same clock the server stamps its events with).
 */
import type { CallRow, CallState } from './call-state';
import { hopSlots } from './hops';

export interface TimeWindow {
  /** Epoch ms at the left edge. */
  start: number;
  /** Milliseconds shown across the full width. */
  spanMs: number;
  widthPx: number;
}

export function xOf(t: number, w: TimeWindow): number {
  return ((t - w.start) / w.spanMs) * w.widthPx;
}

export interface BarBox {
  left: number;
  width: number;
  /** The segment goes on beyond the left / right edge. */
  clippedLeft: boolean;
  clippedRight: boolean;
}

/**
 * Pixel box of [from, to] in the window, clipped to it; null when it is entirely outside. A segment too
 * short to see gets `minPx`, so a 1 ms call still shows.
 */
export function barBox(from: number, to: number, w: TimeWindow, minPx = 2): BarBox | null {
  const x0 = xOf(from, w);
  const x1 = xOf(Math.max(from, to), w);
  if (x1 < 0 || x0 > w.widthPx) return null;
  const left = Math.max(0, x0);
  const right = Math.min(w.widthPx, x1);
  let width = right - left;
  let adjustedLeft = left;
  if (width < minPx) {
    width = minPx;
    adjustedLeft = Math.min(left, w.widthPx - minPx);
  }
  return { left: adjustedLeft, width, clippedLeft: x0 < 0, clippedRight: x1 > w.widthPx };
}

/** Tick steps: 1·2·5 × 10ⁿ. */
export const TICK_STEPS = [1, 2, 5] as const;
/** Spans for "fit": finer, so a run fills most of the width, yet few enough that bars don't creep every frame. */
export const SPAN_STEPS = [1, 1.5, 2, 3, 4, 5, 6, 8] as const;

/** The smallest step × 10ⁿ ms value ≥ ms (and ≥ minMs). */
export function niceSpan(ms: number, minMs = 1000, steps: readonly number[] = TICK_STEPS): number {
  const target = Math.max(ms, minMs);
  let magnitude = 10 ** Math.floor(Math.log10(target));
  for (;;) {
    for (const step of steps) {
      const candidate = step * magnitude;
      if (candidate >= target) return candidate;
    }
    magnitude *= 10;
  }
}

export type Zoom = 'fit' | number;

/**
 * The window for a run that started at `runStart`, with `latest` the latest time to show (now while it
 * runs, its end afterwards). 'fit' shows it all, on a nice span with 5% headroom; a number shows that many
 * ms starting `panMs` after the run's start.
 */
export function timeWindow(runStart: number, latest: number, widthPx: number, zoom: Zoom, panMs = 0): TimeWindow {
  if (zoom === 'fit') return { start: runStart, spanMs: niceSpan((latest - runStart) * 1.05, 1000, SPAN_STEPS), widthPx };
  const maxPan = Math.max(0, latest - runStart - zoom);
  return { start: runStart + Math.min(Math.max(0, panMs), maxPan), spanMs: zoom, widthPx };
}

export interface Tick {
  x: number;
  label: string;
}

/** Axis ticks at a 1·2·5 step giving about `target` ticks, labelled relative to `origin` (the run's start). */
/** Room each tick label gets on the axis. */
export const MIN_TICK_PX = 70;

export function ticks(w: TimeWindow, origin: number, target = 6): Tick[] {
  if (w.widthPx <= 0 || w.spanMs <= 0) return [];
  // A label like "1000 ms" takes ~45 px: a narrow axis (a 1024 px window) gets fewer ticks, not overlapping ones.
  const count = Math.max(2, Math.min(target, Math.floor(w.widthPx / MIN_TICK_PX)));
  const step = niceSpan(w.spanMs / count, 1);
  const first = Math.ceil((w.start - origin) / step) * step;
  const out: Tick[] = [];
  for (let rel = first; origin + rel <= w.start + w.spanMs + 1e-6; rel += step) {
    out.push({ x: xOf(origin + rel, w), label: tickLabel(rel, step) });
  }
  return out;
}

function tickLabel(ms: number, step: number): string {
  if (step >= 1000) return `${Number((ms / 1000).toFixed(step >= 10_000 ? 0 : 1)).toString()} s`;
  return `${Math.round(ms)} ms`;
}

export type SegmentKind = 'queued' | 'attempt' | 'backoff';

export interface Segment {
  kind: SegmentKind;
  from: number;
  to: number;
  /** For attempts: how it ended (undefined while it runs). */
  outcome?: 'ok' | 'error' | 'aborted';
}

/** The spans of a row: waiting for a slot, each attempt, the backoff between attempts. */
export function segmentsOf(row: CallRow, now: number): Segment[] {
  const end = row.endedAt ?? now;
  const segments: Segment[] = [];
  const firstStart = row.startedAt ?? (row.state === 'queued' ? undefined : row.endedAt);
  segments.push({ kind: 'queued', from: row.queuedAt, to: firstStart ?? end });
  row.attempts.forEach((attempt, i) => {
    const attemptEnd = attempt.endedAt ?? end;
    segments.push({ kind: 'attempt', from: attempt.startedAt, to: attemptEnd, ...(attempt.outcome ? { outcome: attempt.outcome } : {}) });
    const next = row.attempts[i + 1];
    if (attempt.endedAt !== undefined && (next || row.state === 'retrying' || row.endedAt !== undefined)) {
      const backoffEnd = next?.startedAt ?? (row.state === 'retrying' ? now : row.endedAt);
      if (backoffEnd !== undefined && backoffEnd > attempt.endedAt) segments.push({ kind: 'backoff', from: attempt.endedAt, to: backoffEnd });
    }
  });
  return segments;
}

export type MarkerKind = 'received' | 'statement' | 'signal' | 'cancel' | 'ended' | 'settled';

export interface Marker {
  kind: MarkerKind;
  at: number;
  title: string;
}

/** Server hops of the latest attempt as markers on the bar. */
export function markersOf(row: CallRow): Marker[] {
  const s = hopSlots(row.hops);
  const out: Marker[] = [];
  if (s.received) out.push({ kind: 'received', at: s.received.at, title: 'server received the call' });
  if (s.statement) out.push({ kind: 'statement', at: s.statement.at, title: `SQL statement started on pid ${s.statement.pid}` });
  if (s.signal) out.push({ kind: 'signal', at: s.signal.at, title: `server signal fired: ${s.signal.reason}` });
  if (s.cancel) out.push({ kind: 'cancel', at: s.cancel.at, title: s.cancel.queued ? 'statement removed from the pool queue' : `pg cancel sent to pid ${s.cancel.pid ?? '?'}` });
  if (s.ended) out.push({ kind: 'ended', at: s.ended.at, title: `statement ended${s.ended.sqlstate ? ` with ${s.ended.sqlstate}` : ''}` });
  if (s.settled) out.push({ kind: 'settled', at: s.settled.at, title: `server settled: ${s.settled.code}` });
  return out;
}

/** Colour of a row's final bar / badge, one per state (the legend shows the same). */
export const STATE_COLOURS: Record<CallState, string> = {
  queued: '#94a3b8',
  running: '#2563eb',
  retrying: '#d97706',
  succeeded: '#16a34a',
  failed: '#dc2626',
  'timed-out': '#a21caf',
  cancelled: '#475569',
};
