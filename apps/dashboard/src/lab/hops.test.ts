import type { ActivityEvent } from '@asyncscope/api';
import { describe, expect, it } from 'vitest';
import { newRow, reduceCall, type CallEvent, type CallRow } from './call-state';
import { parseCallId } from '@asyncscope/contract';
import { cancelOutcomeText, hopSlots, joinEvents, servedBy, serverVerdict, signalLabel, waitsForPoolConnection, WAITING_FOR_POOL } from './hops';

let seq = 0;
const ev = (callId: string, hop: Record<string, unknown> & { type: ActivityEvent['type'] }, at = 2000): ActivityEvent =>
  ({ seq: ++seq, at, callId, path: 'users.byId', instance: 'host-a:101', ...hop }) as ActivityEvent;

describe('parseCallId (@asyncscope/contract)', () => {
  it('strips the attempt (~n) and batch (#n) suffixes', () => {
    expect(parseCallId('rab12-7')).toEqual({ base: 'rab12-7', attempt: 0, batchIndex: undefined });
    expect(parseCallId('rab12-7~2')).toEqual({ base: 'rab12-7', attempt: 2, batchIndex: undefined });
    expect(parseCallId('rab12-7#3')).toEqual({ base: 'rab12-7', attempt: 0, batchIndex: 3 });
    expect(parseCallId('rab12-7~1#0')).toEqual({ base: 'rab12-7', attempt: 1, batchIndex: 0 });
    expect(parseCallId('0b9f7c2e-uuid')).toEqual({ base: '0b9f7c2e-uuid', attempt: 0, batchIndex: undefined });
  });
});

describe('joinEvents', () => {
  it('joins attempts to their row and keeps the rest apart', () => {
    const rows = new Map([['r1-1', 0], ['r1-2', 1]]);
    const events = [ev('r1-1', { type: 'received', budgetMs: 5000 }), ev('r1-2~1', { type: 'received', budgetMs: 4000 }), ev('3f2a-uuid#1', { type: 'received', budgetMs: 30000 })];
    const { hops, others } = joinEvents(events, (base) => rows.get(base));
    expect(hops.map((h) => [h.index, h.hop.attempt])).toEqual([[0, 0], [1, 1]]);
    expect(others.map((o) => o.callId)).toEqual(['3f2a-uuid#1']);
  });
});

function rowWith(events: CallEvent[], hops: ActivityEvent[], attemptOf = (_e: ActivityEvent) => 0): CallRow {
  let row = events.reduce(reduceCall, newRow(0, 'r1-1', 1, 'websocket', 1000));
  for (const hop of hops) row = reduceCall(row, { type: 'hop', hop: { ...hop, attempt: attemptOf(hop) } });
  return row;
}

const started: CallEvent[] = [{ type: 'started', at: 1000 }, { type: 'attempt', at: 1000, attempt: 0 }];

