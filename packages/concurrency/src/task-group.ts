import { systemClock, type Clock } from './clock';
import { AbortError, TimeoutError, abortReason, isAbortError } from './errors';
import { retry, type RetryPolicy } from './retry';
import { Semaphore } from './semaphore';
import { deadline, linkSignals, type SignalScope } from './signals';

/** The work of one task. `attempt` is 0 on the first call and counts retries. */
export type TaskFn<T> = (signal: AbortSignal, attempt: number) => Promise<T>;

interface OutcomeBase {
  id: string;
  label: string | undefined;
  /** Running time from start to settle; 0 for a task cancelled before it started. */
  durationMs: number;
}

/** One task's result, as `wait()` reports it (Python's gather(return_exceptions=True), plus cancellation). */
export type TaskOutcome<T = unknown> =
  | (OutcomeBase & { status: 'fulfilled'; value: T })
  | (OutcomeBase & { status: 'rejected' | 'cancelled'; reason: unknown });

interface EventBase {
  taskId: string;
  label: string | undefined;
  /** clock.now() when it happened. */
  at: number;
}

/** Lifecycle: queued → started → retrying* → settled | cancelled. Every task ends with exactly one of settled/cancelled. */
export type TaskEvent =
  | (EventBase & { type: 'queued' | 'started' })
  /** `attempt` (0-based) failed with `error`; the next one runs after `delayMs`. */
  | (EventBase & { type: 'retrying'; attempt: number; error: unknown; delayMs: number })
  | (EventBase & { type: 'settled'; outcome: 'fulfilled' | 'rejected'; error?: unknown; durationMs: number })
  | (EventBase & { type: 'cancelled'; reason: unknown; durationMs: number });

export interface TaskGroupOptions {
  /** 'fail-fast': the first real failure cancels every sibling and wait() rejects. 'settled': wait() reports every outcome. */
  mode: 'fail-fast' | 'settled';
  /** Parent: its abort cancels the whole group. */
  signal?: AbortSignal | undefined;
  /** Most tasks running at once; the rest wait in a queue. Default unlimited. */
  concurrency?: number | undefined;
  clock?: Clock | undefined;
  onEvent?: ((event: TaskEvent) => void) | undefined;
  /** Default retry policy for every task (spawn's `retry` overrides it). Default: no retries. */
  retry?: RetryPolicy | undefined;
}

export interface SpawnOptions {
  label?: string | undefined;
  /** Unique within the group; default `task-<n>`, n counting every spawn from 1. */
  id?: string | undefined;
  /** An extra parent for this task only. */
  signal?: AbortSignal | undefined;
  /** Deadline from the moment the task starts (not while queued), across all its attempts. Rejects it with TimeoutError. */
  timeoutMs?: number | undefined;
  /** Overrides the group's policy; `false` disables retries for this task. */
  retry?: RetryPolicy | false | undefined;
}

export interface TaskHandle<T> {
  readonly id: string;
  readonly label: string | undefined;
  /** Settles with the task. Rejects with the error, or with the cancellation reason. Never an unhandled rejection by itself. */
  readonly promise: Promise<T>;
  /** Cancels this task only: a queued task never starts, a running one sees its signal abort. */
  readonly cancel: (reason?: unknown) => void;
}

/** What a fail-fast group's wait() rejects with: only the real failures, never the sibling cancellations they caused. */
export class TaskGroupError extends AggregateError {
  override readonly name = 'TaskGroupError';
  /** The task whose failure cancelled the group. */
  readonly failedTaskId: string;

  constructor(readonly failures: readonly { taskId: string; label: string | undefined; error: unknown }[]) {
    const first = failures[0];
    if (first === undefined) throw new RangeError('TaskGroupError needs at least one failure');
    super(
      failures.map((failure) => failure.error),
      `${failures.length} task(s) failed; first: ${first.taskId}`,
      { cause: first.error },
    );
    this.failedTaskId = first.taskId;
  }
}

interface TaskRecord {
  id: string;
  label: string | undefined;
  /** This task's cancellation: aborted by the group, by SpawnOptions.signal, or by handle.cancel(). */
  scope: SignalScope;
  outcome: TaskOutcome | undefined;
}

