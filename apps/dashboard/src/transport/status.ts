/** The header's one-line status, from the server's answers, the page's socket and the event stream. Pure. */
import type { FeedState } from '../activity/feed';
import type { ServerStatsView } from '../server/use-server-stats';
import type { SocketState } from './clients';

export interface HeaderStatus {
  tone: 'ok' | 'warn' | 'bad';
  text: string;
}

/** What the header's status says: the server, the page's socket, the event stream — the first thing wrong wins. */
export function headerStatus(
  stats: Pick<ServerStatsView, 'offlineSince' | 'dbUnavailable' | 'data'>,
  socket: SocketState,
  websocket: boolean,
  feed: Pick<FeedState, 'status' | 'lastSeq'>,
  now: number,
): HeaderStatus {
  const via = websocket ? 'WebSocket' : 'HTTP';
  const resume = `events resume after #${feed.lastSeq.toLocaleString('en-US')}`;
  const socketDown = websocket && (socket.status === 'reconnecting' || socket.status === 'closed');
  if (socketDown || stats.offlineSince !== null) {
    const since = socketDown ? socket.since : (stats.offlineSince ?? now);
    const seconds = Math.max(0, Math.round((now - since) / 1000));
    const how = socketDown ? `WebSocket reconnecting${socket.attempt > 1 ? ` (attempt ${socket.attempt})` : ''}` : 'reconnecting by itself';
    return { tone: 'bad', text: `Server unreachable for ${seconds} s — ${how}; ${resume}` };
  }
  if (websocket && (socket.status === 'connecting' || socket.status === 'idle')) return { tone: 'warn', text: 'Opening the WebSocket…' };
  if (stats.dbUnavailable) return { tone: 'warn', text: 'Server up, database unreachable — the server keeps retrying' };
  if (!stats.data) return { tone: 'warn', text: 'Connecting…' };
  if (feed.status !== 'live') {
    return { tone: 'warn', text: feed.status === 'reconnecting' ? `Connected over ${via} · event stream reconnecting…` : `Connected over ${via} · opening the event stream…` };
  }
  return { tone: 'ok', text: `Connected over ${via} · event stream live · #${feed.lastSeq.toLocaleString('en-US')}` };
}
