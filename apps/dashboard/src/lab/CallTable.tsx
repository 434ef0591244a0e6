import { useVirtualizer } from '@tanstack/react-virtual';
import { memo, useEffect, useLayoutEffect, useMemo, useRef, useState } from 'react';
import { isTerminal, runningMs, stateLabel, type CallRow } from './call-state';
import type { CallsSnapshot } from './calls-store';
import { fmtMs, hopSlots, QUERY_CANCELED, serverVerdict, shortCode, signalLabel, signalText, waitsForPoolConnection, WAITING_FOR_POOL } from './hops';
import { barBox, markersOf, segmentsOf, ticks, timeWindow, xOf, type TimeWindow, type Zoom } from './waterfall';
import { useServices } from '../services';

export const ROW_HEIGHT = 28;

const ZOOMS: { value: Zoom; label: string }[] = [
  { value: 'fit', label: 'Fit run' },
  { value: 1000, label: '1 s' },
  { value: 2000, label: '2 s' },
  { value: 5000, label: '5 s' },
  { value: 10_000, label: '10 s' },
  { value: 30_000, label: '30 s' },
  { value: 60_000, label: '60 s' },
];

function useWidth<T extends HTMLElement>(): [React.RefObject<T | null>, number] {
  const ref = useRef<T>(null);
  const [width, setWidth] = useState(0);
  useLayoutEffect(() => {
    const el = ref.current;
    if (!el) return;
    setWidth(el.clientWidth);
    const observer = new ResizeObserver(() => { setWidth(el.clientWidth); });
    observer.observe(el);
    return () => { observer.disconnect(); };
  }, []);
  return [ref, width];
}