/**
 * Structured concurrency: a group owns its tasks, and no task outlives it. `wait()` returns only when every
 * task has settled, including one that ignores its signal, so cleanup in the tasks' `finally` blocks has run.
 *
 * ```ts
 * await using group = new TaskGroup({ mode: 'fail-fast', concurrency: 4, signal });
 * const user = group.spawn((signal) => fetchUser(id, signal));
 * group.spawn((signal) => audit(id, signal), { label: 'audit', timeoutMs: 2_000 });
 * await group.wait();
 * ```
 *
 * The concurrency limit is a Semaphore permit that a task holds from start until its work really ends, so a
 * cancelled task that ignores its signal keeps its slot; a queued task waits in acquire() with its own signal,
 * which takes it out of the queue the moment it is cancelled, so it never starts.
 */
export class TaskGroup implements AsyncDisposable {
  readonly #scope: SignalScope;
  /** Slots for running tasks; an unlimited group gets more permits than it could ever hold. */
  readonly #slots: Semaphore;
  readonly #mode: TaskGroupOptions['mode'];
  readonly #clock: Clock;
  readonly #onEvent: ((event: TaskEvent) => void) | undefined;
  readonly #retry: RetryPolicy | undefined;
  /** Insertion order is spawn order, which is the order wait() reports. */
  readonly #tasks = new Map<string, TaskRecord>();
  /** Tasks not yet settled. The group aborts them itself: one listener on its signal instead of one per task. */
  readonly #active = new Set<TaskRecord>();
  readonly #failures: { taskId: string; label: string | undefined; error: unknown }[] = [];
  readonly #idleWaiters: (() => void)[] = [];
  #pending = 0;
  #nextId = 1;
  /** open → closing (cancelled or failed: no new spawns) → done (wait() saw every task settle). */
  #state: 'open' | 'closing' | 'done' = 'open';

  constructor(options: TaskGroupOptions) {
    this.#mode = options.mode;
    this.#clock = options.clock ?? systemClock;
    this.#onEvent = options.onEvent;
    this.#retry = options.retry;
    const { concurrency = Infinity } = options;
    this.#slots = new Semaphore(concurrency === Infinity ? Number.MAX_SAFE_INTEGER : concurrency);
    this.#scope = linkSignals(options.signal);
    this.#scope.signal.addEventListener(
      'abort',
      () => {
        for (const task of this.#active) task.scope.abort(this.signal.reason);
      },
      { once: true },
    );
  }

  /** Aborts when the group is cancelled, its parent aborts, or (fail-fast) a task fails. Pass it to nested work. */
  get signal(): AbortSignal {
    return this.#scope.signal;
  }

  /** Tasks spawned and not yet settled (queued or running). */
  get pending(): number {
    return this.#pending;
  }

