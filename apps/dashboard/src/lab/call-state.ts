/**
 * The life of one call in the fetch lab, as the client sees it, plus the server hops joined to it.
 * `reduceCall` is pure: every change to a row goes through it, so the transitions are tested in one place.
 *
 *   queued → running → (retrying n → running)* → succeeded | failed | timed-out | cancelled
 *
 * The first terminal state wins: a late event (an attempt that settles after its call was cancelled)
 * never changes the verdict. Server hops and selection keep arriving after that.
 */
import type { ActivityEvent } from '@asyncscope/api';
import { isApiError } from '@asyncscope/client';
import type { CancelStatus } from '@asyncscope/contract';
import { isAbortError, TimeoutError } from '@asyncscope/concurrency';
import type { LabTransport } from './transport';

export type CallState = 'queued' | 'running' | 'retrying' | 'succeeded' | 'failed' | 'timed-out' | 'cancelled';

export const CALL_STATES: readonly CallState[] = ['queued', 'running', 'retrying', 'succeeded', 'failed', 'timed-out', 'cancelled'];

const TERMINAL: ReadonlySet<CallState> = new Set(['succeeded', 'failed', 'timed-out', 'cancelled']);

export function isTerminal(state: CallState): boolean {
  return TERMINAL.has(state);
}

/** Who stopped a cancelled call: you (its row, or a selection), "cancel all", or a failing sibling (fail-fast). */
export type CancelledBy = 'you' | 'cancel-all' | 'sibling';

export interface ErrorInfo {
  /** tRPC code (SERVICE_UNAVAILABLE, NOT_FOUND, …), TIMEOUT, NETWORK, or ERROR. */
  code: string;
  message: string;
}

export interface Attempt {
  /** 0-based; attempt n > 0 is sent as `${callId}~${n}`. */
  n: number;
  startedAt: number;
  endedAt?: number;
  outcome?: 'ok' | 'error' | 'aborted';
  code?: string;
}

/** A server event joined to a row, with the attempt it belongs to. */
export type ServerHop = ActivityEvent & { attempt: number };

export interface CallRow {
  /** Position in the run, 0-based (shown as #index+1). */
  index: number;
  callId: string;
  userId: number;
  /** How the call travels (the run's choice). */
  transport: LabTransport;
  state: CallState;
  queuedAt: number;
  /** When the first attempt started (a concurrency slot was free). */
  startedAt?: number;
  endedAt?: number;
  attempts: Attempt[];
  /** While retrying: when the backoff sleep ends. */
  retryUntil?: number;
  error?: ErrorInfo;
  cancelledBy?: CancelledBy;
  /** A cancel was asked for and not yet observed. */
  cancelRequested?: 'you' | 'cancel-all';
  /** Fail-fast: this call's failure cancelled its siblings. */
  isCause: boolean;
  /** Fail-fast: the index of the call whose failure cancelled this one. */
  causeIndex?: number;
  selected: boolean;
  /** Server events for this call's attempts, in arrival (sequence) order. */
  hops: readonly ServerHop[];
  /** What the server answered the `calls.cancel` the client sent for it (WebSocket and batched transports). */
  cancelOutcome?: CancelStatus;
}

export type CallEvent =
  | { type: 'started'; at: number }
  | { type: 'attempt'; at: number; attempt: number }
  | { type: 'retrying'; at: number; attempt: number; delayMs: number; error: ErrorInfo }
  | { type: 'succeeded'; at: number }
  | { type: 'failed'; at: number; error: ErrorInfo; timedOut: boolean }
  | { type: 'cancel-requested'; by: 'you' | 'cancel-all' }
  | { type: 'cancelled'; at: number; causeIndex?: number | undefined }
  | { type: 'cause' }
  | { type: 'hop'; hop: ServerHop }
  | { type: 'cancel-outcome'; status: CancelStatus }
  | { type: 'select'; selected: boolean };

export function newRow(index: number, callId: string, userId: number, transport: LabTransport, at: number): CallRow {
  return { index, callId, userId, transport, state: 'queued', queuedAt: at, attempts: [], isCause: false, selected: false, hops: [] };
}

function closeAttempt(attempts: Attempt[], at: number, outcome: NonNullable<Attempt['outcome']>, code?: string): Attempt[] {
  const last = attempts.at(-1);
  if (!last || last.endedAt !== undefined) return attempts;
  const closed: Attempt = { ...last, endedAt: at, outcome, ...(code !== undefined ? { code } : {}) };
  return [...attempts.slice(0, -1), closed];
}

