import { useSyncExternalStore } from 'react';
import type { FeedState } from '../activity/feed';
import { useServices } from '../services';
import type { ServerStatsView } from './use-server-stats';

function useFeedState(): FeedState {
  const { feed } = useServices();
  return useSyncExternalStore((listener) => feed.onState(listener), () => feed.state);
}

export function Header({ stats }: { stats: ServerStatsView }) {
  const { tokens } = useServices();
  const feed = useFeedState();
  const now = Date.now();

  let tone: 'ok' | 'warn' | 'bad' = 'ok';
  let text: string;
  if (stats.offlineSince !== null) {
    tone = 'bad';
    const seconds = Math.max(0, Math.round((now - stats.offlineSince) / 1000));
    text = `Server unreachable for ${seconds} s — reconnecting by itself; the event stream resumes after event #${feed.lastSeq.toLocaleString('en-US')}`;
  } else if (stats.dbUnavailable) {
    tone = 'warn';
    text = 'Server up, database unreachable — the server keeps retrying';
  } else if (!stats.data) {
    tone = 'warn';
    text = 'Connecting…';
  } else if (feed.status !== 'live') {
    tone = 'warn';
    text = feed.status === 'reconnecting' ? 'Connected · event stream reconnecting…' : 'Connected · opening the event stream…';
  } else {
    text = `Connected · event stream live · #${feed.lastSeq.toLocaleString('en-US')}`;
  }

  return (
    <header className="header">
      <div className="brand">
        <span className="logo" aria-hidden="true">
          <i style={{ width: 10, background: 'var(--running)' }} />
          <i style={{ width: 14, background: 'var(--succeeded)' }} />
          <i style={{ width: 7, background: 'var(--failed)' }} />
        </span>
        <h1>asyncscope</h1>
        <span className="subtitle">concurrent, cancellable calls — client and server side by side</span>
      </div>
      <div className={`conn conn-${tone}`} role="status" aria-live="polite" data-testid="connection">
        <span className="dot" aria-hidden="true" />
        <span>{text}</span>
        {feed.missed > 0 && <span className="conn-missed" title="The server's event ring overflowed before the dashboard read these events"> · {feed.missed.toLocaleString('en-US')} events missed</span>}
      </div>
      <button type="button" className="btn btn-ghost" onClick={() => { tokens.clear(); }} title="Forget the API token kept for this tab">
        Forget token
      </button>
    </header>
  );
}
