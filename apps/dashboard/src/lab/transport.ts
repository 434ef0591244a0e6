/**
 * How the fetch lab's calls travel, and what each way means for a person watching them. Pure: the page's
 * protocol comes in (see `pageProtocol`), the choices, their reasons and their one-sentence advice go out.
 *
 *   websocket   one socket multiplexes every call; a cancel is a `calls.cancel` by call id on it
 *   http        one HTTP/1.1 request per call (httpLink); a cancel closes the request
 *   http-batch  calls started together share one HTTP request; a cancel is a `calls.cancel` by call id
 *   http2       one HTTP request per call over the page's HTTP/2 connection (TLS only); a cancel resets the stream
 */

export type LabTransport = 'websocket' | 'http' | 'http-batch' | 'http2';

export const LAB_TRANSPORTS: readonly LabTransport[] = ['websocket', 'http', 'http-batch', 'http2'];

export const DEFAULT_TRANSPORT: LabTransport = 'websocket';

/** What @asyncscope/client's createApiClient calls each: HTTP/2 is plain per-call HTTP that the browser multiplexes. */
export type ClientTransport = 'websocket' | 'http' | 'http-batch';

export function clientTransportOf(transport: LabTransport): ClientTransport {
  return transport === 'http2' ? 'http' : transport;
}

/** Browsers open at most 6 HTTP/1.1 connections per origin (the page's own traffic rides the WebSocket). */
export const BROWSER_CONNECTIONS = 6;

/** What the page itself was served over. */
export interface PageProtocol {
  /** https: (HTTP/2 is only spoken over TLS by browsers). */
  secure: boolean;
  /** The navigation's ALPN protocol ('h2', 'http/1.1', 'h3'), or '' when the browser does not say. */
  nextHop: string;
}

export const PLAIN_HTTP_PAGE: PageProtocol = { secure: false, nextHop: 'http/1.1' };

/** Reads the page's protocol from its location and its navigation timing entry. */
export function pageProtocol(location: Pick<Location, 'protocol'>, performance?: Pick<Performance, 'getEntriesByType'>): PageProtocol {
  let nextHop = '';
  try {
    const entry: PerformanceEntry | undefined = performance?.getEntriesByType('navigation')[0];
    nextHop = entry && 'nextHopProtocol' in entry && typeof entry.nextHopProtocol === 'string' ? entry.nextHopProtocol : '';
  } catch {
    nextHop = '';
  }
  return { secure: location.protocol === 'https:', nextHop };
}

/** Whether the page's requests are multiplexed on one connection (HTTP/2 or HTTP/3). */
export function multiplexedPage(page: PageProtocol): boolean {
  // Over TLS with an unknown protocol, the server (which offers h2 with allowHTTP1) most likely agreed on h2.
  return page.secure && (page.nextHop === 'h2' || page.nextHop === 'h3' || page.nextHop === '');
}

export interface TransportChoice {
  value: LabTransport;
  label: string;
  /** Short name for the run summary. */
  short: string;
  /** Why it cannot be chosen on this page, or null. */
  unavailable: string | null;
  /** The same in two or three words, shown beside the disabled choice. */
  unavailableShort: string | null;
  /** What it does, for a tooltip. */
  title: string;
}

export function transportChoices(page: PageProtocol): TransportChoice[] {
  const multiplexed = multiplexedPage(page);
  return [
    {
      value: 'websocket',
      label: 'WebSocket',
      short: 'WebSocket',
      unavailable: null,
      unavailableShort: null,
      title: 'One socket carries every call; cancelling a row sends calls.cancel for its id on the same socket.',
    },
    {
      value: 'http',
      label: 'one HTTP request per call',
      short: 'HTTP/1.1 per call',
      unavailable: multiplexed ? 'This page is served over HTTP/2, so every request shares one connection: that is the HTTP/2 choice.' : null,
      unavailableShort: multiplexed ? 'page is on HTTP/2' : null,
      title: 'httpLink: each call is its own HTTP/1.1 request; cancelling a row closes it.',
    },
    {
      value: 'http-batch',
      label: 'batched (cancel by id)',
      short: 'batched',
      unavailable: null,
      unavailableShort: null,
      title: 'httpBatchLink: calls started together share one HTTP request; cancelling a row sends calls.cancel for its id.',
    },
    {
      value: 'http2',
      label: 'HTTP/2',
      short: 'HTTP/2',
      unavailable: multiplexed
        ? null
        : page.secure
          ? `This page came over ${page.nextHop || 'HTTP/1.1'}, not HTTP/2.`
          : 'Browsers speak HTTP/2 only over TLS: start the server with TLS_CERT and TLS_KEY and open the https:// address.',
      unavailableShort: multiplexed ? null : page.secure ? 'page is not on h2' : 'needs TLS',
      title: 'One request per call, multiplexed on the page’s HTTP/2 connection; cancelling a row resets just its stream.',
    },
  ];
}

/** The transport a form should show: the wanted one if this page allows it, else the default. */
export function usableTransport(wanted: LabTransport, page: PageProtocol): LabTransport {
  const choice = transportChoices(page).find((c) => c.value === wanted);
  return choice && choice.unavailable === null ? wanted : DEFAULT_TRANSPORT;
}

export function transportLabel(transport: LabTransport): string {
  return transportChoices(PLAIN_HTTP_PAGE).find((c) => c.value === transport)?.short ?? transport;
}

export interface TransportAdvice {
  tone: 'info' | 'warn';
  text: string;
}

/** What this transport at this concurrency means, in one or two sentences. */
export function transportAdvice(transport: LabTransport, concurrency: number): TransportAdvice {
  switch (transport) {
    case 'websocket':
      return {
        tone: 'info',
        text: 'WebSocket: every call is a message on one socket, so all of them reach the server at once; cancelling a row sends calls.cancel for its id, the server’s signal fires and Postgres cancels the statement (or the call leaves the pool queue, never sent).',
      };
    case 'http':
      if (concurrency > BROWSER_CONNECTIONS) {
        return {
          tone: 'warn',
          text: `One HTTP/1.1 request per call: the browser opens at most ${BROWSER_CONNECTIONS} connections per origin, so above ${BROWSER_CONNECTIONS} calls at a time the rest wait inside the browser — “running” here, “not received yet” on the server.`,
        };
      }
      return { tone: 'info', text: 'One HTTP/1.1 request per call (httpLink): cancelling a row closes its request, the server’s signal fires and Postgres cancels the statement.' };
    case 'http-batch':
      return {
        tone: 'info',
        text: 'Batched: calls started together share one HTTP request, and the server names each by its position (x-call-ids); cancelling a row sends calls.cancel for its id, so the server stops that call alone.',
      };
    case 'http2':
      return { tone: 'info', text: 'HTTP/2: one request per call, all multiplexed on the page’s one TLS connection; cancelling a row resets just its stream and the server stops that call.' };
  }
}

/** The lab's CallContext transport for @asyncscope/client: batched calls share requests, the rest go alone. */
export function contextTransportOf(transport: LabTransport): 'single' | 'batch' {
  return transport === 'http-batch' ? 'batch' : 'single';
}
