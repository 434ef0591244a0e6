import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { TRPCClientError } from '@trpc/client';
import { CancelBatcher } from './cancel-by-id';
import { transportOf } from './links';
import { isRetryableCallError } from './policy';
import { callMetaEncoder, ConnectionLostError, reconnectDelayMs, webSocketUrl, withFrameLimit } from './ws';

describe('transportOf', () => {
  it('sends calls with a signal alone, so their abort reaches the server', () => {
    expect(transportOf({ context: {}, signal: new AbortController().signal })).toBe('single');
    expect(transportOf({ context: {}, signal: null })).toBe('batch');
  });
  it('lets the caller choose', () => {
    expect(transportOf({ context: { transport: 'batch' }, signal: new AbortController().signal })).toBe('batch');
    expect(transportOf({ context: { transport: 'single' }, signal: null })).toBe('single');
  });
});

describe('isRetryableCallError', () => {
  const withCode = (code: string) => Object.assign(new TRPCClientError<never>('x'), { data: { code } });
  it('retries shed and unavailable calls', () => {
    expect(isRetryableCallError(withCode('TOO_MANY_REQUESTS'))).toBe(true);
    expect(isRetryableCallError(withCode('SERVICE_UNAVAILABLE'))).toBe(true);
  });
  it('does not retry client errors, timeouts or aborts', () => {
    for (const code of ['BAD_REQUEST', 'NOT_FOUND', 'CONFLICT', 'UNAUTHORIZED', 'TIMEOUT', 'CLIENT_CLOSED_REQUEST']) {
      expect(isRetryableCallError(withCode(code))).toBe(false);
    }
    expect(isRetryableCallError(new DOMException('aborted', 'AbortError'))).toBe(false);
  });
});

describe('isRetryableCallError: a WebSocket that went away', () => {
  it('retries a call lost with its socket (ours or tRPC wsClient error), not one the server answered', () => {
    const lost = new TRPCClientError<never>('closed', { cause: new ConnectionLostError(1006) });
    expect(isRetryableCallError(lost)).toBe(true);
    const trpcClosed = Object.assign(new Error('WebSocket closed'), { name: 'TRPCWebSocketClosedError' });
    expect(isRetryableCallError(new TRPCClientError<never>('closed', { cause: trpcClosed }))).toBe(true);
    expect(isRetryableCallError(new TRPCClientError<never>('x', { cause: new Error('other') }))).toBe(false);
  });
});

describe('reconnectDelayMs', () => {
  it('doubles from 100 ms to at most 5 s, with jitter between half and all of it', () => {
    for (let attempt = 0; attempt < 12; attempt++) {
      const ceiling = Math.min(5000, 100 * 2 ** attempt);
      for (let i = 0; i < 20; i++) {
        const d = reconnectDelayMs(attempt);
        expect(d).toBeGreaterThanOrEqual(ceiling / 2 - 1);
        expect(d).toBeLessThanOrEqual(ceiling);
      }
    }
  });
});

describe('webSocketUrl', () => {
  it('derives ws(s):// from the http(s) URL, path kept', () => {
    expect(webSocketUrl('http://127.0.0.1:3000/trpc')).toBe('ws://127.0.0.1:3000/trpc');
    expect(webSocketUrl('https://example.com/trpc/')).toBe('wss://example.com/trpc');
  });
});

