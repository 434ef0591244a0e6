import type { CallRow } from './call-state';
import { cancelOutcomeText, fmtMs, hopSlots, QUERY_CANCELED, shortCode, signalLabel, signalText, waitsForPoolConnection, WAITING_FOR_POOL } from './hops';

/** A row's server hops, one narrow cell each (received, SQL, signal, cancel, statement end, settled). */
export function HopCells({ row, verdictText }: { row: CallRow; verdictText: string }) {
  const s = hopSlots(row.hops);
  const clientStopped = row.state === 'cancelled' || row.state === 'timed-out';
  const settledOkAfterStop = s.settled?.code === 'OK' && clientStopped;
  // The owner is gone (calls.cancel said so): no settle will come, and nothing is still working.
  const ownerGone = !s.settled && row.cancelOutcome === 'instance-gone';
  const stillWorking = clientStopped && row.hops.length > 0 && !s.settled && !s.signal && !ownerGone;
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
      {ownerGone ? (
        <span className="slot slot-bad" data-slot="settled" data-outcome="instance-gone" title={`calls.cancel: ${cancelOutcomeText('instance-gone')}`}>
          GONE
        </span>
      ) : (
        <span
          className={`slot ${s.settled ? (settledOkAfterStop ? 'slot-warn' : s.settled.code === 'OK' ? 'slot-ok' : s.settled.code === 'CLIENT_CLOSED_REQUEST' || s.settled.code === 'TIMEOUT' ? 'slot-cancelled' : 'slot-bad') : ''}`}
          data-slot="settled"
          title={s.settled ? `${s.settled.code} after ${fmtMs(s.settled.ms)}${settledOkAfterStop ? ' — the server finished anyway; the answer was dropped' : ''}` : undefined}
        >
          {s.settled ? `${shortCode(s.settled.code)}${settledOkAfterStop ? '!' : ''}` : ''}
        </span>
      )}
    </div>
  );
}
