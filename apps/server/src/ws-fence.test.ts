/**
 * A fence around what ws-transport.ts assumes of tRPC's WebSocket adapter (applyWSSHandler /
 * getWSConnectionHandler), and around the one hook our patch adds to it (patches/README.md, @trpc/server
 * row 3: `callContext`). Each test states one fact; if an upgrade of @trpc/server changes it, the test fails
 * and names what to re-verify in ws-transport.ts. No database: a tiny router of its own.
 */
import { once } from 'node:events';
import { readdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import { dirname, join } from 'node:path';
import type { AddressInfo } from 'node:net';
import { initTRPC } from '@trpc/server';
import { applyWSSHandler, getWSConnectionHandler } from '@trpc/server/adapters/ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket, { WebSocketServer } from 'ws';

const TRPC_VERSION = '11.22.1';

/** What each call saw: whether its signal fired, its context's `meta`, and its input. */
const seen = new Map<string, { aborted: boolean; meta: string | undefined; input: unknown }>();

interface Ctx { meta?: string }
const t = initTRPC.context<Ctx>().create();
const router = t.router({
  wait: t.procedure.input((v) => v as { key: string; ms: number }).query(async ({ ctx, input, signal }) => {
    const entry = { aborted: false, meta: (ctx as Ctx | undefined)?.meta, input };
    seen.set(input.key, entry);
    signal?.addEventListener('abort', () => { entry.aborted = true; }, { once: true });
    await new Promise((resolve) => setTimeout(resolve, input.ms));
    return input.key;
  }),
});

let server: Server;
let wss: WebSocketServer;
let url: string;
beforeAll(async () => {
  server = createServer();
  wss = new WebSocketServer({ server });
  applyWSSHandler({ wss, router });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  url = `ws://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(async () => {
  for (const c of wss.clients) c.terminate();
  wss.close();
  await new Promise((resolve) => server.close(resolve));
});

async function open(): Promise<{ ws: WebSocket; frames: unknown[] }> {
  const ws = new WebSocket(url);
  const frames: unknown[] = [];
  ws.on('message', (data) => { frames.push(JSON.parse((data as Buffer).toString('utf8'))); });
  await once(ws, 'open');
  return { ws, frames };
}
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe("tRPC's ws adapter", () => {
  it(`is version ${TRPC_VERSION}: on any other, re-verify the facts below and ws-transport.ts's reliance on them`, () => {
    const require = createRequire(import.meta.url);
    const pkg = JSON.parse(readFileSync(require.resolve('@trpc/server/package.json'), 'utf8')) as { version: string };
    // Re-verify: the listener is registered synchronously (we move it behind ours), our patch's callContext
    // hook still gives each call the context ws-transport makes for it (row 3), queries get a signal
    // nothing aborts (our socket signal is why cancels work), extra params fields are ignored (our callId /
    // deadlineMs), respond() goes through client.send (our slow-reader check).
    expect(pkg.version).toBe(TRPC_VERSION);
  });

  it('has our callContext hook (row 3) in both builds (ESM and CommonJS)', () => {
    const require = createRequire(import.meta.url);
    const dist = dirname(require.resolve('@trpc/server'));
    const files = readdirSync(dist).filter((name) => /^ws-.*\.(mjs|cjs)$/.test(name));
    expect(files.map((name) => name.slice(-3)).sort()).toEqual(['cjs', 'mjs']);
    for (const name of files) {
      const source = readFileSync(join(dist, name), 'utf8');
      expect(source, name).toContain('asyncscope patch (patches/README.md, @trpc/server row 3)');
      expect(source, name).toContain('ctx: opts.callContext ? opts.callContext(ctx, msg, client) : ctx,');
    }
  });

  it('never aborts a query when its socket closes (so ws-transport gives every call the socket signal)', async () => {
    const { ws } = await open();
    ws.send(JSON.stringify({ id: 1, method: 'query', params: { path: 'wait', input: { key: 'close', ms: 300 } } }));
    await sleep(50);
    ws.close();
    await sleep(400);
    expect(seen.get('close')?.aborted).toBe(false);
  });

  it('never aborts a query on subscription.stop for its id (so a cancel must go by call id: calls.cancel)', async () => {
    const { ws, frames } = await open();
    ws.send(JSON.stringify({ id: 1, method: 'query', params: { path: 'wait', input: { key: 'stop', ms: 200 } } }));
    await sleep(50);
    ws.send(JSON.stringify({ id: 1, method: 'subscription.stop' }));
    await sleep(250);
    expect(seen.get('stop')?.aborted).toBe(false);
    expect(frames).toContainEqual({ id: 1, result: { type: 'data', data: 'stop' } });
    ws.close();
  });

  it('ignores the extra params fields callId and deadlineMs (our protocol extension is harmless to it)', async () => {
    const { ws, frames } = await open();
    ws.send(JSON.stringify({ id: 'x', method: 'query', params: { path: 'wait', input: { key: 'extra', ms: 1 }, callId: 'row-7', deadlineMs: 5 } }));
    await sleep(50);
    expect(frames).toContainEqual({ id: 'x', result: { type: 'data', data: 'extra' } });
    expect(seen.get('extra')?.input).toEqual({ key: 'extra', ms: 1 });
    ws.close();
  });

  it("registers its 'message' listener synchronously, and runs each procedure with the context our patch's callContext hook makes for its message", async () => {
    const inner = new WebSocketServer({ noServer: true });
    const asked: unknown[] = [];
    // The hook our patch adds (row 3); tRPC's option types do not know it.
    const patched = {
      callContext: (ctx: Ctx | undefined, msg: { id: unknown }, client: unknown) => {
        asked.push(client);
        return { ...ctx, meta: `meta-of-message-${String(msg.id)}` };
      },
    };
    const handler = getWSConnectionHandler({ ...patched, router, wss: inner });
    const probe = createServer();
    const listeners: ((data: Buffer, isBinary: boolean) => void)[] = [];
    const clients: unknown[] = [];
    probe.on('upgrade', (req: IncomingMessage, socket, head) => {
      inner.handleUpgrade(req, socket, head, (client) => {
        clients.push(client);
        handler(client, req);
        // Synchronously there, and only one (no keepAlive): ws-transport moves it behind its own.
        listeners.push(...(client.listeners('message') as typeof listeners));
        expect(listeners).toHaveLength(1);
        client.removeAllListeners('message');
        client.on('message', (data: Buffer, isBinary: boolean) => {
          for (const l of listeners) l.call(client, data, isBinary);
        });
      });
    });
    probe.listen(0, '127.0.0.1');
    await once(probe, 'listening');
    const ws = new WebSocket(`ws://127.0.0.1:${(probe.address() as AddressInfo).port}`);
    await once(ws, 'open');
    ws.send(JSON.stringify({ id: 1, method: 'query', params: { path: 'wait', input: { key: 'hook-1', ms: 20 } } }));
    ws.send(JSON.stringify({ id: 'two', method: 'query', params: { path: 'wait', input: { key: 'hook-2', ms: 1 } } }));
    await sleep(100);
    expect(listeners).toHaveLength(1);
    // Each call its own context, asked for with its message and its socket.
    expect(seen.get('hook-1')?.meta).toBe('meta-of-message-1');
    expect(seen.get('hook-2')?.meta).toBe('meta-of-message-two');
    expect(asked).toEqual([clients[0], clients[0]]);
    ws.close();
    await sleep(20);
    probe.closeAllConnections();
    await new Promise((resolve) => probe.close(resolve));
  });
});