function finish(row: CallRow, at: number, state: CallState, outcome: NonNullable<Attempt['outcome']>, code?: string): CallRow {
  const { retryUntil: _retryUntil, cancelRequested: _cancelRequested, ...rest } = row;
  return { ...rest, state, endedAt: at, attempts: closeAttempt(row.attempts, at, outcome, code) };
}

export function reduceCall(row: CallRow, event: CallEvent): CallRow {
  switch (event.type) {
    case 'hop': {
      const { hop } = event;
      // A replayed stream can deliver an event twice; the same sequence number, type and time is the same event.
      if (row.hops.some((h) => h.seq === hop.seq && h.type === hop.type && h.at === hop.at)) return row;
      return { ...row, hops: [...row.hops, hop] };
    }
    case 'select':
      return row.selected === event.selected ? row : { ...row, selected: event.selected };
    case 'cause':
      return row.isCause ? row : { ...row, isCause: true };
    case 'cancel-outcome':
      // It arrives after the call ended on the client (the abort ends it at once): kept like a hop.
      return row.cancelOutcome === event.status ? row : { ...row, cancelOutcome: event.status };
    default:
      break;
  }
  if (isTerminal(row.state)) return row;
  switch (event.type) {
    case 'started':
      return row.state === 'queued' ? { ...row, state: 'running', startedAt: event.at } : row;
    case 'attempt': {
      const { retryUntil: _retryUntil, ...rest } = row;
      return {
        ...rest,
        state: 'running',
        startedAt: row.startedAt ?? event.at,
        attempts: [...closeAttempt(row.attempts, event.at, 'error'), { n: event.attempt, startedAt: event.at }],
      };
    }
    case 'retrying':
      return {
        ...row,
        state: 'retrying',
        retryUntil: event.at + event.delayMs,
        error: event.error,
        attempts: closeAttempt(row.attempts, event.at, 'error', event.error.code),
      };
    case 'succeeded': {
      const { error: _error, ...rest } = finish(row, event.at, 'succeeded', 'ok');
      return rest;
    }
    case 'failed':
      return { ...finish(row, event.at, event.timedOut ? 'timed-out' : 'failed', 'error', event.error.code), error: event.error };
    case 'cancel-requested':
      return row.cancelRequested ? row : { ...row, cancelRequested: event.by };
    case 'cancelled': {
      const by: CancelledBy = row.cancelRequested ?? (event.causeIndex !== undefined ? 'sibling' : 'cancel-all');
      const done = finish(row, event.at, 'cancelled', 'aborted');
      const { error: _error, ...rest } = done;
      return { ...rest, cancelledBy: by, ...(by === 'sibling' && event.causeIndex !== undefined ? { causeIndex: event.causeIndex } : {}) };
    }
  }
}

/** The code a failed call shows: the tRPC code, TIMEOUT for deadlines, NETWORK when nothing came back. */
export function describeError(error: unknown): ErrorInfo & { timedOut: boolean; aborted: boolean } {
  if (error instanceof TimeoutError) return { code: 'TIMEOUT', message: `No answer within ${error.ms} ms (client deadline, retries included)`, timedOut: true, aborted: false };
  if (isApiError(error)) {
    const code = error.data?.code;
    if (code === undefined) {
      const cause: unknown = error.cause;
      if (isAbortError(cause)) return { code: 'ABORTED', message: error.message, timedOut: false, aborted: true };
      return { code: 'NETWORK', message: `No answer from the server (${error.message})`, timedOut: false, aborted: false };
    }
    return { code, message: error.message, timedOut: code === 'TIMEOUT', aborted: false };
  }
  if (isAbortError(error)) return { code: 'ABORTED', message: error instanceof Error ? error.message : 'aborted', timedOut: false, aborted: true };
  return { code: 'ERROR', message: error instanceof Error ? error.message : String(error), timedOut: false, aborted: false };
}

/** Elapsed time of a row: queue wait excluded, from its first attempt to its end (or now). */
export function runningMs(row: CallRow, now: number): number | undefined {
  if (row.startedAt === undefined) return undefined;
  return (row.endedAt ?? now) - row.startedAt;
}

export function stateLabel(row: CallRow): string {
  switch (row.state) {
    case 'retrying':
      return `retrying ${row.attempts.length}`;
    case 'running':
      return row.attempts.length > 1 ? `running (try ${row.attempts.length})` : 'running';
    case 'timed-out':
      return 'timed out';
    case 'cancelled':
      if (row.cancelledBy === 'sibling') return row.causeIndex !== undefined ? `cancelled by #${row.causeIndex + 1}` : 'cancelled by sibling';
      return row.cancelledBy === 'cancel-all' ? 'cancelled · all' : 'cancelled';
    case 'failed':
      return row.isCause ? 'failed · cause' : 'failed';
    default:
      return row.state;
  }
}
