/**
 * ws-flush.ts: a WebSocket call leaves at the end of the tick that made it. Against a real WebSocket
 * server on loopback (the `ws` package) that answers tRPC's messages; the API itself is not needed here
 * (apps/server's ws-transport tests run the same client against it).
 */
import { createRequire } from 'node:module';
import type { AddressInfo } from 'node:net';
import { createWSClient, TRPCClientError } from '@trpc/client';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import WebSocket, { WebSocketServer } from 'ws';
import { closeApiClient, createApiClient } from './links';
import { sendAtEndOfTick, TRPC_CLIENT_VERIFIED } from './ws-flush';

const user = { id: 1, name: 'Ada', email: 'ada@example.com', createdAt: '2026-01-01T00:00:00.000Z', updatedAt: '2026-01-01T00:00:00.000Z' };

let server: WebSocketServer;
let url: string;
/** Every frame the server received that carried calls: how many calls each. */
const frames: number[] = [];

beforeAll(async () => {
  server = new WebSocketServer({ host: '127.0.0.1', port: 0 });
  await new Promise<void>((resolve) => { server.once('listening', resolve); });
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/trpc`;
  server.on('connection', (socket) => {
    socket.on('message', (data: Buffer) => {
      const text = data.toString('utf8');
      if (text === 'PING') {
        socket.send('PONG');
        return;
      }
      const parsed = JSON.parse(text) as unknown;
      const messages = (Array.isArray(parsed) ? parsed : [parsed]) as { id?: number; method: string }[];
      const calls = messages.filter((m) => m.method === 'query' || m.method === 'mutation');
      if (calls.length === 0) return; // connectionParams
      frames.push(calls.length);
      for (const m of calls) socket.send(JSON.stringify({ id: m.id, jsonrpc: '2.0', result: { type: 'data', data: user } }));
    });
  });
});

afterAll(async () => {
  for (const client of server.clients) client.terminate();
  await new Promise<void>((resolve, reject) => { server.close((error) => { if (error) reject(error); else resolve(); }); });
});

beforeEach(() => { frames.length = 0; });

/** A client over the WebSocket transport whose socket is open (one call answered). */
async function openClient(WebSocketImpl: typeof WebSocket = WebSocket) {
  const api = createApiClient({ url, token: 'test-token', transport: 'websocket', WebSocket: WebSocketImpl });
  await api.users.byId.query({ id: 1 });
  frames.length = 0;
  return api;
}

describe('a WebSocket call leaves at the end of its tick (ws-flush.ts)', () => {
  it('is written before a zero timer set just before it was made fires (tRPC alone waits for one)', async () => {
    const order: string[] = [];
    class Recording extends WebSocket {
      override send(data: Parameters<WebSocket['send']>[0], ...rest: unknown[]): void {
        if (typeof data === 'string' && data.includes('"method":"query"')) order.push('call written');
        (super.send as (...args: unknown[]) => void)(data, ...rest);
      }
    }
    const api = await openClient(Recording);
    try {
      order.length = 0;
      const timer = new Promise<void>((resolve) => { setTimeout(() => { order.push('timer'); resolve(); }, 0); });
      const answer = api.users.byId.query({ id: 1 });
      await timer;
      expect(await answer).toEqual(user);
      // Unfixed, tRPC's own zero timer, set after this one, writes the call: ['timer', 'call written'].
      expect(order).toEqual(['call written', 'timer']);
      expect(frames).toEqual([1]);
    } finally {
      await closeApiClient(api);
    }
  });

  it('the calls of one tick still share one frame', async () => {
    const api = await openClient();
    try {
      const answers = await Promise.all([1, 2, 3, 4].map(() => api.users.byId.query({ id: 1 })));
      expect(answers).toHaveLength(4);
      expect(frames).toEqual([4]);
    } finally {
      await closeApiClient(api);
    }
  });

  it('calls made while the socket opens go out once it is open (tRPC\'s own path)', async () => {
    const api = createApiClient({ url, token: 'test-token', transport: 'websocket', WebSocket });
    try {
      const answers = await Promise.all([1, 2].map(() => api.users.byId.query({ id: 1 })));
      expect(answers).toEqual([user, user]);
      expect(frames.reduce((a, b) => a + b, 0)).toBe(2);
    } finally {
      await closeApiClient(api);
    }
  });

  it('a frame the socket refuses fails every call it carried, typed, and the next call goes through', async () => {
    let refuse = false;
    class Refusing extends WebSocket {
      override send(data: Parameters<WebSocket['send']>[0], ...rest: unknown[]): void {
        if (refuse && typeof data === 'string' && data.includes('"method":"query"')) throw new Error('the socket refused the frame');
        (super.send as (...args: unknown[]) => void)(data, ...rest);
      }
    }
    const api = await openClient(Refusing);
    try {
      refuse = true;
      const results = await Promise.allSettled([1, 2].map(() => api.users.byId.query({ id: 1 })));
      for (const result of results) {
        expect(result.status).toBe('rejected');
        const reason = (result as PromiseRejectedResult).reason as unknown;
        expect(reason).toBeInstanceOf(TRPCClientError);
        expect((reason as Error).message).toContain('the socket refused the frame');
      }
      refuse = false;
      expect(await api.users.byId.query({ id: 1 })).toEqual(user);
    } finally {
      await closeApiClient(api);
    }
  });
});

describe('the fence: tRPC internals ws-flush.ts relies on', () => {
  it(`the installed @trpc/client is ${TRPC_CLIENT_VERIFIED} and its wsClient has them (a new version: re-check ws-flush.ts, patches/README.md)`, async () => {
    const require = createRequire(import.meta.url);
    const { version } = require('@trpc/client/package.json') as { version: string };
    expect(version, 'ws-flush.ts was written against @trpc/client 11.22.1: re-check whether wsClient still waits a timer before sending, and its private members').toBe(TRPC_CLIENT_VERIFIED);
    const client = createWSClient({ url: url.replace('http', 'ws'), WebSocket: WebSocket as unknown as typeof globalThis.WebSocket, lazy: { enabled: true, closeMs: 0 } });
    try {
      expect(sendAtEndOfTick(client)).toBe(true);
      expect(sendAtEndOfTick({})).toBe(false);
    } finally {
      await client.close();
    }
  });
});
