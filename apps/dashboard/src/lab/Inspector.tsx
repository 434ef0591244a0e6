import { attemptCallId } from '@asyncscope/contract';
import type { CallRow, ServerHop } from './call-state';
import type { CallsSnapshot } from './calls-store';
import { cancelOutcomeText, fmtMs, servedBy, serverVerdict, signalText } from './hops';
import { instanceLabel } from '../server/cluster';

function describeHop(hop: ServerHop): string {
  switch (hop.type) {
    case 'received':
      return `received, budget ${fmtMs(hop.budgetMs)}`;
    case 'queued':
      return `waiting for an admission slot (position ${hop.position})`;
    case 'started':
      return 'admitted, then waits for a pool connection';
    case 'statement.started':
      return `SQL #${hop.statement} started on pid ${hop.pid}`;
    case 'signal.fired':
      return `signal fired: ${signalText(hop.reason)}`;
    case 'cancel.sent':
      return hop.queued ? `SQL #${hop.statement} taken out of the pool queue (never sent to Postgres)` : `pg cancel sent to pid ${hop.pid ?? '?'}`;
    case 'statement.ended':
      return `SQL #${hop.statement} ended${hop.sqlstate ? ` ${hop.sqlstate}${hop.sqlstate === '57014' ? ' query_canceled' : ''}` : ' normally'}, ${fmtMs(hop.ms)}`;
    case 'committed':
      return `committed (${fmtMs(hop.ms)})`;
    case 'rolled_back':
      return `rolled back${hop.sqlstate ? ` (${hop.sqlstate})` : ''}`;
    case 'settled':
      return `settled ${hop.code}, ${fmtMs(hop.ms)}`;
  }
}

function clientLines(row: CallRow, origin: number): { at: number; text: string }[] {
  const lines: { at: number; text: string }[] = [{ at: row.queuedAt, text: 'queued, waiting for a slot' }];
  for (const a of row.attempts) {
    lines.push({ at: a.startedAt, text: a.n === 0 ? 'attempt 1 sent' : `attempt ${a.n + 1} sent as ${attemptCallId(row.callId, a.n)}` });
    if (a.endedAt !== undefined && a.outcome === 'error' && a.endedAt !== row.endedAt) lines.push({ at: a.endedAt, text: `attempt ${a.n + 1} failed${a.code ? ` (${a.code})` : ''}` });
  }
  if (row.endedAt !== undefined) {
    let text: string;
    switch (row.state) {
      case 'succeeded':
        text = 'succeeded';
        break;
      case 'cancelled':
        text = row.cancelledBy === 'sibling' ? `cancelled: #${(row.causeIndex ?? 0) + 1} failed (fail-fast)` : row.cancelledBy === 'cancel-all' ? 'cancelled by “Cancel all”' : 'cancelled by you';
        break;
      case 'timed-out':
        text = `timed out: ${row.error?.message ?? ''}`;
        break;
      default:
        text = `failed: ${row.error ? `${row.error.code} — ${row.error.message}` : ''}`;
    }
    lines.push({ at: row.endedAt, text });
  }
  return lines.sort((a, b) => a.at - b.at).map((l) => ({ ...l, at: l.at - origin }));
}

export function Inspector({ snap, gone }: { snap: CallsSnapshot; gone: ReadonlySet<string> }) {
  const row = snap.inspected !== null ? snap.rows[snap.inspected] : undefined;
  if (!row || !snap.run) {
    return (
      <aside className="inspector inspector-empty" aria-label="Call inspector">
        {/* One text box, so a narrow panel wraps it as a sentence (a flex row would split it into columns). */}
        <p className="inspector-hint">
          Select a call number (<span className="link-like">#12</span>) to see its whole story: every client transition and every server hop, on one clock.
        </p>
      </aside>
    );
  }
  const origin = snap.run.startedAt;
  const verdict = serverVerdict(row);
  const served = servedBy(row.hops);
  // Hops name their instance only when the call went through several (a retry on another instance).
  const perHop = served !== undefined && served.all.length > 1;
  return (
    <aside className="inspector" aria-label="Call inspector" data-testid="inspector">
      <div className="inspector-head">
        <strong>#{row.index + 1}</strong>
        <span>user {row.userId}</span>
        <code>{row.callId}</code>
        <span className={`badge st-${row.state}`}>{row.state}</span>
        {verdict.text && <span className={`verdict verdict-${verdict.tone}`}>server: {verdict.text}</span>}
        {row.cancelOutcome && (
          <span className={row.cancelOutcome === 'instance-gone' ? 'verdict verdict-bad' : 'muted'} data-testid="inspector-cancel-outcome" data-outcome={row.cancelOutcome}>
            calls.cancel: {row.cancelOutcome} — {cancelOutcomeText(row.cancelOutcome)}
          </span>
        )}
        {served && (
          <span className="muted" data-testid="inspector-instance">
            served by{' '}
            {served.all.map((id, i) => (
              <span key={id}>
                {i > 0 && ', '}
                <code className={gone.has(id) ? 'inst-gone' : undefined} title={gone.has(id) ? `${id}: gone (it no longer reports)` : id}>{id}</code>
                {gone.has(id) && ' (gone)'}
              </span>
            ))}
          </span>
        )}
        <span className="muted">times from the run’s start</span>
      </div>
      <div className="inspector-cols">
        <div>
          <h3>Client</h3>
          <ol className="timeline">
            {clientLines(row, origin).map((l, i) => (
              <li key={i} title={l.text}>
                <span className="num t">+{fmtMs(l.at)}</span> {l.text}
              </li>
            ))}
          </ol>
        </div>
        <div>
          <h3>Server</h3>
          {row.hops.length === 0 ? (
            <p className="muted">{row.state === 'cancelled' && row.startedAt === undefined
                ? 'Never sent: it was cancelled while it waited in the browser for a concurrency slot.'
                : row.transport === 'http-batch'
                  ? 'Batched calls share one HTTP request; the server names each by its call id (x-call-ids). No server event for this call yet.'
                  : 'No server event for this call (yet).'}</p>
          ) : (
            <ol className="timeline timeline-server">
              {row.hops.map((h) => (
                <li key={`${h.seq}-${h.type}`} title={`${describeHop(h)} (on ${h.instance})`}>
                  <span className="num t">+{fmtMs(h.at - origin)}</span> {h.attempt > 0 && <span className="muted">try {h.attempt + 1}: </span>}
                  {perHop && <span className="muted mono" title={h.instance}>[{instanceLabel(h.instance)}] </span>}
                  {describeHop(h)}
                </li>
              ))}
            </ol>
          )}
        </div>
      </div>
    </aside>
  );
}
