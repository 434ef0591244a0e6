/**
 * Joining the server's activity events to the client's rows. The server names every event with the call
 * id the client sent (x-request-id over HTTP, the call's id over the WebSocket); retries are sent as
 * `~n`, and calls of a batched request the client did not name get `#i` (the format is
 * @asyncscope/contract's call-id module). Stripping both gives the row; the `~n` gives the attempt.
 */
import type { ActivityEvent } from '@asyncscope/api';
import { parseCallId, type CancelStatus } from '@asyncscope/contract';
import { isTerminal, type CallRow, type ServerHop } from './call-state';

/** Splits a batch of events into hops for known rows (by index) and events of calls that are not ours. */
export function joinEvents(
  events: readonly ActivityEvent[],
  rowIndexOf: (baseCallId: string) => number | undefined,
): { hops: { index: number; hop: ServerHop }[]; others: ActivityEvent[] } {
  const hops: { index: number; hop: ServerHop }[] = [];
  const others: ActivityEvent[] = [];
  for (const event of events) {
    const { base, attempt } = parseCallId(event.callId);
    const index = rowIndexOf(base);
    if (index === undefined) others.push(event);
    else hops.push({ index, hop: { ...event, attempt } });
  }
  return { hops, others };
}

/** Which instance served a call: its latest attempt's, and every instance its hops name (in order of first hop). */
export interface ServedBy {
  instance: string;
  all: readonly string[];
}

/**
 * Behind a balancer each attempt of a call (a retry is a new request) can land on another instance: the
 * row shows the latest attempt's, the inspector every one. Undefined until the server's first hop.
 */
export function servedBy(hops: readonly ServerHop[]): ServedBy | undefined {
  let latest: ServerHop | undefined;
  const all: string[] = [];
  for (const hop of hops) {
    if (!latest || hop.attempt >= latest.attempt) latest = hop;
    if (!all.includes(hop.instance)) all.push(hop.instance);
  }
  return latest ? { instance: latest.instance, all } : undefined;
}

/** The hops of one attempt, one slot per kind: the fixed columns of a row. */
export interface HopSlots {
  received?: Extract<ServerHop, { type: 'received' }>;
  queued?: Extract<ServerHop, { type: 'queued' }>;
  /** Admitted: past the server's admission queue, running (or waiting for a pool connection). */
  started?: Extract<ServerHop, { type: 'started' }>;
  statement?: Extract<ServerHop, { type: 'statement.started' }>;
  signal?: Extract<ServerHop, { type: 'signal.fired' }>;
  cancel?: Extract<ServerHop, { type: 'cancel.sent' }>;
  ended?: Extract<ServerHop, { type: 'statement.ended' }>;
  rolledBack?: Extract<ServerHop, { type: 'rolled_back' }>;
  settled?: Extract<ServerHop, { type: 'settled' }>;
}

/**
 * Slots for one attempt (default: the latest attempt the server has seen). A call makes several
 * statements (injected latency, then the lookup): the statement slot shows the last one started, the end
 * slot prefers a cancelled statement (57014) over a normal end, since that is the story worth telling.
 */
export function hopSlots(hops: readonly ServerHop[], attempt?: number): HopSlots {
  const wanted = attempt ?? hops.reduce((max, h) => Math.max(max, h.attempt), 0);
  const slots: HopSlots = {};
  for (const hop of hops) {
    if (hop.attempt !== wanted) continue;
    switch (hop.type) {
      case 'received':
        slots.received = hop;
        break;
      case 'queued':
        slots.queued = hop;
        break;
      case 'started':
        slots.started = hop;
        break;
      case 'statement.started':
        slots.statement = hop;
        break;
      case 'signal.fired':
        slots.signal = hop;
        break;
      case 'cancel.sent':
        slots.cancel = hop;
        break;
      case 'statement.ended':
        if (!slots.ended || slots.ended.sqlstate === null || hop.sqlstate !== null) slots.ended = hop;
        break;
      case 'rolled_back':
        slots.rolledBack = hop;
        break;
      case 'settled':
        slots.settled = hop;
        break;
      default:
        break;
    }
  }
  return slots;
}

export type VerdictTone = 'idle' | 'busy' | 'ok' | 'warn' | 'bad';

export interface Verdict {
  tone: VerdictTone;
  /** Short, for the row. */
  text: string;
}

/** SQLSTATE 57014: query_canceled — Postgres stopped the statement because we asked it to. */
export const QUERY_CANCELED = '57014';

export const WAITING_FOR_POOL = 'waiting for a pool connection';

/**
 * Admitted (past the server's admission queue: its `started` hop), no SQL statement yet and no end: the
 * call waits for one of the pool's connections (its statement is queued inside the pool, a hop the server
 * does not log).
 */
export function waitsForPoolConnection(slots: HopSlots): boolean {
  return slots.started !== undefined && !slots.statement && !slots.settled && !slots.signal;
}

