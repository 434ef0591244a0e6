import { describe, expect, it } from 'vitest';
import type { SocketState } from './clients';
import { headerStatus } from './status';

const open: SocketState = { status: 'open', attempt: 0, error: null, since: 0 };
const stats = { offlineSince: null, dbUnavailable: false, data: {} as never };
const live = { status: 'live' as const, lastSeq: 1234 };

describe('headerStatus', () => {
  it('live over the WebSocket', () => {
    expect(headerStatus(stats, open, true, live, 1000)).toEqual({ tone: 'ok', text: 'Connected over WebSocket · event stream live · #1,234' });
    expect(headerStatus(stats, open, false, live, 1000).text).toBe('Connected over HTTP · event stream live · #1,234');
  });

  it('says when the socket is being opened, and when it reconnects (not silent)', () => {
    expect(headerStatus(stats, { ...open, status: 'connecting' }, true, live, 1000)).toEqual({ tone: 'warn', text: 'Opening the WebSocket…' });
    const down = headerStatus(stats, { status: 'reconnecting', attempt: 3, error: 'closed', since: 1000 }, true, live, 8000);
    expect(down.tone).toBe('bad');
    expect(down.text).toBe('Server unreachable for 7 s — WebSocket reconnecting (attempt 3); events resume after #1,234');
    // Over HTTP the socket state does not matter: the stats poll decides.
    expect(headerStatus(stats, { ...open, status: 'reconnecting' }, false, live, 1000).tone).toBe('ok');
    expect(headerStatus({ ...stats, offlineSince: 0 }, open, false, live, 3000).text).toMatch(/^Server unreachable for 3 s — reconnecting by itself/);
  });

  it('then the database, then the event stream', () => {
    expect(headerStatus({ ...stats, dbUnavailable: true }, open, true, live, 0).text).toMatch(/database unreachable/);
    expect(headerStatus(stats, open, true, { status: 'reconnecting', lastSeq: 0 }, 0)).toEqual({ tone: 'warn', text: 'Connected over WebSocket · event stream reconnecting…' });
    expect(headerStatus({ ...stats, data: undefined }, open, true, live, 0).text).toBe('Connecting…');
  });
});
