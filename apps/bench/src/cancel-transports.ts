/**
 * The client side of `bench:cancel` per transport. Each starts `lab.sleep` calls its own way and aborts
 * them as a browser would: HTTP/1.1 (the typed client, fetch: the connection closes), HTTP/1.1 over TLS
 * (node:https: the connection closes), HTTP/2 (one session for every call: RST_STREAM on just the
 * aborted stream, the session goes on), one WebSocket for every call (the abort sends calls.cancel on it),
 * and batched HTTP (the abort sends calls.cancel; the batch's request goes on for its other calls).
 */
import { connect } from 'node:http2';
import { Agent, request } from 'node:https';
import { closeApiClient, createApiClient } from '@asyncscope/client';
import WebSocket from 'ws';
import type { ApiServer } from './own-server';

export interface CancelTransport {
  name: string;
  /** lab.sleep(ms) named callId; aborting `signal` is the client's abort. Settles (never rejects) when the call has ended. */
  sleep(ms: number, callId: string, signal: AbortSignal): Promise<void>;
  /** The server's own count of statements waiting for / holding a connection. */
  statements(signal: AbortSignal): Promise<{ queued: number; running: number }>;
  close(): void;
}

const sleepPath = (ms: number) => `/trpc/lab.sleep?input=${encodeURIComponent(JSON.stringify({ ms }))}`;

function statementsOf(body: string): { queued: number; running: number } {
  return (JSON.parse(body) as { result: { data: { statements: { queued: number; running: number } } } }).result.data.statements;
}

/** The typed client over plain HTTP/1.1 (what bench:cancel always measured). */
export function typedClientTransport(server: ApiServer): CancelTransport {
  return {
    name: 'HTTP/1.1',
    sleep: (ms, callId, signal) => server.api.lab.sleep.query({ ms }, { signal, context: { callId } }).then(() => undefined, () => undefined),
    statements: async (signal) => (await server.api.activity.stats.query(undefined, { signal })).statements,
    close: () => undefined,
  };
}

/** HTTP/1.1 over TLS, node:https with keep-alive: an abort destroys the call's connection. */
export function tlsHttp1Transport(server: ApiServer): CancelTransport {
  const agent = new Agent({ keepAlive: true, ca: server.ca });
  const get = (path: string, headers: Record<string, string>, signal: AbortSignal): Promise<string> =>
    new Promise((resolve, reject) => {
      const req = request(`${server.url}${path}`, { agent, signal, headers: { authorization: `Bearer ${server.token}`, ...headers } }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => { resolve(Buffer.concat(chunks).toString('utf8')); });
        res.on('error', reject);
      });
      req.on('error', reject);
      req.end();
    });
  return {
    name: 'HTTP/1.1 over TLS',
    sleep: (ms, callId, signal) => get(sleepPath(ms), { 'x-request-id': callId }, signal).then(() => undefined, () => undefined),
    statements: async (signal) => statementsOf(await get('/trpc/activity.stats', {}, signal)),
    close: () => { agent.destroy(); },
  };
}

/** HTTP/2: every call a stream of ONE session; an abort resets its stream (CANCEL). */
export function http2Transport(server: ApiServer): CancelTransport {
  const session = connect(server.url, { ca: server.ca });
  session.on('error', () => undefined); // its streams fail with it, and say so
  const get = (path: string, headers: Record<string, string>, signal: AbortSignal): Promise<string> =>
    new Promise((resolve, reject) => {
      const stream = session.request({ ':path': path, authorization: `Bearer ${server.token}`, ...headers }, { signal, endStream: true });
      const chunks: Buffer[] = [];
      stream.on('data', (c: Buffer) => chunks.push(c));
      stream.on('end', () => { resolve(Buffer.concat(chunks).toString('utf8')); });
      stream.on('error', reject);
      stream.on('close', () => { reject(new Error(`stream closed (${stream.rstCode})`)); }); // after 'end' this is a no-op
    });
  return {
    name: 'HTTP/2',
    sleep: (ms, callId, signal) => get(sleepPath(ms), { 'x-request-id': callId }, signal).then(() => undefined, () => undefined),
    statements: async (signal) => statementsOf(await get('/trpc/activity.stats', {}, signal)),
    close: () => { session.close(); },
  };
}

/**
 * The typed client's WebSocket transport: every call on ONE socket; an abort sends `calls.cancel` for the
 * call's id on the same socket (tRPC's wsLink alone would never tell the server).
 */
export function webSocketTransport(server: ApiServer): CancelTransport {
  const api = createApiClient({ url: `${server.url}/trpc`, token: server.token, transport: 'websocket', WebSocket });
  return {
    name: 'WebSocket',
    sleep: (ms, callId, signal) => api.lab.sleep.query({ ms }, { signal, context: { callId } }).then(() => undefined, () => undefined),
    statements: async (signal) => (await api.activity.stats.query(undefined, { signal })).statements,
    close: () => { closeApiClient(api).catch(() => undefined); },
  };
}

/** The typed client's batched HTTP: calls share requests (x-call-ids names each); an abort sends calls.cancel. */
export function batchedTransport(server: ApiServer): CancelTransport {
  const api = createApiClient({ url: `${server.url}/trpc`, token: server.token, transport: 'http-batch' });
  return {
    name: 'batched HTTP + cancel by id',
    sleep: (ms, callId, signal) => api.lab.sleep.query({ ms }, { signal, context: { callId } }).then(() => undefined, () => undefined),
    statements: async (signal) => (await api.activity.stats.query(undefined, { signal })).statements,
    close: () => undefined,
  };
}
