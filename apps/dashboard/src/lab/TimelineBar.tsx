import type { CallRow } from './call-state';
import type { LiveBars } from './live-bars';
import { barBox, markersOf, segmentsOf, xOf, type TimeWindow } from './waterfall';

/** The row's waterfall. The segment still growing (queued, running or in backoff) is kept at "now" by LiveBars. */
export function TimelineBar({ row, window, live }: { row: CallRow; window: TimeWindow; live: LiveBars | null }) {
  const segments = segmentsOf(row, live ? Number.POSITIVE_INFINITY : (row.endedAt ?? row.queuedAt));
  const markers = markersOf(row);
  const end = row.endedAt !== undefined ? barBox(row.endedAt, row.endedAt, window, 2) : null;
  return (
    <div className="bar" aria-hidden="true">
      {segments.map((seg, i) => {
        const cls = seg.kind === 'attempt' ? `seg-attempt seg-${seg.outcome ?? 'live'}` : `seg-${seg.kind}`;
        const minPx = seg.kind === 'attempt' ? 2 : 0;
        if (seg.to === Number.POSITIVE_INFINITY) {
          const left = Math.max(0, xOf(seg.from, window));
          if (left > window.widthPx || !live) return null;
          return <span key={i} className={`seg ${cls}`} style={{ left }} ref={(el) => (el ? live.attach(el, left, minPx, window.widthPx) : undefined)} />;
        }
        const box = barBox(seg.from, seg.to, window, minPx);
        if (!box || box.width <= 0) return null;
        return <span key={i} className={`seg ${cls}`} style={{ left: box.left, width: box.width }} />;
      })}
      {end && <span className={`seg-end end-${row.state}`} style={{ left: Math.max(0, end.left - 1) }} />}
      {markers.map((m) => {
        const box = barBox(m.at, m.at, window, 0);
        if (!box) return null;
        return <span key={m.kind} className={`mk mk-${m.kind}`} style={{ left: box.left }} title={m.title} />;
      })}
    </div>
  );
}