export function CallTable({ snap }: { snap: CallsSnapshot }) {
  const { calls, run: runRef } = useServices();
  const scrollRef = useRef<HTMLDivElement>(null);
  const [axisRef, axisWidth] = useWidth<HTMLDivElement>();
  const [zoom, setZoom] = useState<Zoom>('fit');
  const [panMs, setPanMs] = useState(0);
  const { rows, run, now } = snap;

  const virtualizer = useVirtualizer({
    count: rows.length,
    getScrollElement: () => scrollRef.current,
    estimateSize: () => ROW_HEIGHT,
    overscan: 6,
    // Scroll updates render with the next frame's batch instead of synchronously inside each scroll event.
    useFlushSync: false,
  });

  // Bring the inspected row into view (e.g. "show the cause").
  useEffect(() => {
    if (snap.inspected !== null) virtualizer.scrollToIndex(snap.inspected, { align: 'auto' });
  }, [snap.inspected, virtualizer]);

  const runStart = run?.startedAt ?? now;
  const latest = run?.endedAt ?? now;
  const win = timeWindow(runStart, Math.max(latest, lastHopAt(rows, latest)), Math.max(1, axisWidth), zoom, panMs);
  // Stable identity while the window does not change, so finished rows skip rendering.
  const stableWindow = useMemo<TimeWindow>(
    () => ({ start: win.start, spanMs: win.spanMs, widthPx: win.widthPx }),
    [win.start, win.spanMs, win.widthPx],
  );
  const axisTicks = ticks(stableWindow, runStart);
  // Growing bars follow the clock by a direct width write each frame (a few dozen elements): rows
  // themselves re-render only when their call changes, or their elapsed-time text does (10 times a second).
  const nowPx = xOf(now, stableWindow);
  const live = useLiveBars(nowPx);
  const nowTick = Math.floor(now / 100) * 100;
  const maxPan = zoom === 'fit' ? 0 : Math.max(0, latest - runStart - zoom);
  const allActiveSelected = snap.active > 0 && snap.selectedActive === snap.active;

  return (
    <div className="table-x">
    <div className="table" role="table" aria-label="Calls" aria-rowcount={rows.length}>
      <div className="thead" role="rowgroup">
        <div className="tr th" role="row">
          <div className="c-sel" role="columnheader">
            <input
              type="checkbox"
              aria-label="Select every call still running or queued"
              checked={allActiveSelected}
              disabled={snap.active === 0}
              onChange={(e) => { calls.selectActive(e.target.checked); }}
            />
          </div>
          <div className="c-num" role="columnheader">#</div>
          <div className="c-user" role="columnheader">user</div>
          <div className="c-state" role="columnheader">client state</div>
          <div className="c-time" role="columnheader" title="From the first attempt to the end (queue wait excluded)">time</div>
          <div className="c-hops" role="columnheader">
            <span className="slot-h" title="Server received the call (qN: waited in the server's admission queue)">recv</span>
            <span className="slot-h" title="SQL statement started, on this Postgres backend pid (pool: received, waiting for a pool connection)">pid</span>
            <span className="slot-h" title="The call's server-side AbortSignal fired, and why (client: its request or socket closed; by id: calls.cancel; deadline)">signal</span>
            <span className="slot-h" title="Postgres cancel request sent for the running statement (or removed from the pool queue)">cancel</span>
            <span className="slot-h" title="How the statement ended: SQLSTATE 57014 = query_canceled">sql end</span>
            <span className="slot-h" title="How the server settled the call (! = it finished although the client had stopped waiting)">result</span>
          </div>
          <div className="c-bar" role="columnheader">
            <div className="axis" ref={axisRef} aria-hidden="true">
              {axisTicks.map((t) => (
                <span key={t.label} className="tick" style={{ left: t.x }}>
                  {t.label}
                </span>
              ))}
            </div>
          </div>
          <div className="c-act" role="columnheader">
            <span className="sr-only">cancel</span>
          </div>
        </div>
        <div className="zoom-bar">
          <span className="zoom-legend" aria-label="Timeline legend">
            <span className="lg lg-queued" /> waiting for a slot
            <span className="lg lg-attempt" /> attempt
            <span className="lg lg-backoff" /> backoff
            <span className="mk mk-received" /> received
            <span className="mk mk-statement" /> SQL
            <span className="mk mk-signal" /> signal
            <span className="mk mk-ended" /> stmt end
            <span className="mk mk-settled" /> settled
          </span>
          <label className="zoom">
            Zoom{' '}
            <select
              value={String(zoom)}
              onChange={(e) => {
                setZoom(e.target.value === 'fit' ? 'fit' : Number(e.target.value));
                setPanMs(0);
              }}
              data-testid="zoom"
            >
              {ZOOMS.map((z) => (
                <option key={String(z.value)} value={String(z.value)}>
                  {z.label}
                </option>
              ))}
            </select>
          </label>
          <label className="zoom">
            Pan{' '}
            <input
              type="range"
              min={0}
              max={Math.max(1, Math.round(maxPan))}
              step={50}
              value={Math.min(panMs, maxPan)}
              disabled={maxPan === 0}
              onChange={(e) => { setPanMs(Number(e.target.value)); }}
              aria-label="Pan the timeline"
            />
          </label>
        </div>
      </div>
      <div className="tbody" ref={scrollRef} role="rowgroup" tabIndex={-1}>
        {rows.length === 0 ? (
          <div className="empty">
            Launch a run: every call gets a row here, with its state on the client, its hops on the server, and its bar on the timeline.
          </div>
        ) : (
          <div style={{ height: virtualizer.getTotalSize(), position: 'relative' }}>
            {virtualizer.getVirtualItems().map((item) => {
              const row = rows[item.index];
              if (!row) return null;
              const active = !isTerminal(row.state);
              return (
                <RowView
                  key={row.callId}
                  row={row}
                  top={item.start}
                  window={stableWindow}
                  now={active ? nowTick : 0}
                  live={live}
                  inspected={snap.inspected === item.index}
                  onSelect={(selected) => { calls.select(item.index, selected); }}
                  onInspect={() => { calls.inspect(item.index); }}
                  onCancel={() => { runRef.current?.cancel(item.index); }}
                />
              );
            })}
          </div>
        )}
      </div>
    </div>
    </div>
  );
}

