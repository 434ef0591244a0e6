import { useVirtualizer } from '@tanstack/react-virtual';
import { useEffect, useLayoutEffect, useMemo, useRef, useState } from 'react';
import type { ClusterInfo } from '../server/use-server-stats';
import { useServices } from '../services';
import { CallRowView } from './CallRowView';
import { CallTableHead } from './CallTableHead';
import { isTerminal, type CallRow } from './call-state';
import type { CallsSnapshot } from './calls-store';
import { useLiveBars } from './live-bars';
import { ticks, timeWindow, xOf, type TimeWindow, type Zoom } from './waterfall';

const ROW_HEIGHT = 28;

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

export function CallTable({ snap, cluster }: { snap: CallsSnapshot; cluster: ClusterInfo }) {
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
  // Which instance served each row: shown once there is more than one (in one process it would be noise).
  const instances = cluster.size > 1 || snap.instances.length > 1 ? cluster : null;
  const allActiveSelected = snap.active > 0 && snap.selectedActive === snap.active;

  return (
    <div className="table-x">
    <div className={`table ${instances ? 'table-instances' : ''}`} role="table" aria-label="Calls" aria-rowcount={rows.length}>
      <CallTableHead
        showInstance={instances !== null}
        allActiveSelected={allActiveSelected}
        noneActive={snap.active === 0}
        axisRef={axisRef}
        axisTicks={axisTicks}
        zoom={zoom}
        onZoom={(z) => {
          setZoom(z);
          setPanMs(0);
        }}
        panMs={panMs}
        maxPan={maxPan}
        onPan={setPanMs}
      />
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
                <CallRowView
                  key={row.callId}
                  row={row}
                  top={item.start}
                  window={stableWindow}
                  now={active ? nowTick : 0}
                  live={live}
                  instances={instances}
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
