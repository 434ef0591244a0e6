import { useId, useState } from 'react';
import { fmtMs } from '../lab/hops';
import { useTicking } from '../ui/use-ticking';
import { useUserStream } from './api';
import { streamRate } from './stream-store';

const STREAM_PAGE_SIZES = [10, 100, 500, 1000];

export function StreamAll() {
  const { state: s, start, cancel } = useUserStream();
  const [pageSize, setPageSize] = useState(100);
  const id = useId();
  const running = s.status === 'connecting' || s.status === 'streaming';
  const pct = s.total ? Math.min(100, (s.received / s.total) * 100) : 0;
  const now = Date.now();

  // Keep the rate ticking while the stream runs even between pages.
  useTicking(running, 250);

  const statusText: Record<typeof s.status, string> = {
    idle: 'Not started',
    connecting: 'Connecting…',
    streaming: s.reconnecting ? 'Reconnecting (resumes after the last id)…' : 'Streaming',
    done: 'Done: every user received',
    cancelled: 'Cancelled: unsubscribed, the stream is closed',
    error: `Failed: ${s.error ?? ''}`,
  };

  return (
    <section className="card" aria-labelledby="stream-title">
      <h2 id="stream-title">Stream all users</h2>
      <p className="muted small">One users.stream subscription (SSE), page by page by id. Cancel unsubscribes: the server’s signal fires, the page query in flight is cancelled and the generator ends.</p>
      <div className="stream-controls">
        <label htmlFor={id}>page size</label>
        <select id={id} value={pageSize} onChange={(e) => { setPageSize(Number(e.target.value)); }} disabled={running} data-testid="stream-page-size">
          {STREAM_PAGE_SIZES.map((n) => (
            <option key={n} value={n}>
              {n}
            </option>
          ))}
        </select>
        <button type="button" className="btn btn-primary" disabled={running} onClick={() => { start(pageSize); }} data-testid="stream-start">
          Stream all
        </button>
        <button type="button" className="btn btn-danger" disabled={!running} onClick={() => { cancel(); }} data-testid="stream-cancel">
          Cancel stream
        </button>
      </div>
      <div
        className={`progress progress-${s.status}`}
        role="progressbar"
        aria-label="Users received"
        aria-valuemin={0}
        aria-valuemax={s.total ?? 0}
        aria-valuenow={s.received}
        data-testid="stream-progress"
      >
        <span style={{ width: `${pct}%` }} />
      </div>
      <div className="stream-facts">
        <span className="num" data-testid="stream-received">
          {s.received.toLocaleString('en-US')} / {s.total === null ? '–' : s.total.toLocaleString('en-US')} users
        </span>
        <span className="num">{s.pages.toLocaleString('en-US')} pages</span>
        <span className="num">{Math.round(streamRate(s, now)).toLocaleString('en-US')} users/s</span>
        {s.startedAt !== null && <span className="num">{fmtMs((s.endedAt ?? now) - s.startedAt)}</span>}
      </div>
      <p className={`stream-status status-${s.status}`} role="status" aria-live="polite" data-testid="stream-status">
        {statusText[s.status]}
      </p>
      <p className="stream-server small" data-testid="stream-server">
        Server:{' '}
        {s.server === null
          ? s.status === 'idle'
            ? '—'
            : 'waiting for the stream’s events…'
          : s.server.code === undefined
            ? 'generator running'
            : `generator ended: ${s.server.code}${s.server.ms !== undefined ? ` after ${fmtMs(s.server.ms)}` : ''}`}
      </p>
    </section>
  );
}