/** Where a row's call is on the server (its latest attempt), for the run's counts. */
export type ServerPhase = 'unseen' | 'admission' | 'pool' | 'sql' | 'working' | 'settled';

export const SERVER_PHASES: readonly ServerPhase[] = ['unseen', 'admission', 'pool', 'sql', 'working', 'settled'];

export function serverPhase(hops: readonly ServerHop[]): ServerPhase {
  if (hops.length === 0) return 'unseen';
  const slots = hopSlots(hops);
  if (slots.settled) return 'settled';
  if (slots.statement) return 'sql';
  if (waitsForPoolConnection(slots)) return 'pool';
  if (slots.queued && !slots.started) return 'admission';
  return 'working';
}

/** Why a call's server-side signal fired: a word for a narrow column, and a phrase. */
const SIGNAL_REASONS: Record<string, { label: string; text: string }> = {
  'client-closed': { label: 'client', text: 'the client closed the request (or its socket)' },
  cancelled: { label: 'by id', text: 'cancelled by id (calls.cancel)' },
  timeout: { label: 'deadline', text: 'the call’s deadline passed' },
  shutdown: { label: 'shutdown', text: 'the server is shutting down' },
  database: { label: 'database', text: 'the database went away' },
};

/** How the call's server-side signal fired, for a narrow column. */
export function signalLabel(reason: string): string {
  return SIGNAL_REASONS[reason]?.label ?? reason;
}

/** How the call's server-side signal fired, in words. */
export function signalText(reason: string): string {
  return SIGNAL_REASONS[reason]?.text ?? reason;
}

/**
 * One line that separates "the client stopped waiting" from "the server stopped working".
 */
export function serverVerdict(row: CallRow): Verdict {
  const slots = hopSlots(row.hops);
  const clientStopped = row.state === 'cancelled' || row.state === 'timed-out';
  if (row.hops.length === 0) {
    if (row.cancelOutcome === 'instance-gone') return { tone: 'bad', text: 'instance gone' };
    if (row.transport === 'http-batch' && row.state !== 'queued') return { tone: 'idle', text: 'batched: not received yet' };
    if (row.state === 'queued') return { tone: 'idle', text: '' };
    if (row.state === 'cancelled' && row.startedAt === undefined) return { tone: 'ok', text: 'never sent' };
    if (isTerminal(row.state)) return { tone: 'idle', text: 'not seen by server' };
    return { tone: 'idle', text: 'not received yet' };
  }
  const { settled } = slots;
  // Its instance no longer answers: no settle hop will come, and nothing is left to stop.
  if (!settled && row.cancelOutcome === 'instance-gone') return { tone: 'bad', text: 'instance gone' };
  if (!settled) {
    if (clientStopped) return slots.signal ? { tone: 'busy', text: 'stopping…' } : { tone: 'warn', text: 'still working' };
    if (slots.statement) return { tone: 'busy', text: `SQL on pid ${slots.statement.pid}` };
    if (slots.queued && !slots.started) return { tone: 'busy', text: `server queue #${slots.queued.position}` };
    if (waitsForPoolConnection(slots)) return { tone: 'busy', text: WAITING_FOR_POOL };
    return { tone: 'busy', text: 'working' };
  }
  if (settled.code === 'OK') {
    return clientStopped ? { tone: 'warn', text: 'finished anyway' } : { tone: 'ok', text: `done ${fmtMs(settled.ms)}` };
  }
  if (settled.code === 'CLIENT_CLOSED_REQUEST' || settled.code === 'TIMEOUT') {
    const where = slots.ended?.sqlstate === QUERY_CANCELED ? 'SQL cancelled' : slots.statement ? 'stopped' : 'stopped before SQL';
    return { tone: 'ok', text: settled.code === 'TIMEOUT' ? `deadline: ${where}` : where };
  }
  return { tone: 'bad', text: settled.code };
}

/** What the server's answer to `calls.cancel` means for the call, in words. */
export function cancelOutcomeText(status: CancelStatus): string {
  switch (status) {
    case 'cancelled':
      return 'stopped on the server';
    case 'already-settled':
      return 'it had already finished on the server';
    case 'unknown':
      return 'unknown to the server (not received yet, or forgotten)';
    case 'instance-gone':
      return 'the server instance that ran it is gone (stopped or died), and its work with it';
  }
}

export function fmtMs(ms: number): string {
  if (ms < 1) return '<1 ms';
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 10_000) return `${(ms / 1000).toFixed(2)} s`;
  return `${(ms / 1000).toFixed(1)} s`;
}

/** Short label of a settle code for a narrow column. */
export function shortCode(code: string): string {
  switch (code) {
    case 'CLIENT_CLOSED_REQUEST':
      return 'CLOSED';
    case 'SERVICE_UNAVAILABLE':
      return 'UNAVAIL';
    case 'TOO_MANY_REQUESTS':
      return 'SHED';
    case 'INTERNAL_SERVER_ERROR':
      return 'ERROR';
    default:
      return code.length > 8 ? code.slice(0, 8) : code;
  }
}
