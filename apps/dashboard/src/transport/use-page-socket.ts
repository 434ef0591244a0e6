import { useSyncExternalStore } from 'react';
import { useServices } from '../services';
import type { SocketState } from './clients';

/** The page's own socket's state (its WebSocket; always 'open' over HTTP). */
export function usePageSocket(): SocketState {
  const { pageSocket } = useServices();
  return useSyncExternalStore(pageSocket.subscribe, pageSocket.get);
}

/**
 * Whether the page's socket is down (the server is away). Calls made meanwhile wait for the reconnect
 * instead of failing, so a view that would say "unreachable" on a failed call says it on this instead.
 */
export function usePageSocketDown(): boolean {
  const { pageTransport } = useServices();
  const { status } = usePageSocket();
  return pageTransport === 'websocket' && (status === 'reconnecting' || status === 'closed');
}
