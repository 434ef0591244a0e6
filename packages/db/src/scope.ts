/**
 * Cancellation for drizzle on postgres.js, which takes no AbortSignal (drizzle-team/drizzle-orm#1602).
 *
 * A *query scope* (AsyncLocalStorage) carries the signal of the call that is running. `cancellable(sql)`
 * wraps the postgres.js client so every statement started inside a scope is tied to that signal:
 *   - aborted before it reached a connection: removed from the queue, never sent to Postgres;
 *   - aborted while running: a protocol CancelRequest (SQLSTATE 57014), the connection stays usable;
 *   - inside a transaction: the failed statement makes postgres.js roll back and release the connection.
 * drizzle queries are lazy, so the scope must be active where the query is awaited — `runInQueryScope`
 * around the procedure's body does that.
 *
 * Written by hand because no library does it: it observes internals of postgres.js 3.4 (pinned and
 * patched): `query.ondispatch` (our patch's hook, called with { pid, secret } when a statement is
 * dispatched to a connection) and the query's `resolve` / `reject`, so it can report which backend ran a
 * statement and how it ended.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import type postgres from 'postgres';
import { CommitOutcomeUnknownError, isDatabaseUnavailable, sqlState } from './errors';

export type DbEvent =
  | { type: 'statement.queued'; statement: number; text: string }
  | { type: 'statement.started'; statement: number; pid: number }
  | { type: 'statement.ended'; statement: number; pid: number | null; sqlstate: string | null; ms: number }
  | { type: 'cancel.sent'; statement: number; pid: number | null; queued: boolean; attempt: number }
  | { type: 'transaction.committed'; ms: number }
  | { type: 'transaction.rolled_back'; ms: number; sqlstate: string | null };

export interface QueryScope {
  signal: AbortSignal;
  /** Receives the statement-level hops of this call (for the activity view and tests); called as a method. */
  onEvent?(event: DbEvent): void;
  /** When set, each transaction starts with SET LOCAL statement_timeout, so no statement outlives the call. */
  deadline?: number;
}

const storage = new AsyncLocalStorage<QueryScope>();

/**
 * Runs `fn` with its statements bound to `scope.signal`. `fn`'s result is awaited inside the scope, so a
 * lazy drizzle query returned unawaited still runs — and is cancelled — as part of it.
 */
export function runInQueryScope<T>(scope: QueryScope, fn: () => T | PromiseLike<T>): Promise<T> {
  return storage.run(scope, callInScope, fn);
}

function callInScope<T>(fn: () => T | PromiseLike<T>): Promise<T> {
  const result = fn();
  // A native promise (an async function's) is already running inside the scope: hand it back as it is,
  // without one more suspended frame per call. Anything else — a lazy drizzle query, a postgres.js query
  // (a Promise subclass that starts on `then`), a plain value — is awaited here, inside the scope.
  if (result instanceof Promise && result.constructor === Promise) return result as Promise<T>;
  return awaitInScope<T>(result as T | PromiseLike<T>);
}

async function awaitInScope<T>(value: T | PromiseLike<T>): Promise<T> {
  return await value;
}

export function currentQueryScope(): QueryScope | undefined {
  return storage.getStore();
}

/** Live counts of this process's statements: waiting for a connection, and sent to Postgres. */
export interface StatementCounts {
  queued: number;
  running: number;
}

/** A statement sent to Postgres and not yet answered, as the pool's watchdog sees it. */
export interface RunningStatement {
  readonly pid: number | null;
  /** performance.now() when it was dispatched to a connection. */
  readonly since: number;
}

/** The bookkeeping one pool shares between its statements. */
export interface PoolStatements extends StatementCounts {
  readonly runningSet: Set<RunningStatement>;
  /** Called when a statement failed because the database or the connection went away. */
  onConnectionLost?: ((error: unknown) => void) | undefined;
}

export function createPoolStatements(onConnectionLost?: (error: unknown) => void): PoolStatements {
  return { queued: 0, running: 0, runningSet: new Set(), onConnectionLost };
}

/**
 * A cancel that arrives before the backend has read its statement is ignored by Postgres (in a storm of
 * aborts, about 1 in 150 was). So a running statement whose cancel has not taken effect gets another one,
 * after these delays, until it ends.
 */
const CANCEL_RETRY_MS = [200, 400, 800, 1000];