  /** Starts `fn` now or when a slot frees. Throws if the group was cancelled, failed (fail-fast) or has finished. */
  spawn<T>(fn: TaskFn<T>, options: SpawnOptions = {}): TaskHandle<T> {
    if (this.#state !== 'open' || this.signal.aborted) {
      throw new Error(`TaskGroup is ${this.#state === 'done' ? 'finished' : 'cancelled'}; cannot spawn`, { cause: this.signal.reason });
    }
    const { timeoutMs } = options;
    // Checked here, at the call site: inside #start() a throw would break its never-rejects contract.
    if (timeoutMs !== undefined && !(timeoutMs >= 0)) throw new RangeError(`timeoutMs must be >= 0, got ${timeoutMs}`);
    const spawnNumber = this.#nextId++;
    const id = options.id ?? `task-${spawnNumber}`;
    if (this.#tasks.has(id)) throw new Error(`TaskGroup: duplicate task id "${id}"`);
    const { label } = options;
    // The group's own abort reaches the task through #active; the scope only links the per-task signal.
    const record: TaskRecord = { id, label, scope: linkSignals(options.signal), outcome: undefined };
    this.#tasks.set(id, record);
    this.#active.add(record);
    this.#pending++;
    // Before #start(): a free slot starts the task synchronously, and 'queued' must come first.
    this.#emit({ type: 'queued', taskId: id, label, at: this.#clock.now() });

    const outcome = this.#start(record, fn, options);
    const promise = outcome.then((settled) => {
      if (settled.status === 'fulfilled') return settled.value;
      throw settled.reason;
    });
    // The group observes every outcome itself; a caller who ignores the handle must not get an unhandled rejection.
    promise.catch(() => undefined);

    return {
      id,
      label,
      promise,
      cancel: (reason = new AbortError(`Task ${id} cancelled`)) => {
        record.scope.abort(reason);
      },
    };
  }

  /**
   * Waits until every task has settled (tasks may still spawn siblings meanwhile), then closes the group.
   * 'settled': resolves with every outcome in spawn order. 'fail-fast': resolves with the outcomes if nothing
   * failed; rejects with TaskGroupError if a task failed, or with the cancellation reason if the group was cancelled.
   */
  async wait(): Promise<TaskOutcome[]> {
    await this.#allSettled();
    if (this.#mode === 'fail-fast') {
      if (this.#failures.length > 0) throw new TaskGroupError(this.#failures);
      if (this.signal.aborted) throw abortReason(this.signal);
    }
    return [...this.#tasks.values()].flatMap((task) => task.outcome ?? []);
  }

  /** Cancels every task, queued or running, and closes the group to new spawns. Does not wait; see asyncDispose. */
  cancel(reason: unknown = new AbortError('TaskGroup cancelled')): void {
    if (this.#state === 'done') return;
    this.#state = 'closing';
    this.#scope.abort(reason);
  }

  /** `await using group = ...`: on scope exit, cancel whatever is left and wait for it. Never throws (wait() reports failures). */
  async [Symbol.asyncDispose](): Promise<void> {
    this.cancel(new AbortError('TaskGroup disposed'));
    await this.#allSettled();
  }

  async #allSettled(): Promise<void> {
    // A loop, not a single wait: something may spawn a task between the last settle and this continuation.
    while (this.#pending > 0) {
      await new Promise<void>((resolve) => this.#idleWaiters.push(resolve));
    }
    this.#state = 'done';
    this.#scope.dispose();
  }

  /** Runs the task once it holds a slot, and settles it. Never rejects. */
  async #start<T>(record: TaskRecord, fn: TaskFn<T>, options: SpawnOptions): Promise<TaskOutcome<T>> {
    const { signal } = record.scope;
    const cancelledBeforeStart = (): TaskOutcome<T> =>
      this.#settle<T>(record, { id: record.id, label: record.label, status: 'cancelled', reason: signal.reason, durationMs: 0 });
    // tryAcquire() first: acquire() would defer even a free slot's start to a later microtask.
    let permit = signal.aborted ? undefined : this.#slots.tryAcquire();
    try {
      // Rejects only with the task's cancellation (also when it was cancelled before spawn returned).
      permit ??= await this.#slots.acquire({ signal });
    } catch {
      return cancelledBeforeStart();
    }
    try {
      // Handed a slot, then cancelled before this continuation ran (e.g. a fail-fast sibling): still never started.
      if (signal.aborted) return cancelledBeforeStart();
      // Settle before the slot is released: a fail-fast cancellation must take queued siblings out of the
      // queue before the released slot could start one of them.
      return this.#settle(record, await this.#run(record, fn, options));
    } finally {
      permit.release();
    }
  }

  async #run<T>(record: TaskRecord, fn: TaskFn<T>, options: SpawnOptions): Promise<TaskOutcome<T>> {
    const { id, label, scope } = record;
    const startedAt = this.#clock.now();
    const elapsed = (): number => this.#clock.now() - startedAt;
    this.#emit({ type: 'started', taskId: id, label, at: startedAt });
    const timeout = options.timeoutMs === undefined ? undefined : deadline(options.timeoutMs, { signal: scope.signal, clock: this.#clock });
    const signal = timeout?.signal ?? scope.signal;
    const policy = options.retry ?? this.#retry;
    try {
      const value = policy
        ? await retry((attempt, attemptSignal) => fn(attemptSignal, attempt), {
            ...policy,
            signal,
            clock: this.#clock,
            onRetry: (info) => {
              this.#emit({ type: 'retrying', taskId: id, label, at: this.#clock.now(), ...info });
              policy.onRetry?.(info);
            },
          })
        : await fn(signal, 0);
      return { id, label, status: 'fulfilled', value, durationMs: elapsed() };
    } catch (error) {
      // A task that was cancelled and then threw the cancellation (or any AbortError) was cancelled, not failed.
      // Anything else it throws, even while unwinding, is a real failure and is reported as one.
      if (scope.signal.aborted && (error === scope.signal.reason || isAbortError(error))) {
        return { id, label, status: 'cancelled', reason: scope.signal.reason, durationMs: elapsed() };
      }
      const timeoutReason: unknown = timeout?.signal.reason;
      if (timeoutReason instanceof TimeoutError && (error === timeoutReason || isAbortError(error))) {
        return { id, label, status: 'rejected', reason: timeoutReason, durationMs: elapsed() };
      }
      return { id, label, status: 'rejected', reason: error, durationMs: elapsed() };
    } finally {
      timeout?.dispose();
    }
  }

  #settle<T>(record: TaskRecord, outcome: TaskOutcome<T>): TaskOutcome<T> {
    const { id, label } = record;
    record.outcome = outcome;
    record.scope.dispose();
    this.#active.delete(record);
    const at = this.#clock.now();
    if (outcome.status === 'cancelled') {
      this.#emit({ type: 'cancelled', taskId: id, label, at, reason: outcome.reason, durationMs: outcome.durationMs });
    } else if (outcome.status === 'fulfilled') {
      this.#emit({ type: 'settled', taskId: id, label, at, outcome: 'fulfilled', durationMs: outcome.durationMs });
    } else {
      this.#emit({ type: 'settled', taskId: id, label, at, outcome: 'rejected', error: outcome.reason, durationMs: outcome.durationMs });
      this.#failures.push({ taskId: id, label, error: outcome.reason });
      if (this.#mode === 'fail-fast' && this.#failures.length === 1) {
        this.cancel(new AbortError(`Sibling task ${id} failed`, { cause: outcome.reason, reason: outcome.reason }));
      }
    }
    if (--this.#pending === 0) {
      for (const resolve of this.#idleWaiters.splice(0)) resolve();
    }
    return outcome;
  }

  #emit(event: TaskEvent): void {
    try {
      this.#onEvent?.(event);
    } catch (error) {
      // A broken listener must not corrupt the group's bookkeeping (wait() would hang); report it out of band.
      queueMicrotask(() => {
        throw error;
      });
    }
  }
}

export interface GatherOptions extends Omit<TaskGroupOptions, 'mode'> {
  mode?: TaskGroupOptions['mode'];
}

type Results<F extends readonly TaskFn<unknown>[]> = { -readonly [K in keyof F]: F[K] extends TaskFn<infer R> ? R : never };

/**
 * Runs every function in a TaskGroup and waits for all of them. Default 'fail-fast' (like Promise.all, but the
 * siblings of a failure are cancelled and awaited): resolves with the values in order, rejects with TaskGroupError.
 * 'settled' resolves with every TaskOutcome.
 */
export function gather<const F extends readonly TaskFn<unknown>[]>(fns: F, options?: GatherOptions & { mode?: 'fail-fast' }): Promise<Results<F>>;
export function gather(fns: readonly TaskFn<unknown>[], options: GatherOptions & { mode: 'settled' }): Promise<TaskOutcome[]>;
export async function gather(fns: readonly TaskFn<unknown>[], options: GatherOptions = {}): Promise<unknown[]> {
  options.signal?.throwIfAborted();
  const mode = options.mode ?? 'fail-fast';
  const group = new TaskGroup({ ...options, mode });
  for (const fn of fns) group.spawn(fn);
  const outcomes = await group.wait();
  if (mode === 'settled') return outcomes;
  // fail-fast wait() only resolves when nothing failed and nothing was cancelled, so every outcome has a value.
  return outcomes.map((outcome) => (outcome.status === 'fulfilled' ? outcome.value : undefined));
}
