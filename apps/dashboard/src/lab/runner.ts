/**
 * Runs a fetch-lab run: one TaskGroup (settled = gather with return_exceptions, fail-fast = the first
 * failure cancels every sibling), each task one users.byId call through callWithPolicy (deadline across
 * retries, backoff with full jitter, the row's call id with `~n` per retry) with the task's AbortSignal,
 * over the run's transport, whose cancel reaches the server (a closed request, or calls.cancel by id).
 * Every transition lands in the store.
 */
import { callWithPolicy, type CallContext } from '@asyncscope/client';
import { AbortError, sleep, TaskGroup, type TaskEvent, type TaskHandle } from '@asyncscope/concurrency';
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

  const group = new TaskGroup({ mode: config.mode, concurrency: config.concurrency, onEvent: (event) => {
    onEvent(event);
    // A slot frees as a task settles: hand the group the next call (at once, so the group never looks idle).
    if (event.type === 'settled' || event.type === 'cancelled') {
      handedOver--;
      feed();
    }
  } });
  const handles: (TaskHandle<unknown> | undefined)[] = [];
  /** Rows cancelled before the group was handed their task: never handed over. */
  const dropped = new Set<number>();
  let next = 0;
  /** Tasks the group holds and has not settled (its own count drops only after this event). */
  let handedOver = 0;
  const count = Math.min(config.count, store.run?.config.count ?? 0);

  const spawn = (i: number): void => {
    const row = store.row(i);
    if (!row) return;
    const { callId, userId } = row;
    rowOf.set(callId, i);
    handedOver++;
    handles[i] = group.spawn(
      async (signal) => {
        // The call starts in a task of its own. Handed over as the previous call's answer arrives, it would
        // run in that answer's task, and a run going at the socket's full rate leaves the page no room to
        // render (10,000 calls at concurrency 20: frame p95 33 ms). Its row's time starts at its attempt,
        // after this: the wait is the lab pacing itself, not the call's latency.
        await sleep(0, { signal });
        return callWithPolicy(
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
        );
      },
      { id: callId },
    );
  };

  /**
   * The group gets a call when it has a free slot, not all of them up front: spawning 10,000 tasks at once
   * (a signal, a scope and a semaphore waiter each) was one 150 ms task at the run's start, and memory
   * held for the whole run. The queue is the store's rows; the order and the concurrency are the same.
   */
  function feed(): void {
    while (next < count && handedOver < config.concurrency && !group.signal.aborted) {
      const i = next++;
      if (!dropped.has(i)) spawn(i);
    }
  }

  /** Rows never handed to the group when it is cancelled (cancel all, a fail-fast failure): never sent. */
  const dropRest = (): void => {
    const at = Date.now();
    const cause = store.run?.cause;
    for (; next < count; next++) {
      if (dropped.has(next)) continue;
      dropped.add(next);
      store.dispatch(next, { type: 'cancelled', at, causeIndex: cause && cause.index !== next ? cause.index : undefined });
    }
  };
  group.signal.addEventListener('abort', dropRest, { once: true });

  // The first calls go out in a task of their own, after the rows were rendered (beginRun publishes at once,
  // and React renders that in a microtask): started in the same task, a 10,000-row run's first calls would
  // count that render (tens of ms) as theirs. wait() comes after the first feed: with nothing pending it
  // would resolve at once.
  const done = new Promise<void>((resolve) => {
    setTimeout(() => {
      feed();
      resolve(
        group.wait().then(
          () => undefined,
          () => undefined, // fail-fast: the cause is already on the run; cancelled: every row says so
        ),
      );
    }, 0);
  }).finally(() => {
    group.signal.removeEventListener('abort', dropRest);
    store.endRun();
  });

  const cancel = (index: number, by: 'you' | 'cancel-all'): void => {
    const row = store.row(index);
    if (!row || row.state === 'succeeded' || row.state === 'failed' || row.state === 'timed-out' || row.state === 'cancelled') return;
    store.dispatch(index, { type: 'cancel-requested', by });
    const handle = handles[index];
    if (handle) handle.cancel(new AbortError(by === 'you' ? 'Cancelled by you' : 'Cancelled by you (cancel all)'));
    else if (index >= next && !dropped.has(index)) {
      // Still waiting for a slot in the browser: it never starts (as a queued task of the group would not).
      dropped.add(index);
      store.dispatch(index, { type: 'cancelled', at: Date.now() });
    }
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
