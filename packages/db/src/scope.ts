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
 * Written by hand because no library does it: it observes two internals of postgres.js 3.4 (pinned),
 * `query.state` (set to { pid, secret } when a statement is dispatched to a connection) and the query's
 * `resolve` / `reject`, so it can report which backend ran a statement and how it ended.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import type postgres from 'postgres';

export type DbEvent =
  | { type: 'statement.queued'; statement: number; text: string }
  | { type: 'statement.started'; statement: number; pid: number }
  | { type: 'statement.ended'; statement: number; pid: number | null; sqlstate: string | null; ms: number }
  | { type: 'cancel.sent'; statement: number; pid: number | null; queued: boolean }
  | { type: 'transaction.committed'; ms: number }
  | { type: 'transaction.rolled_back'; ms: number; sqlstate: string | null };

export interface QueryScope {
  signal: AbortSignal;
  /** Receives the statement-level hops of this call (for the activity view and tests). */
  onEvent?: (event: DbEvent) => void;
  /** When set, each transaction starts with SET LOCAL statement_timeout, so no statement outlives the call. */
  deadline?: number;
}

const storage = new AsyncLocalStorage<QueryScope>();

/**
 * Runs `fn` with its statements bound to `scope.signal`. `fn`'s result is awaited inside the scope, so a
 * lazy drizzle query returned unawaited still runs — and is cancelled — as part of it.
 */
export function runInQueryScope<T>(scope: QueryScope, fn: () => T | PromiseLike<T>): Promise<T> {
  return storage.run(scope, async () => await fn());
}

export function currentQueryScope(): QueryScope | undefined {
  return storage.getStore();
}

/** Live counts of this process's statements: waiting for a connection, and sent to Postgres. */
export interface StatementCounts {
  queued: number;
  running: number;
}

interface QueryInternals {
  state: { pid: number; secret: number } | null;
  resolve: (value: unknown) => void;
  reject: (error: unknown) => void;
  cancel(): unknown;
  strings?: readonly string[];
}

let nextStatement = 1;

export function sqlState(error: unknown): string | null {
  for (let e: unknown = error; e instanceof Error; e = e.cause) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code)) return code;
  }
  return null;
}

function track<Q>(query: Q, counts: StatementCounts, text: string): Q {
  const scope = storage.getStore();
  if (!scope || !(query instanceof Promise)) return query;
  const q = query as unknown as QueryInternals;
  const statement = nextStatement++;
  const emit = scope.onEvent ?? (() => undefined);
  const started = performance.now();
  let pid: number | null = null;
  let settled = false;

  counts.queued++;
  emit({ type: 'statement.queued', statement, text: text.slice(0, 120) });
  let state: QueryInternals['state'] = null;
  Object.defineProperty(q, 'state', {
    configurable: true,
    enumerable: true,
    get: () => state,
    set: (value: QueryInternals['state']) => {
      state = value;
      if (value && pid === null && !settled) {
        pid = value.pid;
        counts.queued--;
        counts.running++;
        emit({ type: 'statement.started', statement, pid });
      }
    },
  });

  const onAbort = () => {
    emit({ type: 'cancel.sent', statement, pid, queued: pid === null });
    q.cancel();
  };
  const finish = (error: unknown) => {
    if (settled) return;
    settled = true;
    scope.signal.removeEventListener('abort', onAbort);
    if (pid === null) counts.queued--;
    else counts.running--;
    emit({ type: 'statement.ended', statement, pid, sqlstate: error === undefined ? null : sqlState(error), ms: performance.now() - started });
  };
  const { resolve, reject } = q;
  q.resolve = (value) => { finish(undefined); resolve(value); };
  q.reject = (error) => { finish(error); reject(error); };

  if (scope.signal.aborted) onAbort();
  else scope.signal.addEventListener('abort', onAbort, { once: true });
  return query;
}

type TxCallback = (sql: postgres.TransactionSql) => unknown;

/** Wraps a postgres.js client (or a transaction's client) so statements follow the current query scope. */
export function cancellable<S extends postgres.Sql | postgres.TransactionSql>(sql: S, counts: StatementCounts): S {
  const wrapTx = (callback: TxCallback, begun: () => void): TxCallback => async (tx) => {
    begun();
    const scope = storage.getStore();
    scope?.signal.throwIfAborted();
    const inner = cancellable(tx, counts);
    if (scope?.deadline !== undefined) {
      const remaining = Math.max(1, Math.floor(scope.deadline - Date.now()));
      await inner.unsafe(`set local statement_timeout = ${remaining}`);
    }
    return callback(inner);
  };
  const observeTx = async <T>(run: (begun: () => void) => Promise<T>): Promise<T> => {
    const scope = storage.getStore();
    const started = performance.now();
    // postgres.js queues BEGIN on its own client, out of our reach: an abort cannot remove it, so the
    // transaction callback refuses to run instead (wrapTx) and the connection goes straight back.
    let waiting = scope !== undefined;
    if (waiting) counts.queued++;
    const stopWaiting = (): void => {
      if (waiting) counts.queued--;
      waiting = false;
    };
    try {
      const result = await run(stopWaiting);
      scope?.onEvent?.({ type: 'transaction.committed', ms: performance.now() - started });
      return result;
    } catch (error) {
      scope?.onEvent?.({ type: 'transaction.rolled_back', ms: performance.now() - started, sqlstate: sqlState(error) });
      throw error;
    } finally {
      stopWaiting();
    }
  };

  return new Proxy(sql, {
    apply(target, thisArg, args: unknown[]) {
      const result: unknown = Reflect.apply(target as (...a: unknown[]) => unknown, thisArg, args);
      const strings = args[0];
      const text = Array.isArray(strings) ? strings.join('$') : '';
      return track(result, counts, text);
    },
    get(target, prop, receiver) {
      if (prop === 'unsafe') {
        return (text: string, ...rest: unknown[]) =>
          track((target.unsafe as (...a: unknown[]) => unknown)(text, ...rest), counts, text);
      }
      if (prop === 'begin') {
        return (...args: unknown[]) => {
          const callback = args.pop() as TxCallback;
          return observeTx((begun) => (target as postgres.Sql).begin(...(args as [string]), wrapTx(callback, begun) as never));
        };
      }
      if (prop === 'savepoint') {
        return (...args: unknown[]) => {
          const callback = args.pop() as TxCallback;
          return (target as postgres.TransactionSql).savepoint(...(args as [string]), wrapTx(callback, () => undefined) as never);
        };
      }
      return Reflect.get(target, prop, receiver) as unknown;
    },
  });
}