describe('hopSlots and serverVerdict', () => {
  it('a cancelled call whose statement Postgres cancelled: "the server stopped working"', () => {
    const hops = [
      ev('r1-1', { type: 'received', budgetMs: 5000 }),
      ev('r1-1', { type: 'statement.started', statement: 1, pid: 812 }),
      ev('r1-1', { type: 'signal.fired', reason: 'client-closed' }),
      ev('r1-1', { type: 'cancel.sent', statement: 1, pid: 812, queued: false }),
      ev('r1-1', { type: 'statement.ended', statement: 1, pid: 812, sqlstate: '57014', ms: 300 }),
      ev('r1-1', { type: 'settled', code: 'CLIENT_CLOSED_REQUEST', ms: 305 }),
    ];
    const row = rowWith([...started, { type: 'cancel-requested', by: 'you' }, { type: 'cancelled', at: 1300 }], hops);
    const slots = hopSlots(row.hops);
    expect(slots.statement?.pid).toBe(812);
    expect(slots.signal?.reason).toBe('client-closed');
    expect(slots.ended?.sqlstate).toBe('57014');
    expect(serverVerdict(row)).toEqual({ tone: 'ok', text: 'SQL cancelled' });
  });

  it('prefers the cancelled statement over an earlier normal one', () => {
    const hops = [
      ev('r1-1', { type: 'statement.ended', statement: 1, pid: 5, sqlstate: '57014', ms: 10 }),
      ev('r1-1', { type: 'statement.ended', statement: 2, pid: 5, sqlstate: null, ms: 1 }),
    ];
    expect(hopSlots(rowWith(started, hops).hops).ended?.statement).toBe(1);
  });

  it('a client that stopped waiting while the server kept working (batched, or before the signal)', () => {
    const received = [ev('r1-1', { type: 'received', budgetMs: 5000 }), ev('r1-1', { type: 'statement.started', statement: 1, pid: 9 })];
    const cancelled: CallEvent[] = [...started, { type: 'cancelled', at: 1100 }];
    expect(serverVerdict(rowWith(cancelled, received))).toEqual({ tone: 'warn', text: 'still working' });
    const finished = [...received, ev('r1-1', { type: 'settled', code: 'OK', ms: 2000 })];
    expect(serverVerdict(rowWith(cancelled, finished))).toEqual({ tone: 'warn', text: 'finished anyway' });
  });

  it('uses the latest attempt', () => {
    const hops = [ev('r1-1', { type: 'settled', code: 'SERVICE_UNAVAILABLE', ms: 3 }), ev('r1-1~1', { type: 'received', budgetMs: 4000 })];
    const row = rowWith(started, hops, (e) => parseCallId(e.callId).attempt);
    expect(hopSlots(row.hops).settled).toBeUndefined();
    expect(hopSlots(row.hops, 0).settled?.code).toBe('SERVICE_UNAVAILABLE');
    expect(serverVerdict(row).text).toBe('working');
  });

  it('says what happened to calls the server never saw', () => {
    expect(serverVerdict(rowWith([{ type: 'cancelled', at: 1100 }], [])).text).toBe('never sent');
    expect(serverVerdict(rowWith(started, [])).text).toBe('not received yet');
    expect(serverVerdict(rowWith([], [])).text).toBe('');
    const batched = [...started].reduce(reduceCall, newRow(0, 'r1-1', 1, 'http-batch', 1000));
    expect(serverVerdict(batched).text).toBe('batched: not received yet');
  });

  it('names a server deadline', () => {
    const hops = [ev('r1-1', { type: 'statement.started', statement: 1, pid: 3 }), ev('r1-1', { type: 'statement.ended', statement: 1, pid: 3, sqlstate: '57014', ms: 100 }), ev('r1-1', { type: 'settled', code: 'TIMEOUT', ms: 100 })];
    expect(serverVerdict(rowWith([...started, { type: 'failed', at: 1100, error: { code: 'TIMEOUT', message: '' }, timedOut: true }], hops)).text).toBe('deadline: SQL cancelled');
  });

  it('a call the server received that waits for a pool connection says so', () => {
    const received = ev('r1-1', { type: 'received', budgetMs: 5000 });
    const admitted = ev('r1-1', { type: 'started' });
    expect(serverVerdict(rowWith(started, [received, admitted]))).toEqual({ tone: 'busy', text: WAITING_FOR_POOL });
    // Received, not admitted yet (a moment): working.
    expect(serverVerdict(rowWith(started, [received])).text).toBe('working');
    // In the server's admission queue: not yet asking for a connection.
    const queued = ev('r1-1', { type: 'queued', position: 4 });
    expect(serverVerdict(rowWith(started, [received, queued])).text).toBe('server queue #4');
    expect(waitsForPoolConnection(hopSlots(rowWith(started, [received, queued]).hops))).toBe(false);
    // Out of the admission queue, then waiting for a connection.
    expect(serverVerdict(rowWith(started, [received, queued, ev('r1-1', { type: 'started' })])).text).toBe(WAITING_FOR_POOL);
    // Its statement started: running.
    const sql = ev('r1-1', { type: 'statement.started', statement: 1, pid: 42 });
    expect(serverVerdict(rowWith(started, [received, admitted, sql])).text).toBe('SQL on pid 42');
    expect(waitsForPoolConnection(hopSlots(rowWith(started, [received, admitted, sql]).hops))).toBe(false);
  });

  it('a call cancelled by id while it waited for a connection: dequeued, never sent to Postgres', () => {
    const hops = [
      ev('r1-1', { type: 'received', budgetMs: 5000 }),
      ev('r1-1', { type: 'started' }),
      ev('r1-1', { type: 'signal.fired', reason: 'cancelled' }),
      ev('r1-1', { type: 'cancel.sent', statement: 3, pid: null, queued: true, attempt: 1 }),
      ev('r1-1', { type: 'statement.ended', statement: 3, pid: null, sqlstate: '57014', ms: 900 }),
      ev('r1-1', { type: 'settled', code: 'CLIENT_CLOSED_REQUEST', ms: 905 }),
    ];
    const row = rowWith([...started, { type: 'cancel-requested', by: 'you' }, { type: 'cancelled', at: 1900 }], hops);
    const slots = hopSlots(row.hops);
    expect(slots.cancel?.queued).toBe(true);
    expect(signalLabel(slots.signal?.reason ?? '')).toBe('by id');
    expect(waitsForPoolConnection(slots)).toBe(false);
    expect(serverVerdict(row)).toEqual({ tone: 'ok', text: 'SQL cancelled' });
  });

  it('labels every signal reason for the narrow column', () => {
    expect(['client-closed', 'cancelled', 'timeout', 'shutdown', 'database'].map(signalLabel)).toEqual(['client', 'by id', 'deadline', 'shutdown', 'database']);
  });
});

