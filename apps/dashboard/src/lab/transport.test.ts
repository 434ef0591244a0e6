import { describe, expect, it } from 'vitest';
import { clientTransportOf, contextTransportOf, multiplexedPage, pageProtocol, PLAIN_HTTP_PAGE, transportAdvice, transportChoices, transportLabel, usableTransport } from './transport';

const nav = (nextHopProtocol: string | undefined) => ({ getEntriesByType: () => (nextHopProtocol === undefined ? [] : [{ nextHopProtocol }]) as unknown as PerformanceEntryList });

describe('the page’s protocol', () => {
  it('reads https and the navigation’s ALPN protocol', () => {
    expect(pageProtocol({ protocol: 'http:' }, nav('http/1.1'))).toEqual({ secure: false, nextHop: 'http/1.1' });
    expect(pageProtocol({ protocol: 'https:' }, nav('h2'))).toEqual({ secure: true, nextHop: 'h2' });
    expect(pageProtocol({ protocol: 'https:' }, nav(undefined))).toEqual({ secure: true, nextHop: '' });
    expect(pageProtocol({ protocol: 'https:' })).toEqual({ secure: true, nextHop: '' });
    expect(pageProtocol({ protocol: 'http:' }, { getEntriesByType: () => { throw new Error('no timing'); } })).toEqual({ secure: false, nextHop: '' });
  });

  it('counts TLS pages on h2/h3 (or not saying) as multiplexed, plain HTTP never', () => {
    expect(multiplexedPage(PLAIN_HTTP_PAGE)).toBe(false);
    expect(multiplexedPage({ secure: false, nextHop: 'h2' })).toBe(false); // h2c: browsers do not
    expect(multiplexedPage({ secure: true, nextHop: 'h2' })).toBe(true);
    expect(multiplexedPage({ secure: true, nextHop: 'h3' })).toBe(true);
    expect(multiplexedPage({ secure: true, nextHop: '' })).toBe(true);
    expect(multiplexedPage({ secure: true, nextHop: 'http/1.1' })).toBe(false);
  });
});

describe('transport choices', () => {
  it('plain HTTP page: WebSocket, per-call HTTP/1.1 and batched; HTTP/2 disabled, saying TLS is needed', () => {
    const choices = transportChoices(PLAIN_HTTP_PAGE);
    expect(choices.map((c) => [c.value, c.unavailableShort])).toEqual([['websocket', null], ['http', null], ['http-batch', null], ['http2', 'needs TLS']]);
    expect(choices.find((c) => c.value === 'http2')?.unavailable).toMatch(/TLS_CERT and TLS_KEY/);
  });

  it('HTTP/2 page: HTTP/2 instead of per-call HTTP/1.1', () => {
    const choices = transportChoices({ secure: true, nextHop: 'h2' });
    expect(choices.filter((c) => c.unavailable === null).map((c) => c.value)).toEqual(['websocket', 'http-batch', 'http2']);
    expect(choices.find((c) => c.value === 'http')?.unavailableShort).toBe('page is on HTTP/2');
    // TLS, but the browser fell back to HTTP/1.1: no HTTP/2 to choose.
    expect(transportChoices({ secure: true, nextHop: 'http/1.1' }).find((c) => c.value === 'http2')?.unavailableShort).toBe('page is not on h2');
  });

  it('falls back to the WebSocket when the wanted transport is not available here', () => {
    expect(usableTransport('http2', PLAIN_HTTP_PAGE)).toBe('websocket');
    expect(usableTransport('http2', { secure: true, nextHop: 'h2' })).toBe('http2');
    expect(usableTransport('http-batch', PLAIN_HTTP_PAGE)).toBe('http-batch');
  });

  it('maps each choice to a client and to the call context', () => {
    expect(['websocket', 'http', 'http-batch', 'http2'].map((t) => clientTransportOf(t as never))).toEqual(['websocket', 'http', 'http-batch', 'http']);
    expect(['websocket', 'http', 'http-batch', 'http2'].map((t) => contextTransportOf(t as never))).toEqual(['single', 'single', 'batch', 'single']);
    expect(transportLabel('http-batch')).toBe('batched');
    expect(transportLabel('http')).toBe('HTTP/1.1 per call');
  });
});

describe('transport advice', () => {
  it('warns about the six-connection cap only for per-call HTTP/1.1 above six', () => {
    expect(transportAdvice('http', 6).tone).toBe('info');
    const above = transportAdvice('http', 7);
    expect(above.tone).toBe('warn');
    expect(above.text).toMatch(/at most 6 connections per origin/);
    for (const t of ['websocket', 'http-batch', 'http2'] as const) {
      expect(transportAdvice(t, 200).tone).toBe('info');
      expect(transportAdvice(t, 200).text).not.toMatch(/6 connections/);
    }
    expect(transportAdvice('websocket', 100).text).toMatch(/calls\.cancel/);
    expect(transportAdvice('http-batch', 100).text).toMatch(/calls\.cancel for its id/);
  });
});
