/**
 * Scenario 4: ~120 connections with a valid token trickle their POST bodies (1 byte every 2 s) while a
 * normal client makes calls. Must: the normal client's calls succeed (≥ 95%), and every slow connection
 * is answered 408 once the server's body timeout passes (we wait up to BODY_ANSWER_LIMIT_MS).
 */
import { connect, type Socket } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { countBy, countsText, ms, percentile, pct, type ScenarioReport } from './figures';
import { SEEDED_USERS, type ServerUnderTest } from './harness';
import { normalClient } from './normal-client';

export const NORMAL_SUCCESS_MIN = 0.95;
/** How long a slow connection may wait for its 408: a body timeout of up to ~15 s, plus slack. */
export const BODY_ANSWER_LIMIT_MS = 20_000;

interface Slow {
  socket: Socket;
  openedAt: number;
  status?: number;
  answeredMs?: number;
  closedWithoutAnswer: boolean;
}

function openSlow(server: ServerUnderTest, i: number): Slow {
  const url = new URL(server.api.url);
  const body = JSON.stringify({ name: `Slow ${i}`, email: `slow-${i}@chaos.test` });
  const slow: Slow = { socket: connect({ host: url.hostname, port: Number(url.port) }), openedAt: Date.now(), closedWithoutAnswer: false };
  slow.socket.setNoDelay(true);
  slow.socket.write(
    `POST /trpc/users.create HTTP/1.1\r\nHost: ${url.host}\r\nAuthorization: Bearer ${server.t.token}\r\n` +
      `Content-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n`,
  );
  let sent = 0;
  const trickle = setInterval(() => {
    if (sent < body.length && slow.status === undefined && !slow.socket.destroyed) slow.socket.write(body[sent++] ?? '');
  }, 2000);
  let head = '';
  slow.socket.on('data', (chunk: Buffer) => {
    if (slow.status !== undefined) return;
    head += chunk.toString('latin1');
    const match = /^HTTP\/1\.1 (\d{3})/.exec(head);
    if (match) {
      slow.status = Number(match[1]);
      slow.answeredMs = Date.now() - slow.openedAt;
      clearInterval(trickle);
    }
  });
  slow.socket.on('error', () => undefined); // a reset is an answer of its own, seen at 'close'
  slow.socket.on('close', () => {
    clearInterval(trickle);
    if (slow.status === undefined) slow.closedWithoutAnswer = true;
  });
  return slow;
}

export async function slowBodies(server: ServerUnderTest, options: { connections: number; signal: AbortSignal }): Promise<ScenarioReport> {
  const started = Date.now();
  const slows: Slow[] = [];
  let normal;
  try {
    for (let i = 0; i < options.connections; i++) slows.push(openSlow(server, i));
    // Let them be admitted (or not) before the normal client arrives.
    await sleep(1000, undefined, { signal: options.signal });
    normal = normalClient(server.t, { maxMs: 12_000, users: SEEDED_USERS });
    // Until every slow connection is answered (or gave up) and the normal client's time is up, at most the limit.
    while (Date.now() - started < BODY_ANSWER_LIMIT_MS && !(slows.every((s) => s.status !== undefined || s.closedWithoutAnswer) && Date.now() - started > 13_000)) {
      await sleep(100, undefined, { signal: options.signal });
    }
  } finally {
    await normal?.stop();
    for (const s of slows) s.socket.destroy();
  }
  const results = normal.results;
  const ok = results.filter((r) => r.code === 'OK').length;
  const answered = slows.filter((s) => s.status !== undefined);
  const times = answered.map((s) => s.answeredMs ?? 0);
  const got408 = slows.filter((s) => s.status === 408).length;
  const exited = server.exitedWith();
  return {
    title: `4. slow bodies: ${options.connections} connections trickle POST bodies (1 byte / 2 s) beside a normal client`,
    figures: [
      ['normal client success', pct(ok, results.length)],
      ['normal client errors', countsText(countBy(results.filter((r) => r.code !== 'OK'), (r) => r.code))],
      ['normal client p50 / p99 latency', `${ms(percentile(results.map((r) => r.endedAt - r.startedAt), 50))} / ${ms(percentile(results.map((r) => r.endedAt - r.startedAt), 99))}`],
      ['slow connections answered', `${answered.length} of ${slows.length} (${countsText(countBy(answered, (s) => String(s.status)))})`],
      ['slow connections closed without an answer', slows.filter((s) => s.closedWithoutAnswer && s.status === undefined).length],
      ['slow answer time p50 / max', answered.length ? `${ms(percentile(times, 50))} / ${ms(Math.max(...times))}` : `none within ${BODY_ANSWER_LIMIT_MS} ms`],
      ['server process', exited === undefined ? 'alive' : `EXITED (${exited}) ${server.crashLine()}`],
      ['server peak RSS', `${server.peakRssMb()} MB`],
      ['wall time', ms(Date.now() - started)],
    ],
    checks: [
      { name: `normal client success ≥ ${NORMAL_SUCCESS_MIN * 100}% (and it made ≥ 20 calls)`, ok: results.length >= 20 && ok / results.length >= NORMAL_SUCCESS_MIN },
      { name: `every slow connection answered 408 within ${BODY_ANSWER_LIMIT_MS / 1000} s`, ok: got408 === slows.length },
      { name: 'the server process never exited', ok: exited === undefined },
    ],
  };
}
