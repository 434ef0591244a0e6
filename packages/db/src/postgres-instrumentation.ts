/**
 * The postgres.js side of query scopes (./scope.ts): what we attach to each postgres.js query so a
 * statement can be reported (queued, started on backend pid N, ended with SQLSTATE X) and cancelled by its
 * call's AbortSignal.
 *
 * COUPLED TO POSTGRES.JS INTERNALS. Pinned to postgres@3.4.9 with patches/postgres@3.4.9.patch; the check
 * "runs the pinned, patched postgres.js" (driver-faults.test.ts) fails when either changes. We rely on:
 *   - `query.ondispatch(backend)`: a hook our patch adds (row 10 of patches/README.md), called when the
 *     query is given to a connection, with its `{ pid, secret }`;
 *   - `query.resolve` / `query.reject`: the internal settle functions of postgres.js's `Query` (a Promise
 *     subclass), which we replace (see `track`);
 *   - `query.canceller`: the pool's cancel for the query, which we keep a reference to (see
 *     `TrackedStatement`);
 *   - the pool's cancel of a dispatched query waiting for earlier cancels (`query.cancelling`, our patch,
 *     row 7) so a repeated cancel cannot hit the connection's next statement.
 * Everything else goes through postgres.js's public API (./scope.ts).
 */
import { isDatabaseUnavailable, sqlState } from './errors';

export type DbEvent =
  | { type: 'statement.queued'; statement: number; text: string }
  | { type: 'statement.started'; statement: number; pid: number }
  | { type: 'statement.ended'; statement: number; pid: number | null; sqlstate: string | null; ms: number }
  | { type: 'cancel.sent'; statement: number; pid: number | null; queued: boolean; attempt: number }
  | { type: 'transaction.committed'; ms: number }
  | { type: 'transaction.rolled_back'; ms: number; sqlstate: string | null };

/** What tracking needs of a query scope: the call's signal and where its hops go. */
export interface StatementObserver {
  signal: AbortSignal;
  /** Receives the statement-level hops of this call (for the activity view and tests); called as a method. */
  onEvent?(event: DbEvent): void;
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

/** The fields of postgres.js 3.4.9's internal `Query` (src/query.js) that we read or replace. */
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
 * once, so it is one small object: the query's `ondispatch` / `resolve` / `reject` are shared functions
 * that find it through a symbol, not closures made per statement. (An accessor on `query.state`, the first
 * design, turned every query into a dictionary-mode object: +0.8 KB per waiting statement.) Its one
 * closure is the call signal's listener: an object listener (`handleEvent`) would cost more, since Node's
 * EventTarget wraps it in a closure that V8 allocates in the old generation, where it kept this tracker,
 * its query and every row of the query's result until the next full collection (see LinkedScope in
 * packages/concurrency).
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
  /** The call's signal fired. (A class field, so a young closure; one assigned later would be pretenured.) */
  readonly onAbort = (): void => { this.cancel(); };

  constructor(
    readonly query: QueryInternals,
    readonly scope: StatementObserver,
    readonly pool: PoolStatements,
    readonly resolve: (value: unknown) => void,
    readonly reject: (error: unknown) => void,
  ) {
    // postgres.js internals: the pool's `canceller`, kept because `Query.cancel()` calls it only once and
    // drops the promise it returns (whose rejection, a cancel that could not connect, would go unhandled).
    // We call it again for repeats (CANCEL_RETRY_MS); with our patch (row 7) the connection waits for every
    // cancel in flight before its next statement. postgres@3.4.9 src/index.js `cancel(query)`.
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

  /** Sends the statement's cancel: the call's signal fired (`onAbort`), or a cancel is repeated (`retryCancel`). */
  cancel(): void {
    if (this.settled || !this.#canceller) return;
    this.#cancels++;
    this.scope.onEvent?.({ type: 'cancel.sent', statement: this.statement, pid: this.pid, queued: this.pid === null, attempt: this.#cancels });
    this.#canceller(this.query).then(undefined, ignore);
    // A queued statement is removed at once; a running one is watched until it ends. One the driver abandoned
    // (pipelined, patch row 12) was settled by the canceller just now: nothing to repeat.
    // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- the canceller can settle it (TS cannot see that)
    if (this.pid !== null && !this.settled) {
      const delay = CANCEL_RETRY_MS[Math.min(this.#cancels, CANCEL_RETRY_MS.length) - 1] ?? 1000;
      this.#retry = setTimeout(retryCancel, delay, this);
      this.#retry.unref();
    }
  }

  finish(error: unknown): void {
    if (this.settled) return;
    this.settled = true;
    clearTimeout(this.#retry);
    this.scope.signal.removeEventListener('abort', this.onAbort);
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
  statement.cancel();
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

/**
 * Ties a postgres.js query to `scope` (the query scope current where it was made); returns it as it is.
 * Outside a scope, or for a value that is not a postgres.js query, it does nothing.
 */
export function track<Q>(query: Q, scope: StatementObserver | undefined, counts: PoolStatements, text: string | readonly string[]): Q {
  if (!scope || !(query instanceof Promise)) return query;
  const q = query as unknown as TrackedQuery;
  const tracker = new TrackedStatement(q, scope, counts, q.resolve, q.reject);
  counts.queued++;
  if (scope.onEvent) {
    const sqlText = typeof text === 'string' ? text : text.join('$');
    scope.onEvent({ type: 'statement.queued', statement: tracker.statement, text: sqlText.slice(0, 120) });
  }
  q[TRACKER] = tracker;
  // postgres.js internals, here is the coupling: `ondispatch` is our patch's hook (postgres@3.4.9.patch,
  // connection.js `execute`); `resolve` / `reject` are postgres.js's own settle functions of this Query
  // (3.4.9 src/query.js), replaced by ours, which record the end and then call the originals (kept on the
  // tracker). A release that renames them or settles queries another way would leave statements counted
  // as running forever: the version check in driver-faults.test.ts stops an unchecked upgrade.
  q.ondispatch = trackedDispatch;
  q.resolve = trackedResolve;
  q.reject = trackedReject;
  if (scope.signal.aborted) tracker.cancel();
  else scope.signal.addEventListener('abort', tracker.onAbort, { once: true });
  return query;
}

