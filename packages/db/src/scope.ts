/**
 * Cancellation for drizzle on postgres.js, which takes no AbortSignal (drizzle-team/drizzle-orm#1602).
 *
 * A *query scope* carries the signal of the call that is running. `cancellable(sql, counts, scope)` wraps the
 * postgres.js client so every statement started through it is tied to that signal:
 *   - aborted before it reached a connection: removed from the queue, never sent to Postgres;
 *   - aborted while running: a protocol CancelRequest (SQLSTATE 57014), the connection stays usable — or,
 *     for a short read pipelined with others on its connection (`PIPELINED_READ`), abandoned: the call gets
 *     57014 at once, its connection takes nothing more behind it, and the read gets its CancelRequest once
 *     it runs alone (before that, a CancelRequest could hit the statement next to it); an answer that comes
 *     first is dropped;
 *   - inside a transaction: the failed statement makes postgres.js roll back and release the connection.
 * The scope is passed, not found: `DbClient.bind(scope)` gives a call its own handle (no AsyncLocalStorage,
 * whose promise hook costs every promise of the process a context: ~15 % of a `users.byId` call's CPU,
 * README *What the profiles taught*).
 *
 * Written by hand because no library does it. This file uses postgres.js's public API only (the client,
 * `begin`, `savepoint`, `unsafe`); what reaches into its internals — the query's `resolve` / `reject`, the
 * pool's `canceller`, our patch's `ondispatch` hook — is in ./postgres-instrumentation.ts, pinned to
 * postgres@3.4.9 with patches/postgres@3.4.9.patch.
 */
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

type TxCallback = (sql: postgres.TransactionSql) => unknown;

/** How far a transaction got: BEGIN answered (it no longer waits for a connection), body finished. */
interface TxProgress {
  begun(): void;
  bodyDone: boolean;
}

/**
 * Wraps a postgres.js client (or a transaction's client) so its statements follow `scope`: cancelled with its
 * signal, reported to its observer, bounded by its deadline. Without a scope they are only counted.
 */
export function cancellable<S extends postgres.Sql | postgres.TransactionSql>(sql: S, counts: PoolStatements, scope?: QueryScope): S {
  const wrapTx = (callback: TxCallback, tx: TxProgress): TxCallback => async (client) => {
    tx.begun();
    scope?.signal.throwIfAborted();
    const inner = cancellable(client, counts, scope);
    if (scope?.deadline !== undefined) {
      const remaining = Math.max(1, Math.floor(scope.deadline - Date.now()));
      await inner.unsafe(`set local statement_timeout = ${remaining}`);
    }
    const result = await callback(inner);
    tx.bodyDone = true; // what fails from here on is COMMIT
    return result;
  };
  const observeTx = async <T>(run: (tx: TxProgress) => Promise<T>): Promise<T> => {
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
  const unsafe = (text: string, ...rest: unknown[]): unknown => track((sql.unsafe as (...a: unknown[]) => unknown)(text, ...rest), scope, counts, text);
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
      return track(result, scope, counts, Array.isArray(strings) ? (strings as string[]) : '');
    },
    get(target, prop, receiver) {
      if (prop === 'unsafe') return unsafe;
      if (prop === 'begin') return begin;
      if (prop === 'savepoint') return savepoint;
      return Reflect.get(target, prop, receiver) as unknown;
    },
  });
}
