/**
 * A reverse proxy in front of the server that rewrites what the server's WebSockets send to the browser, for
 * every socket of the page: its own and the fetch lab's, which lives in a worker. Playwright's
 * `routeWebSocket` does not reach a worker's sockets (microsoft/playwright#37048), so a test that must show
 * the page what a cluster would send goes through this instead. HTTP is passed through untouched.
 */
import { once } from 'node:events';
import { createServer, request, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import WebSocket, { WebSocketServer, type RawData } from 'ws';

export interface RewriteProxy {
  /** The proxy's origin: open the page here. */
  url: string;
  close(): Promise<void>;
}

/** A frame from the page (`toServer`) or the server (`toPage`): the text to forward instead. */
export interface Rewrites {
  toServer?: (text: string) => string;
  toPage?: (text: string) => string;
}

const textOf = (data: RawData): string => (Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data as ArrayBuffer)).toString('utf8');

/** Per page socket, so that a rewrite can pair answers with the requests it saw on the same socket. */
export async function startRewriteProxy(target: string, makeRewrites: () => Rewrites): Promise<RewriteProxy> {
  const upstream = new URL(target);
  const sockets = new Set<WebSocket>();
  const server = createServer((req, res) => {
    const forward = request(
      { host: upstream.hostname, port: upstream.port, method: req.method, path: req.url, headers: { ...req.headers, host: upstream.host } },
      (answer) => {
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(res);
      },
    );
    forward.on('error', () => { res.destroy(); });
    req.pipe(forward);
  });
  const wss = new WebSocketServer({ noServer: true });
  server.on('upgrade', (req: IncomingMessage, socket, head) => {
    wss.handleUpgrade(req, socket, head, (page) => {
      const rewrites = makeRewrites();
      const toServer = new WebSocket(`ws://${upstream.host}${req.url ?? '/'}`, { origin: upstream.origin });
      sockets.add(page);
      sockets.add(toServer);
      const early: string[] = [];
      page.on('message', (data) => {
        const text = rewrites.toServer ? rewrites.toServer(textOf(data)) : textOf(data);
        if (toServer.readyState === WebSocket.OPEN) toServer.send(text);
        else early.push(text);
      });
      toServer.on('open', () => {
        for (const text of early.splice(0)) toServer.send(text);
      });
      toServer.on('message', (data) => {
        page.send(rewrites.toPage ? rewrites.toPage(textOf(data)) : textOf(data));
      });
      const closeBoth = (): void => {
        page.close();
        toServer.close();
        sockets.delete(page);
        sockets.delete(toServer);
      };
      page.on('close', closeBoth);
      toServer.on('close', closeBoth);
      page.on('error', closeBoth);
      toServer.on('error', closeBoth);
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    close: async () => {
      for (const socket of sockets) socket.terminate();
      wss.close();
      server.closeAllConnections();
      await new Promise<void>((resolve) => { server.close(() => { resolve(); }); });
    },
  };
}
