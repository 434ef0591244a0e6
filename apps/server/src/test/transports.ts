/**
 * Minimal clients for the server's API over each transport it speaks, with nothing between the test and
 * the wire: node:http (HTTP/1.1), node:https (HTTP/1.1 over TLS, as a client without ALPN h2 gets it),
 * and node:http2 (every call a stream on ONE session). An abort of `signal` is what a browser's is:
 * HTTP/1.1 closes the call's connection, HTTP/2 resets just its stream (RST_STREAM CANCEL).
 */
import { Agent as HttpAgent, request as httpRequest, type IncomingMessage } from 'node:http';
import { connect, constants, type ClientHttp2Session } from 'node:http2';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';

export type TransportName = 'HTTP/1.1' | 'HTTP/1.1 over TLS' | 'HTTP/2';

export interface CallOptions {
  /** The call's id (x-request-id): its hops in the activity log carry it. */
  callId?: string;
  signal?: AbortSignal;
  /** POST (a mutation) rather than GET (a query). */
  mutation?: boolean;
  headers?: Record<string, string>;
}

export interface Answer { status: number; headers: Record<string, string | string[] | undefined>; body: string; httpVersion: string }

export interface ApiTransport {
  name: TransportName;
  /** One call of `procedure` under /trpc/, with the token; rejects when aborted or when the connection fails. */
  call(procedure: string, input: unknown, options?: CallOptions): Promise<Answer>;
  /** Any request: `path` with its query. */
  request(method: string, path: string, options?: { headers?: Record<string, string>; body?: string; signal?: AbortSignal }): Promise<Answer>;
  /** HTTP/2: the one session every call goes over. */
  session?: ClientHttp2Session;
  close(): void;
}

/** The parsed JSON of a tRPC answer's result.data, or throws with the error's code. */
export function dataOf(answer: Answer): unknown {
  const json = JSON.parse(answer.body) as { result?: { data: unknown }; error?: { data?: { code?: string } } };
  if (!json.result) throw new Error(`call failed (${answer.status}): ${json.error?.data?.code ?? answer.body}`);
  return json.result.data;
}

function callArgs(procedure: string, input: unknown, options: CallOptions, token: string): { method: string; path: string; headers: Record<string, string>; body?: string } {
  const headers: Record<string, string> = { authorization: `Bearer ${token}`, ...options.headers };
  if (options.callId !== undefined) headers['x-request-id'] = options.callId;
  if (options.mutation) {
    headers['content-type'] = 'application/json';
    return { method: 'POST', path: `/trpc/${procedure}`, headers, body: JSON.stringify(input) };
  }
  const query = input === undefined ? '' : `?input=${encodeURIComponent(JSON.stringify(input))}`;
  return { method: 'GET', path: `/trpc/${procedure}${query}`, headers };
}

function readAnswer(res: IncomingMessage): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    res.on('data', (c: Buffer) => chunks.push(c));
    res.on('end', () => { resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8'), httpVersion: res.httpVersion }); });
    res.on('error', reject);
    res.on('aborted', () => { reject(new Error('response aborted')); });
  });
}

function http1(name: 'HTTP/1.1' | 'HTTP/1.1 over TLS', baseUrl: string, token: string, ca?: string): ApiTransport {
  const tls = name === 'HTTP/1.1 over TLS';
  // One connection per call in flight, as a browser's HTTP/1.1 would need (it stops at 6).
  const agent = tls ? new HttpsAgent({ keepAlive: true, maxSockets: Infinity, ca }) : new HttpAgent({ keepAlive: true, maxSockets: Infinity });
  const send = (method: string, path: string, options: { headers?: Record<string, string>; body?: string; signal?: AbortSignal }): Promise<Answer> =>
    new Promise((resolve, reject) => {
      const url = new URL(path, baseUrl);
      // `signal`: an abort destroys the request, so its connection closes (what fires the server's signal).
      const req = (tls ? httpsRequest : httpRequest)(url, { method, agent, headers: options.headers, signal: options.signal }, (res) => {
        readAnswer(res).then(resolve, reject);
      });
      req.on('error', reject);
      req.end(options.body);
    });
  return {
    name,
    call: (procedure, input, options = {}) => {
      const { method, path, headers, body } = callArgs(procedure, input, options, token);
      return send(method, path, { headers, body, signal: options.signal });
    },
    request: (method, path, options = {}) => send(method, path, options),
    close: () => { agent.destroy(); },
  };
}

function http2(baseUrl: string, token: string, ca: string | undefined): ApiTransport {
  const session = connect(baseUrl, { ca });
  // A session that fails (the server stopped) fails its streams; the error itself has no one to go to.
  session.on('error', () => undefined);
  const send = (method: string, path: string, options: { headers?: Record<string, string>; body?: string; signal?: AbortSignal }): Promise<Answer> =>
    new Promise((resolve, reject) => {
      // `signal`: node:http2 resets the stream with CANCEL on abort, the session and its other streams go on.
      const stream = session.request({ ':method': method, ':path': path, ...options.headers }, { signal: options.signal });
      const chunks: Buffer[] = [];
      let head: Record<string, string | string[] | undefined> = {};
      stream.on('response', (h) => { head = h; });
      stream.on('data', (c: Buffer) => chunks.push(c));
      stream.on('end', () => {
        resolve({ status: Number(head[':status']), headers: head, body: Buffer.concat(chunks).toString('utf8'), httpVersion: '2.0' });
      });
      stream.on('error', reject);
      stream.on('close', () => {
        if (stream.rstCode !== constants.NGHTTP2_NO_ERROR) reject(new Error(`stream reset (${stream.rstCode})`));
      });
      stream.end(options.body);
    });
  return {
    name: 'HTTP/2',
    session,
    call: (procedure, input, options = {}) => {
      const { method, path, headers, body } = callArgs(procedure, input, options, token);
      return send(method, path, { headers, body, signal: options.signal });
    },
    request: (method, path, options = {}) => send(method, path, options),
    close: () => { session.destroy(); },
  };
}

/** A client for `name` against the server at `baseUrl` (https:// for the TLS ones, trusting `ca`). */
export function openTransport(name: TransportName, baseUrl: string, token: string, ca?: string): ApiTransport {
  return name === 'HTTP/2' ? http2(baseUrl, token, ca) : http1(name, baseUrl, token, ca);
}
