/** A raw WebSocket to the server's /trpc endpoint for tests: every frame it receives, its close, and a way to send calls. */
import { once } from 'node:events';
import type { ActivityEvent } from '@asyncscope/api';
import WebSocket from 'ws';
import { TEST_TOKEN, type TestServer } from '../test-server';
import { until } from '@asyncscope/concurrency/testing';

export interface Frame { id: string | number | null; result?: { type: string; data?: unknown }; error?: { message: string; data: { code: string } }; method?: string }

/** Opens a socket and, unless `token` is null, sends the connectionParams message with it. */
export async function openTestSocket(base: string, token: string | null = TEST_TOKEN) {
  const ws = new WebSocket(`${base.replace('http:', 'ws:')}/trpc?connectionParams=1`);
  const frames: Frame[] = [];
  ws.on('message', (data) => { frames.push(JSON.parse((data as Buffer).toString('utf8')) as Frame); });
  ws.on('error', () => undefined);
  const closed = new Promise<{ code: number; reason: string }>((resolve) => {
    ws.once('close', (code, reason) => { resolve({ code, reason: reason.toString() }); });
  });
  await once(ws, 'open');
  if (token !== null) ws.send(JSON.stringify({ method: 'connectionParams', data: { token } }));
  const call = (id: number, method: string, path: string, input: unknown, extra: Record<string, unknown> = {}) => {
    ws.send(JSON.stringify({ id, method, params: { path, input, ...extra } }));
  };
  const frame = (match: (f: Frame) => boolean) => until('a frame', () => frames.find(match));
  return { ws, frames, closed, call, frame };
}

/** Opens a socket to `server` and calls lab.sleep(`ms`) on it as `callId` (id 1); resolves once its statement runs inside Postgres. */
export async function socketWithRunningCall(server: TestServer, callId: string, ms: number) {
  const socket = await openTestSocket(server.url);
  socket.call(1, 'query', 'lab.sleep', { ms }, { callId });
  const hop = (type: ActivityEvent['type']) => server.server.runtime.activity.read(0, 100_000).events.find((e) => e.callId === callId && e.type === type);
  await until(`${callId} runs inside Postgres`, () => hop('statement.started'));
  return { socket, hop };
}