interface QueryInternals {
  state: { pid: number; secret: number } | null;
  resolve: (value: unknown) => void;
  reject: (error: unknown) => void;
  /** The pool's cancel for this query; `query.cancel()` calls it once and drops it, so we keep our own reference. */
  canceller: ((query: QueryInternals) => Promise<unknown>) | null;
  strings?: readonly string[];
}

function ignore(): void {
  // a cancel that could not be delivered: the statement's own connection fails too, and says so
}

let nextStatement = 1;

/**
 * The bookkeeping of one statement sent inside a query scope. Thousands can wait for a connection at
 * once, so it is one small object: it listens to the call's signal itself (`handleEvent`), and the
 * query's `ondispatch` / `resolve` / `reject` are shared functions that find it through a symbol, not
 * closures made per statement. (An accessor on `query.state`, the first design, turned every query into a
 * dictionary-mode object: +0.8 KB per waiting statement.)
 */
class TrackedStatement implements RunningStatement {
  readonly statement = nextStatement++;
  readonly started = performance.now();
  since = 0;
  pid: number | null = null;
  settled = false;
  readonly #canceller: QueryInternals['canceller'];
  #cancels = 0;
  #retry: NodeJS.Timeout | undefined;

  constructor(
    readonly query: QueryInternals,
    readonly scope: QueryScope,
    readonly pool: PoolStatements,
    readonly resolve: (value: unknown) => void,
    readonly reject: (error: unknown) => void,
  ) {
    this.#canceller = query.canceller;
  }

  /** postgres.js dispatched the statement to a connection (`query.state = { pid, secret }`). */
  dispatched(value: QueryInternals['state']): void {
    if (value && this.pid === null && !this.settled) {
      this.pid = value.pid;
      this.since = performance.now();
      this.pool.queued--;
      this.pool.running++;
      this.pool.runningSet.add(this);
      this.scope.onEvent?.({ type: 'statement.started', statement: this.statement, pid: value.pid });
    }
  }

