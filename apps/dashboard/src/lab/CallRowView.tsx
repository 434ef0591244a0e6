import { memo } from 'react';
import { isTerminal, runningMs, stateLabel, type CallRow } from './call-state';
import { HopCells } from './HopCells';
import { fmtMs, servedBy, serverVerdict, shortCode } from './hops';
import { instanceLabel } from '../server/cluster';
import type { ClusterInfo } from '../server/use-server-stats';
import type { LiveBars } from './live-bars';
import { TimelineBar } from './TimelineBar';
import type { TimeWindow } from './waterfall';

interface RowProps {
  row: CallRow;
  top: number;
  window: TimeWindow;
  /** For rows in flight: the clock in 100 ms steps (their elapsed time); 0 for finished rows. */
  now: number;
  live: LiveBars;
  /** The cluster, when the row shows which instance served it (null: one process, no column). */
  instances: ClusterInfo | null;
  inspected: boolean;
  onSelect: (selected: boolean) => void;
  onInspect: () => void;
  onCancel: () => void;
}

export const CallRowView = memo(
  function CallRowView({ row, top, window, now, live, instances, inspected, onSelect, onInspect, onCancel }: RowProps) {
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
        {instances && <InstanceCell row={row} gone={instances.gone} />}
        <HopCells row={row} verdictText={verdict.text} />
        <div className="c-bar" role="cell">
          <TimelineBar row={row} window={window} live={terminal ? null : live} />
        </div>
        <div className="c-act" role="cell">
          <button type="button" className="btn-x" disabled={terminal} onClick={onCancel} aria-label={`Cancel call #${n}`} title={terminal ? undefined : `Cancel call #${n}`}>
            ✕
          </button>
        </div>
      </div>
    );
  },
  (a, b) => a.row === b.row && a.top === b.top && a.window === b.window && a.now === b.now && a.inspected === b.inspected && a.live === b.live && a.instances === b.instances,
);

/** The instance that served the row's call (its latest attempt): a short label, the full id in the title. */
function InstanceCell({ row, gone }: { row: CallRow; gone: ReadonlySet<string> }) {
  const served = servedBy(row.hops);
  if (!served) return <div className="c-inst" role="cell" data-testid="instance" />;
  const isGone = gone.has(served.instance);
  const earlier = served.all.filter((i) => i !== served.instance);
  const title = `Served by ${served.instance}${isGone ? ' (gone: it no longer reports)' : ''}${earlier.length > 0 ? `; earlier attempts on ${earlier.join(', ')}` : ''}`;
  return (
    <div className={`c-inst mono ${isGone ? 'inst-gone' : ''}`} role="cell" data-testid="instance" data-instance={served.instance} title={title}>
      {instanceLabel(served.instance)}
      {earlier.length > 0 && <span className="inst-more">+{earlier.length}</span>}
    </div>
  );
}
