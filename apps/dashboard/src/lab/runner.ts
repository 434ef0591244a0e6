/**
 * Runs a fetch-lab run: one TaskGroup (settled = gather with return_exceptions, fail-fast = the first
 * failure cancels every sibling), each task one users.byId call through callWithPolicy (deadline across
 * retries, backoff with full jitter, the row's call id with `~n` per retry) with the task's AbortSignal,
 * over the run's transport, whose cancel reaches the server (a closed request, or calls.cancel by id).
 * Every transition lands in the store.
 */
import { callWithPolicy, type CallContext } from '@asyncscope/client';
import { AbortError, TaskGroup, type TaskEvent, type TaskHandle } from '@asyncscope/concurrency';
import { parseCallId } from '@asyncscope/contract';
import { describeError } from './call-state';
import type { CallsStore, RunConfig } from './calls-store';
import { contextTransportOf } from './transport';

export type FetchUser = (id: number, opts: { signal: AbortSignal; context: CallContext }) => Promise<unknown>;

export interface RunHandle {
  id: string;
  /** Cancels one call (a queued one never starts). */
  cancel(index: number): void;
  cancelMany(indices: readonly number[]): void;
  cancelAll(): void;
  /** Settles when every call has settled; never rejects. */
  done: Promise<void>;
}

/**
 * Settles like `promise`, or rejects with the signal's reason as soon as it aborts: the caller stops
 * waiting even when the request cannot be stopped. tRPC 11.22's client does not reject a batched call
 * on abort (it waits for the whole batch), so without this a cancelled batched call would "succeed".
 */
export function stopWaitingOnAbort<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) {
    promise.catch(() => undefined);
    return Promise.reject(signal.reason as Error);
  }
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => { reject(signal.reason as Error); };
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(resolve, reject).finally(() => { signal.removeEventListener('abort', onAbort); }).catch(() => undefined);
  });
}

export function newRunId(): string {
  return `r${Math.random().toString(36).slice(2, 7)}`;
}

export function startRun(store: CallsStore, config: RunConfig, userIds: readonly number[], fetchUser: FetchUser, id = newRunId()): RunHandle {
  store.beginRun(id, config, userIds);
  // Tasks are named by their row's call id.
  const rowOf = new Map<string, number>();
  const indexOf = (taskId: string): number => rowOf.get(parseCallId(taskId).base) ?? -1;
  const transport = contextTransportOf(config.transport);

  const onEvent = (event: TaskEvent): void => {
    const index = indexOf(event.taskId);
    switch (event.type) {
      case 'queued':
        return;
      case 'started':
        store.dispatch(index, { type: 'started', at: event.at });
        return;
      case 'retrying':
        return; // reported by callWithPolicy's onRetry below (the group itself does not retry)
      case 'settled':
        if (event.outcome === 'fulfilled') {
          store.dispatch(index, { type: 'succeeded', at: event.at });
        } else {
          const error = describeError(event.error);
          // The group cancels siblings right after its first failure: name the cause before they report.
          if (config.mode === 'fail-fast') store.setCause(index, error);
          store.dispatch(index, { type: 'failed', at: event.at, error, timedOut: error.timedOut });
        }
        return;
      case 'cancelled': {
        const cause = store.run?.cause;
        store.dispatch(index, { type: 'cancelled', at: event.at, causeIndex: cause && cause.index !== index ? cause.index : undefined });
        return;
      }
    }
  };

  const group = new TaskGroup({ mode: config.mode, concurrency: config.concurrency, onEvent });
  const handles: TaskHandle<unknown>[] = [];
  for (let i = 0; i < config.count; i++) {
    const row = store.row(i);
    if (!row) break;
    const { callId, userId } = row;
    rowOf.set(callId, i);
    handles.push(
      group.spawn(
        (signal) =>
          callWithPolicy(
            ({ signal: attemptSignal, context, attempt }) => {
              store.dispatch(i, { type: 'attempt', at: Date.now(), attempt });
              return stopWaitingOnAbort(fetchUser(userId, { signal: attemptSignal, context: { ...context, transport } }), attemptSignal);
            },
            {
              callId,
              timeoutMs: config.timeoutMs,
              retries: config.retries,
              minDelayMs: config.minDelayMs,
              maxDelayMs: config.maxDelayMs,
              signal,
              onRetry: (info) => {
                store.dispatch(i, { type: 'retrying', at: Date.now(), attempt: info.attempt, delayMs: info.delayMs, error: describeError(info.error) });
              },
            },
          ),
        { id: callId },
      ),
    );
  }

  const done = group.wait().then(
    () => undefined,
    () => undefined, // fail-fast: the cause is already on the run; cancelled: every row says so
  ).finally(() => { store.endRun(); });

  const cancel = (index: number, by: 'you' | 'cancel-all'): void => {
    const row = store.row(index);
    if (!row || row.state === 'succeeded' || row.state === 'failed' || row.state === 'timed-out' || row.state === 'cancelled') return;
    store.dispatch(index, { type: 'cancel-requested', by });
    handles[index]?.cancel(new AbortError(by === 'you' ? 'Cancelled by you' : 'Cancelled by you (cancel all)'));
  };

  return {
    id,
    done,
    cancel: (index) => { cancel(index, 'you'); },
    cancelMany: (indices) => { for (const index of indices) cancel(index, 'you'); },
    cancelAll: () => {
      for (const index of store.activeIndices()) store.dispatch(index, { type: 'cancel-requested', by: 'cancel-all' });
      group.cancel(new AbortError('Cancelled by you (cancel all)'));
    },
  };
}
