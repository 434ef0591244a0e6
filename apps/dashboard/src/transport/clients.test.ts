import type { ApiClient } from '@asyncscope/client';
import { describe, expect, it } from 'vitest';
import { INITIAL_SOCKET_STATE, LabClients, nextSocketState, SocketStateStore, type MakeClient, type SocketState } from './clients';

function fakeMaker() {
  const made: { transport: string; closed: boolean; onState: (s: SocketState) => void }[] = [];
  const make: MakeClient = (transport, onState) => {
    const entry = { transport, closed: false, onState };
    made.push(entry);
    return { api: { transport } as unknown as ApiClient, close: () => { entry.closed = true; } };
  };
  return { make, made };
}

describe('LabClients', () => {
  it('creates one client per transport, lazily, and HTTP/2 shares the per-call HTTP client', () => {
    const { make, made } = fakeMaker();
    const clients = new LabClients(make);
    expect(made).toHaveLength(0);
    const ws = clients.get('websocket');
    expect(clients.get('websocket')).toBe(ws);
    expect(clients.get('http2')).toBe(clients.get('http'));
    expect(made.map((m) => m.transport)).toEqual(['websocket', 'http']);
  });

  it('closes the sockets of the transports not in use, and reopens on demand', () => {
    const { make, made } = fakeMaker();
    const clients = new LabClients(make, () => 5);
    clients.get('websocket');
    clients.get('http-batch');
    clients.closeOthers('http-batch');
    expect(made.map((m) => [m.transport, m.closed])).toEqual([['websocket', true], ['http-batch', false]]);
    expect(clients.open()).toEqual(['http-batch']);
    expect(clients.stateOf('websocket').get().status).toBe('idle');
    clients.get('websocket');
    expect(made).toHaveLength(3);
    clients.closeOthers(null);
    expect(clients.open()).toEqual([]);
    expect(made.every((m) => m.closed)).toBe(true);
  });

  it('publishes each client’s socket state', () => {
    const { make, made } = fakeMaker();
    const clients = new LabClients(make);
    clients.get('websocket');
    const seen: string[] = [];
    clients.stateOf('websocket').subscribe(() => { seen.push(clients.stateOf('websocket').get().status); });
    made[0]?.onState({ status: 'open', attempt: 0, error: null, since: 1 });
    made[0]?.onState({ status: 'open', attempt: 0, error: null, since: 1 }); // unchanged: no news
    made[0]?.onState({ status: 'reconnecting', attempt: 1, error: 'gone', since: 2 });
    expect(seen).toEqual(['open', 'reconnecting']);
  });
});

describe('nextSocketState', () => {
  it('connecting → open → connecting again is a reconnect, counted until open', () => {
    let s: SocketState = INITIAL_SOCKET_STATE;
    s = nextSocketState(s, { type: 'connecting' }, 10);
    expect(s).toEqual({ status: 'connecting', attempt: 0, error: null, since: 10 });
    s = nextSocketState(s, { type: 'open' }, 20);
    expect(s).toEqual({ status: 'open', attempt: 0, error: null, since: 20 });
    s = nextSocketState(s, { type: 'connecting', error: new Error('socket closed (1006)') }, 30);
    expect(s).toEqual({ status: 'reconnecting', attempt: 1, error: 'socket closed (1006)', since: 30 });
    s = nextSocketState(s, { type: 'connecting' }, 40);
    expect(s).toMatchObject({ status: 'reconnecting', attempt: 2, error: 'socket closed (1006)', since: 30 });
    s = nextSocketState(s, { type: 'open' }, 50);
    expect(s).toEqual({ status: 'open', attempt: 0, error: null, since: 50 });
    s = nextSocketState(s, { type: 'closed' }, 60);
    expect(s).toMatchObject({ status: 'closed', since: 60 });
  });

  it('a first connect that fails is already a reconnect', () => {
    expect(nextSocketState(INITIAL_SOCKET_STATE, { type: 'connecting', error: 'refused' }, 1)).toMatchObject({ status: 'reconnecting', attempt: 1, error: 'refused' });
  });

  it('the store tells its listeners only about changes', () => {
    const store = new SocketStateStore();
    let calls = 0;
    const off = store.subscribe(() => { calls++; });
    store.set({ status: 'open', attempt: 0, error: null, since: 1 });
    store.set({ status: 'open', attempt: 0, error: null, since: 2 });
    off();
    store.set({ status: 'closed', attempt: 0, error: null, since: 3 });
    expect(calls).toBe(1);
    expect(store.get().status).toBe('closed');
  });
});
