import type { RefObject } from 'react';
import { useServices } from '../services';
import type { Tick, Zoom } from './waterfall';

const ZOOMS: { value: Zoom; label: string }[] = [
  { value: 'fit', label: 'Fit run' },
  { value: 1000, label: '1 s' },
  { value: 2000, label: '2 s' },
  { value: 5000, label: '5 s' },
  { value: 10_000, label: '10 s' },
  { value: 30_000, label: '30 s' },
  { value: 60_000, label: '60 s' },
];

interface HeadProps {
  /** The "inst." column: shown when more than one server instance is about. */
  showInstance: boolean;
  allActiveSelected: boolean;
  noneActive: boolean;
  /** The timeline column's axis: CallTable measures its width. */
  axisRef: RefObject<HTMLDivElement | null>;
  axisTicks: readonly Tick[];
  zoom: Zoom;
  onZoom: (zoom: Zoom) => void;
  panMs: number;
  maxPan: number;
  onPan: (panMs: number) => void;
}

/** The call table's column headers, the timeline's axis, its legend and its zoom and pan. */
export function CallTableHead({ showInstance, allActiveSelected, noneActive, axisRef, axisTicks, zoom, onZoom, panMs, maxPan, onPan }: HeadProps) {
  const { calls } = useServices();
  return (
    <div className="thead" role="rowgroup">
      <div className="tr th" role="row">
        <div className="c-sel" role="columnheader">
          <input
            type="checkbox"
            aria-label="Select every call still running or queued"
            checked={allActiveSelected}
            disabled={noneActive}
            onChange={(e) => { calls.selectActive(e.target.checked); }}
          />
        </div>
        <div className="c-num" role="columnheader">#</div>
        <div className="c-user" role="columnheader">user</div>
        <div className="c-state" role="columnheader">client state</div>
        <div className="c-time" role="columnheader" title="From the first attempt to the end (queue wait excluded)">time</div>
        {showInstance && (
          <div className="c-inst" role="columnheader" title="The server instance that served the call (its latest attempt); the full id in the cell's tooltip">
            inst.
          </div>
        )}
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
            onChange={(e) => { onZoom(e.target.value === 'fit' ? 'fit' : Number(e.target.value)); }}
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
            onChange={(e) => { onPan(Number(e.target.value)); }}
            aria-label="Pan the timeline"
          />
        </label>
      </div>
    </div>
  );
}
