/**
 * patches/@trpc__server@11.22.1.patch (patches/README.md, @trpc/server row 1): tRPC's SSE body reaches the Node
 * adapter as one string per event, with no TextEncoderStream stage, and the bytes on the wire are unchanged.
 * Checked on tRPC's own standalone handler over HTTP/1.1 and HTTP/2 (h2c; apps/server serves HTTP/2 through
 * the same handler), with every kind of event: connected, data, tracked `id:`, the id restored after an
 * untracked event, serialized-error, return.
 */
import { once } from 'node:events';
import { readdirSync, readFileSync } from 'node:fs';
import { createServer as createHttp1Server, type IncomingMessage, type ServerResponse } from 'node:http';
import { connect as http2Connect, createServer as createHttp2Server, type Http2ServerRequest, type Http2ServerResponse } from 'node:http2';
import type { AddressInfo, Server } from 'node:net';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { initTRPC, tracked } from '@trpc/server';
import { createHTTPHandler } from '@trpc/server/adapters/standalone';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const t = initTRPC.create();
const router = t.router({
  // Tracked events, then an untracked one (tRPC sends `id:` empty, then restores the last id), then the end.
  feed: t.procedure.subscription(async function* () {
    await Promise.resolve(); // a real subscription awaits its source
    yield tracked('1', { n: 1 });
    yield tracked('2', { n: 2, text: 'é ✓ 😀' });
    yield { n: 3 };
  }),
  broken: t.procedure.subscription(async function* () {
    yield { n: 1 };
    await Promise.resolve();
    throw new Error('boom');
  }),
});
const handler = createHTTPHandler({ router });

/** Every chunk the adapter wrote to a response, by type. */
const written: unknown[] = [];
function spy(req: IncomingMessage | Http2ServerRequest, res: ServerResponse | Http2ServerResponse): void {
  const write = res.write.bind(res) as (chunk: unknown, ...rest: unknown[]) => boolean;
  (res as { write: unknown }).write = (chunk: unknown, ...rest: unknown[]) => {
    written.push(chunk);
    return write(chunk, ...rest);
  };
  handler(req as IncomingMessage, res as ServerResponse);
}

let http1: Server;
let http2: Server;
async function listen(server: Server): Promise<number> {
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return (server.address() as AddressInfo).port;
}
let port1 = 0;
let port2 = 0;
beforeAll(async () => {
  http1 = createHttp1Server(spy);
  http2 = createHttp2Server(spy);
  port1 = await listen(http1);
  port2 = await listen(http2);
});
afterAll(async () => {
  http1.close();
  http2.close();
  await Promise.all([once(http1, 'close'), once(http2, 'close')]);
});

async function http1Body(path: string): Promise<string> {
  const res = await fetch(`http://127.0.0.1:${port1}/${path}`, { headers: { accept: 'text/event-stream' } });
  expect(res.headers.get('content-type')).toBe('text/event-stream');
  return res.text();
}

async function http2Body(path: string): Promise<string> {
  const session = http2Connect(`http://127.0.0.1:${port2}`);
  try {
    const stream = session.request({ ':path': `/${path}`, accept: 'text/event-stream' });
    const [headers] = (await once(stream, 'response')) as [Record<string, string>];
    expect(headers['content-type']).toBe('text/event-stream');
    const chunks: Buffer[] = [];
    for await (const chunk of stream) chunks.push(chunk as Buffer);
    return Buffer.concat(chunks).toString('utf8');
  } finally {
    session.close();
  }
}

// What tRPC 11.22.1 sends unpatched: per event, `event:`/`data:`/`id:` lines in that order, then "\n\n".
const FEED =
  'event: connected\ndata: {}\n\n\n' +
  'data: {"n":1}\nid: 1\n\n\n' +
  'data: {"n":2,"text":"é ✓ 😀"}\nid: 2\n\n\n' +
  'data: {"n":3}\nid: \n\n\n' +
  'event: restore-id\ndata: \nid: 2\n\n\n' +
  'event: return\ndata: \n\n\n';

describe.each([
  ['HTTP/1.1', http1Body],
  ['HTTP/2', http2Body],
])('tRPC SSE through the standalone handler, %s', (_name, body) => {
  it('writes each event as one string, and the bytes are what tRPC sends', async () => {
    written.length = 0;
    expect(await body('feed')).toBe(FEED);
    // Without the patch: Uint8Arrays from TextEncoderStream, three or four per event.
    expect(written.map((chunk) => typeof chunk)).toEqual(Array(6).fill('string'));
  });

  it('a subscription that throws ends with a serialized-error event', async () => {
    written.length = 0;
    const text = await body('broken');
    expect(text).toMatch(/^event: connected\ndata: \{\}\n\n\ndata: \{"n":1\}\n\n\nevent: serialized-error\ndata: \{.*"message":"boom".*\}\n\n\n$/s);
    expect(written.every((chunk) => typeof chunk === 'string')).toBe(true);
  });
});

it('the installed @trpc/server is 11.22.1 with our patch in both builds (a new version: re-check the patch, patches/README.md)', () => {
  const require = createRequire(import.meta.url);
  const { version } = require('@trpc/server/package.json') as { version: string };
  expect(version, 'patches/@trpc__server@11.22.1.patch was written for 11.22.1: re-check it (patches/README.md) before moving the pin').toBe('11.22.1');
  const dist = dirname(require.resolve('@trpc/server'));
  const files = readdirSync(dist).filter((name) => /^resolveResponse-.*\.(mjs|cjs)$/.test(name));
  expect(files.map((name) => name.slice(-3)).sort()).toEqual(['cjs', 'mjs']);
  for (const name of files) {
    const source = readFileSync(join(dist, name), 'utf8');
    expect(source, name).toContain('asyncscope patch (patches/README.md, @trpc/server row 1)');
    expect(source, name).not.toMatch(/^\t\} \}\)\)\.pipeThrough\(new TextEncoderStream\(\)\);\n\}\nasync function withTimeout/m);
  }
});
