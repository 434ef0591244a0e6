import { CALL_STATES, type CallState } from './call-state';
import type { CallsSnapshot } from './calls-store';
import { fmtMs } from './hops';
import { transportLabel } from './transport';
import { useServices } from '../services';

const STATE_NAMES: Record<CallState, string> = {
  queued: 'queued',
  running: 'running',
  retrying: 'retrying',
  succeeded: 'succeeded',
  failed: 'failed',
  'timed-out': 'timed out',
  cancelled: 'cancelled',
};

export function RunSummary({ snap }: { snap: CallsSnapshot }) {
  const { calls } = useServices();
  const run = snap.run;
  const elapsed = run ? (run.endedAt ?? snap.now) - run.startedAt : 0;
  const settled = snap.counts.succeeded + snap.counts.failed + snap.counts['timed-out'] + snap.counts.cancelled;
  const cause = run?.cause;
  const siblingsCancelled = cause ? snap.siblingsCancelled : 0;
  return (
    <>
      <div className="summary" aria-label="Run summary">
        <ul className="legend" aria-label="Call states (legend)">
          {CALL_STATES.map((s) => (
            <li key={s} className={`legend-item st-${s}`} data-testid={`count-${s}`}>
              <span className="swatch" aria-hidden="true" />
              <span className="legend-name">{STATE_NAMES[s]}</span>
              <span className="legend-count">{snap.counts[s].toLocaleString('en-US')}</span>
            </li>
          ))}
        </ul>
        <div className="run-meta" data-started-at={run?.startedAt}>
          {run ? (
            <>
              <span>{run.config.mode === 'fail-fast' ? 'fail-fast group' : 'settled'} · <span data-testid="run-transport">{transportLabel(run.config.transport)}</span></span>
              <ServerCounts snap={snap} />
              <span>{settled.toLocaleString('en-US')}/{snap.rows.length.toLocaleString('en-US')} done</span>
              <span className="num">{fmtMs(elapsed)}</span>
            </>
          ) : (
            <span className="muted">No run yet</span>
          )}
        </div>
      </div>
      <div className={`cause ${cause ? 'cause-on' : ''}`} role="status" aria-live="polite" data-testid="cause">
        {cause ? (
          <>
            <strong>Fail-fast:</strong>&nbsp;call&nbsp;
            <button type="button" className="link" onClick={() => { calls.inspect(cause.index); }} data-testid="cause-link">
              #{cause.index + 1}
            </button>
            &nbsp;failed with&nbsp;<code>{cause.error.code}</code>&nbsp;and cancelled {siblingsCancelled.toLocaleString('en-US')} sibling{siblingsCancelled === 1 ? '' : 's'}.
            <span className="muted cause-msg">&nbsp;{cause.error.message}</span>
          </>
        ) : snap.missedEvents > 0 ? (
          <span className="muted">The server’s event ring overflowed: {snap.missedEvents.toLocaleString('en-US')} server events were not seen; some rows lack hops.</span>
        ) : null}
      </div>
    </>
  );
}

/** Where the run's calls are on the server: received at all, running SQL, waiting for a pool connection. */
function ServerCounts({ snap }: { snap: CallsSnapshot }) {
  const { server } = snap;
  const received = snap.rows.length - server.unseen;
  const start = snap.run?.startedAt;
  const after = (at: number | undefined): string | undefined => (at !== undefined && start !== undefined ? String(Math.max(0, at - start)) : undefined);
  const first = after(snap.firstReceivedAt);
  const hundredth = after(snap.hundredthReceivedAt);
  const timing = [first !== undefined ? `the first ${first} ms after the run started` : null, hundredth !== undefined ? `the 100th ${hundredth} ms after` : null].filter(Boolean).join(', ');
  return (
    <span
      className="server-counts"
      title={`From the server's activity stream: calls it received${timing ? ` (${timing})` : ''}, calls whose SQL statement runs, calls that wait for one of its pool connections`}
      data-first-received-ms={first}
      data-hundredth-received-ms={hundredth}
    >
      server: <strong className="num" data-testid="server-received">{received.toLocaleString('en-US')}</strong> received
      {' · '}<strong className="num" data-testid="server-sql">{server.sql.toLocaleString('en-US')}</strong> in SQL
      {' · '}<strong className="num" data-testid="server-pool">{server.pool.toLocaleString('en-US')}</strong> wait for a connection
    </span>
  );
}
