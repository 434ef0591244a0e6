import { describe, expect, it } from 'vitest';
import { CLOSE_UNAUTHORIZED, PAGE_TRANSPORT, socketEvent } from './services';
import { INITIAL_SOCKET_STATE, nextSocketState } from './transport/clients';

describe('the page’s transport and its socket reports', () => {
  it('the page’s own traffic rides the WebSocket by default', () => {
    expect(PAGE_TRANSPORT).toBe('websocket');
  });

  it('maps @asyncscope/client’s connection states onto the header’s', () => {
    expect(socketEvent({ state: 'open', error: null })).toEqual({ type: 'open' });
    expect(socketEvent({ state: 'connecting', error: null })).toEqual({ type: 'connecting', error: null, closeCode: undefined });
    expect(socketEvent({ state: 'idle', error: null })).toMatchObject({ type: 'closed' });
    const refused = socketEvent({ state: 'connecting', error: new Error('closed'), lastClose: { code: CLOSE_UNAUTHORIZED, reason: 'unauthorized' } });
    expect(refused).toMatchObject({ type: 'connecting', closeCode: 4401 });
    // A refused token after an open socket: reconnecting, and the close code kept for the token gate.
    const open = nextSocketState(INITIAL_SOCKET_STATE, { type: 'open' }, 1);
    expect(nextSocketState(open, refused, 2)).toMatchObject({ status: 'reconnecting', attempt: 1, closeCode: 4401, error: 'closed' });
  });
});