function lastHopAt(rows: readonly CallRow[], fallback: number): number {
  // Only the run's end matters for "fit"; server hops a little later (a settle after a cancel) should fit too.
  let last = fallback;
  for (let i = Math.max(0, rows.length - 200); i < rows.length; i++) {
    const hop = rows[i]?.hops.at(-1);
    if (hop && hop.at > last) last = hop.at;
  }
  return last;
}

interface RowProps {
  row: CallRow;
  top: number;
  window: TimeWindow;
  /** For rows in flight: the clock in 100 ms steps (their elapsed time); 0 for finished rows. */
  now: number;
  live: LiveBars;
  inspected: boolean;
  onSelect: (selected: boolean) => void;
  onInspect: () => void;
  onCancel: () => void;
}

const RowView = memo(
  function RowView({ row, top, window, now, live, inspected, onSelect, onInspect, onCancel }: RowProps) {
    const n = row.index + 1;
    const terminal = isTerminal(row.state);
    const elapsed = runningMs(row, now);
    const verdict = serverVerdict(row);
    return (
      <div
        className={`tr st-${row.state} ${inspected ? 'inspected' : ''} ${row.isCause ? 'is-cause' : ''}`}
        role="row"
        style={{ transform: `translateY(${top}px)` }}
        data-testid={`row-${n}`}
        data-state={row.state}
        aria-selected={row.selected}
      >
        <div className="c-sel" role="cell">
          <input type="checkbox" checked={row.selected} aria-label={`Select call #${n}`} onChange={(e) => { onSelect(e.target.checked); }} />
        </div>
        <div className="c-num" role="cell">
          <button type="button" className="link num" onClick={onInspect} title={`Inspect call #${n} (${row.callId})`}>
            #{n}
          </button>
        </div>
        <div className="c-user num" role="cell">{row.userId}</div>
        <div className="c-state" role="cell">
          <span className="badge" data-testid="state" title={row.error ? `${row.error.code}: ${row.error.message}` : row.causeIndex !== undefined ? `cancelled because #${row.causeIndex + 1} failed` : undefined}>
            {stateLabel(row)}
            {row.error && row.state === 'failed' && !row.isCause && <span className="badge-sub"> {shortCode(row.error.code)}</span>}
          </span>
        </div>
        <div className="c-time num" role="cell">{elapsed === undefined ? '' : fmtMs(elapsed)}</div>
        <HopCells row={row} verdictText={verdict.text} />
        <div className="c-bar" role="cell">
          <Bar row={row} window={window} live={terminal ? null : live} />
        </div>
        <div className="c-act" role="cell">
          <button type="button" className="btn-x" disabled={terminal} onClick={onCancel} aria-label={`Cancel call #${n}`} title={terminal ? undefined : `Cancel call #${n}`}>
            ✕
          </button>
        </div>
      </div>
    );
  },
  (a, b) => a.row === b.row && a.top === b.top && a.window === b.window && a.now === b.now && a.inspected === b.inspected && a.live === b.live,
);

