/**
 * Cancellation for drizzle on postgres.js, which takes no AbortSignal (drizzle-team/drizzle-orm#1602).
 *
 * A *query scope* (AsyncLocalStorage) carries the signal of the call that is running. `cancellable(sql)`
 * wraps the postgres.js client so every statement started inside a scope is tied to that signal:
 *   - aborted before it reached a connection: removed from the queue, never sent to Postgres;
 *   - aborted while running: a protocol CancelRequest (SQLSTATE 57014), the connection stays usable — or,
 *     for a short read pipelined with others on its connection (`PIPELINED_READ`), abandoned: the call gets
 *     57014 at once, its connection takes nothing more behind it, and the read gets its CancelRequest once
 *     it runs alone (before that, a CancelRequest could hit the statement next to it); an answer that comes
 *     first is dropped;
 *   - inside a transaction: the failed statement makes postgres.js roll back and release the connection.
 * drizzle queries are lazy, so the scope must be active where the query is awaited — `runInQueryScope`
 * around the procedure's body does that.
 *
 * Written by hand because no library does it. This file uses postgres.js's public API only (the client,
 * `begin`, `savepoint`, `unsafe`); what reaches into its internals — the query's `resolve` / `reject`, the
 * pool's `canceller`, our patch's `ondispatch` hook — is in ./postgres-instrumentation.ts, pinned to
 * postgres@3.4.9 with patches/postgres@3.4.9.patch.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import type postgres from 'postgres';
import { CommitOutcomeUnknownError, isDatabaseUnavailable, sqlState } from './errors';
import { track, type PoolStatements, type StatementObserver } from './postgres-instrumentation';

export {
  createPoolStatements,
  type DbEvent,
  type PoolStatements,
  type RunningStatement,
  type StatementCounts,
} from './postgres-instrumentation';

export interface QueryScope extends StatementObserver {
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
  const unsafe = (text: string, ...rest: unknown[]): unknown => track((sql.unsafe as (...a: unknown[]) => unknown)(text, ...rest), storage.getStore(), counts, text);
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
      return track(result, storage.getStore(), counts, Array.isArray(strings) ? (strings as string[]) : '');
    },
    get(target, prop, receiver) {
      if (prop === 'unsafe') return unsafe;
      if (prop === 'begin') return begin;
      if (prop === 'savepoint') return savepoint;
      return Reflect.get(target, prop, receiver) as unknown;
    },
  });
}