  /** The call's signal fired (EventListener object protocol); also the retry timer's callback. */
  handleEvent(): void {
    if (this.settled || !this.#canceller) return;
    this.#cancels++;
    this.scope.onEvent?.({ type: 'cancel.sent', statement: this.statement, pid: this.pid, queued: this.pid === null, attempt: this.#cancels });
    this.#canceller(this.query).then(undefined, ignore);
    // A queued statement is removed at once; a running one is watched until it ends.
    if (this.pid !== null) {
      const delay = CANCEL_RETRY_MS[Math.min(this.#cancels, CANCEL_RETRY_MS.length) - 1] ?? 1000;
      this.#retry = setTimeout(retryCancel, delay, this);
      this.#retry.unref();
    }
  }

  finish(error: unknown): void {
    if (this.settled) return;
    this.settled = true;
    clearTimeout(this.#retry);
    this.scope.signal.removeEventListener('abort', this);
    if (this.pid === null) this.pool.queued--;
    else {
      this.pool.running--;
      this.pool.runningSet.delete(this);
    }
    const sqlstate = error === undefined ? null : sqlState(error);
    this.scope.onEvent?.({ type: 'statement.ended', statement: this.statement, pid: this.pid, sqlstate, ms: performance.now() - this.started });
    if (error !== undefined && this.pool.onConnectionLost && isDatabaseUnavailable(error)) this.pool.onConnectionLost(error);
  }
}

function retryCancel(statement: TrackedStatement): void {
  statement.handleEvent();
}

const TRACKER = Symbol('asyncscope.statement');
type TrackedQuery = QueryInternals & { [TRACKER]: TrackedStatement; ondispatch?: (state: QueryInternals['state']) => void };

// Shared by every tracked query; postgres.js always calls these as methods (`query.resolve(x)`).
// `ondispatch` is our patch's hook (patches/postgres@3.4.9.patch), called right after `query.state = backend`.
function trackedDispatch(this: TrackedQuery, state: QueryInternals['state']): void {
  this[TRACKER].dispatched(state);
}
function trackedResolve(this: TrackedQuery, value: unknown): void {
  const tracker = this[TRACKER];
  tracker.finish(undefined);
  tracker.resolve(value);
}
function trackedReject(this: TrackedQuery, error: unknown): void {
  const tracker = this[TRACKER];
  tracker.finish(error);
  tracker.reject(error);
}

function track<Q>(query: Q, counts: PoolStatements, text: string | readonly string[]): Q {
  const scope = storage.getStore();
  if (!scope || !(query instanceof Promise)) return query;
  const q = query as unknown as TrackedQuery;
  const tracker = new TrackedStatement(q, scope, counts, q.resolve, q.reject);
  counts.queued++;
  if (scope.onEvent) {
    const sqlText = typeof text === 'string' ? text : text.join('$');
    scope.onEvent({ type: 'statement.queued', statement: tracker.statement, text: sqlText.slice(0, 120) });
  }
  q[TRACKER] = tracker;
  q.ondispatch = trackedDispatch;
  q.resolve = trackedResolve;
  q.reject = trackedReject;
  if (scope.signal.aborted) tracker.handleEvent();
  else scope.signal.addEventListener('abort', tracker, { once: true });
  return query;
}

type TxCallback = (sql: postgres.TransactionSql) => unknown;

/** How far a transaction got: BEGIN answered (it no longer waits for a connection), body finished. */
interface TxProgress {
  begun(): void;
  bodyDone: boolean;
}

/** Wraps a postgres.js client (or a transaction's client) so statements follow the current query scope. */
export function cancellable<S extends postgres.Sql | postgres.TransactionSql>(sql: S, counts: PoolStatements): S {
  const wrapTx = (callback: TxCallback, tx: TxProgress): TxCallback => async (client) => {
    tx.begun();
    const scope = storage.getStore();
    scope?.signal.throwIfAborted();
    const inner = cancellable(client, counts);
    if (scope?.deadline !== undefined) {
      const remaining = Math.max(1, Math.floor(scope.deadline - Date.now()));
      await inner.unsafe(`set local statement_timeout = ${remaining}`);
    }
    const result = await callback(inner);
    tx.bodyDone = true; // what fails from here on is COMMIT
    return result;
  };
  const observeTx = async <T>(run: (tx: TxProgress) => Promise<T>): Promise<T> => {
    const scope = storage.getStore();
    const started = performance.now();
    // postgres.js queues BEGIN on its own client, out of our reach: an abort cannot remove it, so the
    // transaction callback refuses to run instead (wrapTx) and the connection goes straight back.
    let waiting = scope !== undefined;
    if (waiting) counts.queued++;
    const tx: TxProgress = {
      bodyDone: false,
      begun: () => {
        if (waiting) counts.queued--;
        waiting = false;
      },
    };
    try {
      const result = await run(tx);
      scope?.onEvent?.({ type: 'transaction.committed', ms: performance.now() - started });
      return result;
    } catch (error) {
      scope?.onEvent?.({ type: 'transaction.rolled_back', ms: performance.now() - started, sqlstate: sqlState(error) });
      if (isDatabaseUnavailable(error)) {
        counts.onConnectionLost?.(error);
        // The body had finished, so COMMIT was on its way when the connection went: it may have landed.
        if (tx.bodyDone) throw new CommitOutcomeUnknownError(error);
      }
      throw error;
    } finally {
      tx.begun();
    }
  };

  // Made once per client, not on every property read: drizzle reads `unsafe` for every query.
  const unsafe = (text: string, ...rest: unknown[]): unknown => track((sql.unsafe as (...a: unknown[]) => unknown)(text, ...rest), counts, text);
  const begin = (...args: unknown[]): unknown => {
    const callback = args.pop() as TxCallback;
    return observeTx((tx) => (sql as postgres.Sql).begin(...(args as [string]), wrapTx(callback, tx) as never));
  };
  const savepoint = (...args: unknown[]): unknown => {
    const callback = args.pop() as TxCallback;
    return (sql as postgres.TransactionSql).savepoint(...(args as [string]), wrapTx(callback, { bodyDone: false, begun: () => undefined }) as never);
  };
  return new Proxy(sql, {
    apply(target, thisArg, args: unknown[]) {
      const result: unknown = Reflect.apply(target as (...a: unknown[]) => unknown, thisArg, args);
      const strings = args[0];
      return track(result, counts, Array.isArray(strings) ? (strings as string[]) : '');
    },
    get(target, prop, receiver) {
      if (prop === 'unsafe') return unsafe;
      if (prop === 'begin') return begin;
      if (prop === 'savepoint') return savepoint;
      return Reflect.get(target, prop, receiver) as unknown;
    },
  });
}