function HopCells({ row, verdictText }: { row: CallRow; verdictText: string }) {
  const s = hopSlots(row.hops);
  const clientStopped = row.state === 'cancelled' || row.state === 'timed-out';
  const settledOkAfterStop = s.settled?.code === 'OK' && clientStopped;
  const stillWorking = clientStopped && row.hops.length > 0 && !s.settled && !s.signal;
  if (row.hops.length === 0 && verdictText !== '') {
    return (
      <div className="c-hops" role="cell" data-testid="hops">
        <span className={`slot-wide ${row.state === 'cancelled' && row.startedAt === undefined ? 'slot-wide-ok' : ''}`}>{verdictText}</span>
      </div>
    );
  }
  return (
    <div className="c-hops" role="cell" title={verdictText || undefined} data-testid="hops">
      <span className={`slot ${s.received ? (s.queued ? 'slot-warn' : 'slot-on') : ''}`} data-slot="recv">
        {s.received ? (s.queued ? `q${s.queued.position}` : '✓') : ''}
      </span>
      {s.statement ? (
        <span className="slot slot-on" data-slot="sql">{s.statement.pid}</span>
      ) : waitsForPoolConnection(s) ? (
        <span className="slot slot-wait" data-slot="sql" data-wait="pool" title={`Received, ${WAITING_FOR_POOL} (every connection of the server's pool is busy)`}>pool…</span>
      ) : (
        <span className="slot" data-slot="sql" />
      )}
      <span className={`slot ${s.signal ? 'slot-signal' : stillWorking ? 'slot-warn pulse' : ''}`} data-slot="signal" title={s.signal ? `Signal fired: ${signalText(s.signal.reason)}` : undefined}>
        {s.signal ? signalLabel(s.signal.reason) : stillWorking ? '…' : ''}
      </span>
      <span className={`slot ${s.cancel ? 'slot-signal' : ''}`} data-slot="cancel">{s.cancel ? (s.cancel.queued ? 'dequeued' : 'sent') : ''}</span>
      <span className={`slot ${s.ended ? (s.ended.sqlstate === QUERY_CANCELED ? 'slot-cancelled' : s.ended.sqlstate ? 'slot-bad' : 'slot-on') : ''}`} data-slot="end">
        {s.ended ? (s.ended.sqlstate ?? 'ok') : s.rolledBack ? 'rollback' : ''}
      </span>
      <span
        className={`slot ${s.settled ? (settledOkAfterStop ? 'slot-warn' : s.settled.code === 'OK' ? 'slot-ok' : s.settled.code === 'CLIENT_CLOSED_REQUEST' || s.settled.code === 'TIMEOUT' ? 'slot-cancelled' : 'slot-bad') : ''}`}
        data-slot="settled"
        title={s.settled ? `${s.settled.code} after ${fmtMs(s.settled.ms)}${settledOkAfterStop ? ' — the server finished anyway; the answer was dropped' : ''}` : undefined}
      >
        {s.settled ? `${shortCode(s.settled.code)}${settledOkAfterStop ? '!' : ''}` : ''}
      </span>
    </div>
  );
}

/** The segments still growing, and a way to keep their right edge at "now" without rendering their rows. */
interface LiveBars {
  /** Ref callback for a growing segment starting at `left` px (clamped to `maxPx`). */
  attach: (el: HTMLElement, left: number, minPx: number, maxPx: number) => () => void;
}

function useLiveBars(nowPx: number): LiveBars {
  const entries = useRef(new Map<HTMLElement, { left: number; minPx: number; maxPx: number }>());
  const nowRef = useRef(nowPx);
  nowRef.current = nowPx;
  const width = (e: { left: number; minPx: number; maxPx: number }, now: number): string => `${Math.max(e.minPx, Math.min(e.maxPx - e.left, now - e.left)).toFixed(1)}px`;
  useLayoutEffect(() => {
    for (const [el, e] of entries.current) el.style.width = width(e, nowPx);
  }, [nowPx]);
  return useMemo<LiveBars>(
    () => ({
      attach: (el, left, minPx, maxPx) => {
        const entry = { left, minPx, maxPx };
        entries.current.set(el, entry);
        el.style.width = width(entry, nowRef.current);
        return () => { entries.current.delete(el); };
      },
    }),
    [],
  );
}

/** The row's waterfall. The segment still growing (queued, running or in backoff) is kept at "now" by LiveBars. */
function Bar({ row, window, live }: { row: CallRow; window: TimeWindow; live: LiveBars | null }) {
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