describe('servedBy', () => {
  it('is undefined before the server\'s first hop', () => {
    expect(servedBy([])).toBeUndefined();
  });

  it('names the instance of the latest attempt, and every instance the call went through', () => {
    const hops = [
      ev('r1-1', { type: 'received', budgetMs: 5000, instance: 'host-a:101' }),
      ev('r1-1', { type: 'settled', code: 'SERVICE_UNAVAILABLE', ms: 3, instance: 'host-a:101' }),
      ev('r1-1~1', { type: 'received', budgetMs: 4000, instance: 'host-b:202' }),
      ev('r1-1~1', { type: 'statement.started', statement: 1, pid: 7, instance: 'host-b:202' }),
    ];
    const row = rowWith(started, hops, (e) => parseCallId(e.callId).attempt);
    expect(servedBy(row.hops)).toEqual({ instance: 'host-b:202', all: ['host-a:101', 'host-b:202'] });
  });

  it('keeps the latest attempt\'s instance when an earlier attempt\'s hop arrives late', () => {
    const hops = [
      ev('r1-1~1', { type: 'received', budgetMs: 4000, instance: 'host-b:202' }),
      ev('r1-1', { type: 'settled', code: 'CLIENT_CLOSED_REQUEST', ms: 3, instance: 'host-a:101' }),
    ];
    const row = rowWith(started, hops, (e) => parseCallId(e.callId).attempt);
    expect(servedBy(row.hops)?.instance).toBe('host-b:202');
  });
});

describe('a cancel whose call\'s instance is gone', () => {
  const cancelled: CallEvent[] = [...started, { type: 'cancel-requested', by: 'you' }, { type: 'cancelled', at: 1500 }];

  it('says "instance gone" instead of "still working" (no settle will ever come)', () => {
    const hops = [ev('r1-1', { type: 'received', budgetMs: 5000 }), ev('r1-1', { type: 'statement.started', statement: 1, pid: 9 })];
    expect(serverVerdict(rowWith(cancelled, hops)).text).toBe('still working');
    expect(serverVerdict(rowWith([...cancelled, { type: 'cancel-outcome', status: 'instance-gone' }], hops))).toEqual({ tone: 'bad', text: 'instance gone' });
    expect(serverVerdict(rowWith([...cancelled, { type: 'cancel-outcome', status: 'instance-gone' }], []))).toEqual({ tone: 'bad', text: 'instance gone' });
  });

  it('a settle seen before the instance went wins: that is what happened', () => {
    const hops = [ev('r1-1', { type: 'received', budgetMs: 5000 }), ev('r1-1', { type: 'settled', code: 'CLIENT_CLOSED_REQUEST', ms: 400 })];
    expect(serverVerdict(rowWith([...cancelled, { type: 'cancel-outcome', status: 'instance-gone' }], hops)).text).toBe('stopped before SQL');
  });

  it('words every outcome', () => {
    expect(cancelOutcomeText('instance-gone')).toMatch(/instance .* is gone/);
    expect(new Set((['cancelled', 'already-settled', 'unknown', 'instance-gone'] as const).map(cancelOutcomeText)).size).toBe(4);
  });
});
