/**
 * How the dashboard makes an API client (@asyncscope/client) for a transport: the one place that knows the
 * client package's options. Used by the page (its own client) and by the lab's worker (the lab's clients):
 * no React, no DOM.
 */
import type { ConnectionState } from '@asyncscope/client';
import { closeApiClient, createApiClient } from '@asyncscope/client';
import type { CancelOutcome } from '@asyncscope/contract';
import { nextSocketState, type MakeClient, type SocketEvent, type SocketState } from './clients';

/** The server closes a socket whose connectionParams token it refuses with this code. */
export const CLOSE_UNAUTHORIZED = 4401;

/** A client's connection report, as one SocketState step. */
export function socketEvent(report: ConnectionState): SocketEvent {
  const closeCode = report.lastClose?.code;
  switch (report.state) {
    case 'open':
      return { type: 'open' };
    case 'idle':
      return { type: 'closed', error: report.error, closeCode };
    case 'connecting':
      return { type: 'connecting', error: report.error, closeCode };
  }
}

/**
 * A client over `transport`, reporting its socket's state and the server's answers to the cancels it sends;
 * the one place that knows the client package's options.
 */
export function clientMaker(origin: string, token: () => string, now: () => number = Date.now, onCancelOutcome?: (outcomes: CancelOutcome[]) => void): MakeClient {
  return (transport, onState) => {
    let state: SocketState = { status: transport === 'websocket' ? 'connecting' : 'open', attempt: 0, error: null, since: now() };
    onState(state);
    const api = createApiClient({
      url: `${origin}/trpc`,
      token,
      transport,
      onConnectionState: (report) => {
        state = nextSocketState(state, socketEvent(report), now());
        onState(state);
      },
      ...(onCancelOutcome ? { onCancelOutcome } : {}),
    });
    return { api, close: () => { void closeApiClient(api).catch(() => undefined); } };
  };
}
