import { TimeoutError } from '@asyncscope/concurrency';
import { TRPCClientError } from '@trpc/client';
import { describe, expect, it } from 'vitest';
import { describeError, newRow, reduceCall, stateLabel, type CallEvent, type CallRow } from './call-state';

const run = (...events: CallEvent[]): CallRow => events.reduce(reduceCall, newRow(0, 'r1-1', 7, 'websocket', 1000));
const err = (code: string) => ({ code, message: code });

describe('reduceCall', () => {
  it('queued → running → succeeded, with one attempt and its duration', () => {
    const row = run({ type: 'started', at: 1010 }, { type: 'attempt', at: 1010, attempt: 0 }, { type: 'succeeded', at: 1250 });
    expect(row.state).toBe('succeeded');
    expect(row.startedAt).toBe(1010);
    expect(row.endedAt).toBe(1250);
    expect(row.attempts).toEqual([{ n: 0, startedAt: 1010, endedAt: 1250, outcome: 'ok' }]);
  });

  it('retrying n: closes the failed attempt, remembers the backoff, and runs again', () => {
    const retrying = run(
      { type: 'started', at: 1000 },
      { type: 'attempt', at: 1000, attempt: 0 },
      { type: 'retrying', at: 1100, attempt: 0, delayMs: 80, error: err('SERVICE_UNAVAILABLE') },
    );
    expect(retrying.state).toBe('retrying');
    expect(retrying.retryUntil).toBe(1180);
    expect(retrying.attempts[0]).toMatchObject({ outcome: 'error', code: 'SERVICE_UNAVAILABLE', endedAt: 1100 });
    expect(stateLabel(retrying)).toBe('retrying 1');

    const again = reduceCall(retrying, { type: 'attempt', at: 1180, attempt: 1 });
    expect(again.state).toBe('running');
    expect(again.retryUntil).toBeUndefined();
    expect(again.attempts).toHaveLength(2);
    expect(stateLabel(again)).toBe('running (try 2)');
    const done = reduceCall(again, { type: 'succeeded', at: 1300 });
    expect(done.state).toBe('succeeded');
    expect(done.error).toBeUndefined(); // the retried error is not the verdict
  });

  it('tells a timeout from a failure', () => {
    const timedOut = run({ type: 'started', at: 1000 }, { type: 'attempt', at: 1000, attempt: 0 }, { type: 'failed', at: 6000, error: err('TIMEOUT'), timedOut: true });
    expect(timedOut.state).toBe('timed-out');
    expect(stateLabel(timedOut)).toBe('timed out');
    const failed = run({ type: 'started', at: 1000 }, { type: 'attempt', at: 1000, attempt: 0 }, { type: 'failed', at: 1200, error: err('NOT_FOUND'), timedOut: false });
    expect(failed.state).toBe('failed');
    expect(failed.error?.code).toBe('NOT_FOUND');
  });

  it('cancelled by you, by "cancel all", or by a failing sibling', () => {
    const started: CallEvent[] = [{ type: 'started', at: 1000 }, { type: 'attempt', at: 1000, attempt: 0 }];
    const mine = run(...started, { type: 'cancel-requested', by: 'you' }, { type: 'cancelled', at: 1500 });
    expect(mine).toMatchObject({ state: 'cancelled', cancelledBy: 'you', endedAt: 1500 });
    expect(mine.cancelRequested).toBeUndefined();
    expect(mine.attempts[0]?.outcome).toBe('aborted');

    const all = run(...started, { type: 'cancel-requested', by: 'cancel-all' }, { type: 'cancelled', at: 1500 });
    expect(all.cancelledBy).toBe('cancel-all');
    expect(stateLabel(all)).toBe('cancelled · all');

    const sibling = run(...started, { type: 'cancelled', at: 1500, causeIndex: 3 });
    expect(sibling).toMatchObject({ cancelledBy: 'sibling', causeIndex: 3 });
    expect(stateLabel(sibling)).toBe('cancelled by #4');

    // Your own cancel wins over the sibling's, when both happened.
    const both = run(...started, { type: 'cancel-requested', by: 'you' }, { type: 'cancelled', at: 1500, causeIndex: 3 });
    expect(both.cancelledBy).toBe('you');
    expect(both.causeIndex).toBeUndefined();
  });

  it('a call cancelled while queued never started', () => {
    const row = run({ type: 'cancel-requested', by: 'you' }, { type: 'cancelled', at: 1200 });
    expect(row).toMatchObject({ state: 'cancelled', attempts: [], endedAt: 1200 });
    expect(row.startedAt).toBeUndefined();
  });

  it('the first terminal state wins; late client events change nothing', () => {
    const cancelled = run({ type: 'started', at: 1000 }, { type: 'attempt', at: 1000, attempt: 0 }, { type: 'cancelled', at: 1100 });
    for (const late of [
      { type: 'succeeded', at: 1200 },
      { type: 'failed', at: 1200, error: err('X'), timedOut: false },
      { type: 'attempt', at: 1200, attempt: 1 },
      { type: 'cancel-requested', by: 'you' },
    ] satisfies CallEvent[]) {
      expect(reduceCall(cancelled, late)).toBe(cancelled);
    }
  });

  it('server hops and selection still arrive after the end; a hop delivered twice is kept once', () => {
    const done = run({ type: 'started', at: 1000 }, { type: 'attempt', at: 1000, attempt: 0 }, { type: 'cancelled', at: 1100 });
    const hop = { seq: 9, at: 1105, callId: 'r1-1', path: 'users.byId', instance: 'i1', type: 'signal.fired' as const, reason: 'client-closed' as const, attempt: 0 };
    const withHop = reduceCall(done, { type: 'hop', hop });
    expect(withHop.hops).toEqual([hop]);
    expect(reduceCall(withHop, { type: 'hop', hop: { ...hop } })).toBe(withHop);
    expect(reduceCall(withHop, { type: 'select', selected: true }).selected).toBe(true);
  });

  it('marks the fail-fast cause', () => {
    const row = run({ type: 'started', at: 1000 }, { type: 'attempt', at: 1000, attempt: 0 }, { type: 'cause' }, { type: 'failed', at: 1100, error: err('SERVICE_UNAVAILABLE'), timedOut: false });
    expect(row.isCause).toBe(true);
    expect(stateLabel(row)).toBe('failed · cause');
  });
});

describe('describeError', () => {
  const withCode = (code: string) => Object.assign(new TRPCClientError<never>(`${code} happened`), { data: { code } });

  it('names deadlines, tRPC codes, network failures and aborts', () => {
    expect(describeError(new TimeoutError(500))).toMatchObject({ code: 'TIMEOUT', timedOut: true });
    expect(describeError(withCode('TIMEOUT'))).toMatchObject({ code: 'TIMEOUT', timedOut: true });
    expect(describeError(withCode('SERVICE_UNAVAILABLE'))).toMatchObject({ code: 'SERVICE_UNAVAILABLE', timedOut: false });
    expect(describeError(new TRPCClientError('Failed to fetch', { cause: new TypeError('Failed to fetch') }))).toMatchObject({ code: 'NETWORK' });
    expect(describeError(new DOMException('aborted', 'AbortError'))).toMatchObject({ code: 'ABORTED', aborted: true });
  });
});
