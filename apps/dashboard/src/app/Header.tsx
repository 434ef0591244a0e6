import { useCallback, useSyncExternalStore } from 'react';
import { FrameBatcher, viewFrames } from '../lib/frame-batcher';
import type { FeedState } from '../activity/feed';
import { useServices } from '../services';
import { headerStatus } from '../transport/status';
import { usePageSocket } from '../transport/use-page-socket';
import { useTicking } from '../ui/use-ticking';
import type { ServerStatsView } from '../server/use-server-stats';

/**
 * The feed's state, re-read on the page's paced clock (with the lab's views): it changes with every batch of
 * events (the header shows the last sequence number), which during a lab run is hundreds of times a second;
 * each change heard directly was a synchronous render inside the socket's message task, and heard once per
 * animation frame it still changed the header's text, and so laid out and painted the page, 60 times a second.
 */
function useFeedState(): FeedState {
  const { feed } = useServices();
  const subscribe = useCallback(
    (listener: () => void) => {
      const frames = new FrameBatcher(() => undefined, viewFrames);
      const unlisten = frames.subscribe(listener);
      const stop = feed.onState(() => { frames.schedule(); });
      return () => {
        stop();
        unlisten();
      };
    },
    [feed],
  );
  return useSyncExternalStore(subscribe, () => feed.state);
}

export function Header({ stats }: { stats: ServerStatsView }) {
  const { tokens, pageTransport } = useServices();
  const feed = useFeedState();
  const socket = usePageSocket();
  const { tone, text } = headerStatus(stats, socket, pageTransport === 'websocket', feed, Date.now());
  // A "for N s" keeps counting when nothing else arrives.
  useTicking(tone !== 'ok', 1000);

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
      <div className={`conn conn-${tone}`} role="status" aria-live="polite" data-testid="connection" data-socket={pageTransport === 'websocket' ? socket.status : 'http'} title={socket.error ? `Last socket error: ${socket.error}` : undefined}>
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