describe('callMetaEncoder', () => {
  it("adds callId and the budget left at encoding time to a call's params, and leaves other messages alone", () => {
    let now = 1000;
    const encoder = callMetaEncoder(new Map([[1, { callId: 'row-7', deadlineAt: 4000 }]]), () => now);
    const message = { id: 1, method: 'query', params: { path: 'users.list', input: {} } };
    expect(JSON.parse(encoder.encode(message))).toEqual({ id: 1, method: 'query', params: { path: 'users.list', input: {}, callId: 'row-7', deadlineMs: 3000 } });
    now = 3500; // a resend after a reconnect carries what is left
    expect(JSON.parse(encoder.encode([message, { id: 2, method: 'query', params: { path: 'x' } }]))).toEqual([
      { id: 1, method: 'query', params: { path: 'users.list', input: {}, callId: 'row-7', deadlineMs: 500 } },
      { id: 2, method: 'query', params: { path: 'x' } },
    ]);
    now = 9000;
    expect((JSON.parse(encoder.encode(message)) as { params: { deadlineMs: number } }).params.deadlineMs).toBe(1); // one floor: budgetMs
    expect(JSON.parse(encoder.encode({ method: 'connectionParams', data: { token: 't' } }))).toEqual({ method: 'connectionParams', data: { token: 't' } });
    expect(message.params).toEqual({ path: 'users.list', input: {} }); // not mutated: resends recompute
  });
});

describe('CancelBatcher', () => {
  it('sends the aborts of one tick as one cancel, in chunks of at most 1000 ids, and reports a failed one', async () => {
    const sent: string[][] = [];
    const failed: string[][] = [];
    const batcher = new CancelBatcher((_error, ids) => { failed.push(ids); });
    batcher.connect((ids) => { sent.push(ids); return ids.length > 1000 || ids[0] === 'fail' ? Promise.reject(new Error('down')) : Promise.resolve(); });
    for (let i = 0; i < 1500; i++) batcher.add(`c${i}`);
    await new Promise((r) => setTimeout(r, 10));
    expect(sent.map((ids) => ids.length)).toEqual([1000, 500]);
    batcher.add('fail');
    await new Promise((r) => setTimeout(r, 10));
    expect(failed).toEqual([['fail']]);
  });
});

describe('the README', () => {
  it('shows the Node 20 WebSocket example exactly as examples/node20-websocket.ts (which is typechecked and linted)', () => {
    const readme = readFileSync(new URL('../../../README.md', import.meta.url), 'utf8');
    const example = readFileSync(new URL('../examples/node20-websocket.ts', import.meta.url), 'utf8');
    const code = example.split('\n').filter((line) => !line.startsWith('//') && !line.startsWith('/*')).join('\n');
    expect(readme).toContain(code);
  });
  it('shows the outside-this-repository snippet exactly as examples/outside-quickstart.ts', () => {
    const readme = readFileSync(new URL('../../../README.md', import.meta.url), 'utf8');
    const example = readFileSync(new URL('../examples/outside-quickstart.ts', import.meta.url), 'utf8');
    const code = example.split('\n').filter((line) => !line.startsWith('//') && !line.startsWith('/*')).join('\n').trim();
    expect(readme).toContain(code);
  });
});

describe('withFrameLimit', () => {
  it("splits wsClient's batched frames over the limit into arrays under it, and leaves the rest alone", () => {
    const frames: string[] = [];
    class Fake {
      constructor(readonly url: string) {}
      send(data: unknown): void { frames.push(data as string); }
    }
    const Limited = withFrameLimit(Fake, 1000);
    const ws = new Limited('ws://x') as Fake;
    const messages = Array.from({ length: 100 }, (_, i) => ({ id: i, method: 'query', params: { path: 'lab.sleep', input: { ms: 1 }, callId: `call-${i}` } }));
    ws.send(JSON.stringify(messages));
    expect(frames.length).toBeGreaterThan(5);
    for (const f of frames) expect(new TextEncoder().encode(f).length).toBeLessThanOrEqual(1000);
    expect(frames.flatMap((f) => JSON.parse(f) as unknown[])).toEqual(messages);
    frames.length = 0;
    ws.send('{"method":"connectionParams","data":{"token":"t"}}');
    ws.send('PONG');
    expect(frames).toEqual(['{"method":"connectionParams","data":{"token":"t"}}', 'PONG']);
  });
  it('a socket closed for a message too big (1009) is not worth a retry', () => {
    expect(isRetryableCallError(new TRPCClientError<never>('closed', { cause: new ConnectionLostError(1009) }))).toBe(false);
  });
});
