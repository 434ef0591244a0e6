/**
 * A TCP proxy for fault tests: it forwards connections to a PostgreSQL server and can hold back
 * CancelRequests (which travel on a connection of their own) for a while, so a race between a cancel and
 * the statement it targets can be made to happen every time instead of once in a thousand runs. The
 * postgres.js and node-postgres test suites use proxies the same way.
 */
import { createServer, connect, type Server, type Socket } from 'node:net';
import { once } from 'node:events';

const CANCEL_REQUEST_CODE = 80877102;

export interface TcpProxy {
  /** Connection string like `targetUrl`, pointing at the proxy. */
  url: string;
  /** How long each CancelRequest is held before it is forwarded; change it any time. */
  cancelDelayMs: number;
  /** CancelRequests forwarded so far. */
  readonly cancelsForwarded: number;
  close(): Promise<void>;
}

function isCancelRequest(first: Buffer): boolean {
  return first.length >= 8 && first.readInt32BE(0) === 16 && first.readInt32BE(4) === CANCEL_REQUEST_CODE;
}

export async function startTcpProxy(targetUrl: string): Promise<TcpProxy> {
  const target = new URL(targetUrl);
  const targetPort = Number(target.port || 5432);
  const sockets = new Set<Socket>();
  const timers = new Set<NodeJS.Timeout>();
  let forwarded = 0;

  const track = (socket: Socket): Socket => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
    socket.on('error', () => socket.destroy());
    return socket;
  };

  const server: Server = createServer((client) => {
    track(client);
    client.once('data', (first: Buffer) => {
      client.pause();
      const forward = (): void => {
        if (client.destroyed) return;
        const upstream = track(connect(targetPort, target.hostname));
        upstream.write(first);
        client.pipe(upstream);
        upstream.pipe(client);
        client.once('close', () => upstream.destroy());
        upstream.once('close', () => client.destroy());
        client.resume();
      };
      if (isCancelRequest(first) && proxy.cancelDelayMs > 0) {
        const timer = setTimeout(() => {
          timers.delete(timer);
          forwarded++;
          forward();
        }, proxy.cancelDelayMs);
        timers.add(timer);
      } else {
        if (isCancelRequest(first)) forwarded++;
        forward();
      }
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  const url = new URL(targetUrl);
  url.hostname = '127.0.0.1';
  url.port = String(port);

  const proxy: TcpProxy = {
    url: url.toString(),
    cancelDelayMs: 0,
    get cancelsForwarded() {
      return forwarded;
    },
    async close() {
      for (const timer of timers) clearTimeout(timer);
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => { resolve(); }));
    },
  };
  return proxy;
}
