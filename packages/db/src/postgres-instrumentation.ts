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
 *
 * When the statement settles, the tracker and its query let go of each other and of the call:
 * a statement that waited behind others may have been promoted to the old generation meanwhile, and an
 * old object is a root for every young collection, so one that still held the tracker kept the whole call
 * (its scope, its rows, its answer) alive until the next full collection. Under `users.list`'s load that
 * was most of every call's garbage (README *What the profiles taught*).
 */
class TrackedStatement implements RunningStatement {
  readonly statement = nextStatement++;
  readonly started = performance.now();
  since = 0;
  pid: number | null = null;
  // What it needs until it settles, undefined from then on: its own fields (cleared one by one), not an
  // object of them, which could be promoted like the tracker and keep them.
  #query: TrackedQuery | undefined;
  #scope: StatementObserver | undefined;
  #resolve: ((value: unknown) => void) | undefined;
  #reject: ((error: unknown) => void) | undefined;
  readonly #pool: PoolStatements;
  readonly #canceller: QueryInternals['canceller'];
  #cancels = 0;
  #retry: NodeJS.Timeout | undefined;
  /** The call's signal fired. (A class field, so a young closure; one assigned later would be pretenured.) */
  readonly onAbort = (): void => { this.cancel(); };

  constructor(query: TrackedQuery, scope: StatementObserver, pool: PoolStatements) {
    // postgres.js internals: the query's own settle functions (replaced by ours in `track`, called from
    // `settle`), and the pool's `canceller`, kept because `Query.cancel()` calls it only once and drops the
    // promise it returns (whose rejection, a cancel that could not connect, would go unhandled). We call it
    // again for repeats (CANCEL_RETRY_MS); with our patch (row 7) the connection waits for every cancel in
    // flight before its next statement. postgres@3.4.9 src/index.js `cancel(query)`.
    this.#query = query;
    this.#scope = scope;
    this.#resolve = query.resolve;
    this.#reject = query.reject;
    this.#pool = pool;
    this.#canceller = query.canceller;
  }

  get settled(): boolean {
    return this.#query === undefined;
  }

  /** postgres.js dispatched the statement to a connection (`query.state = { pid, secret }`). */
  dispatched(value: QueryInternals['state']): void {
    const scope = this.#scope;
    if (value && this.pid === null && scope) {
      this.pid = value.pid;
      this.since = performance.now();
      this.#pool.queued--;
      this.#pool.running++;
      this.#pool.runningSet.add(this);
      scope.onEvent?.({ type: 'statement.started', statement: this.statement, pid: value.pid });
    }
  }

  /** Sends the statement's cancel: the call's signal fired (`onAbort`), or a cancel is repeated (`retryCancel`). */
  cancel(): void {
    const query = this.#query;
    const scope = this.#scope;
    if (!query || !scope || !this.#canceller) return;
    this.#cancels++;
    scope.onEvent?.({ type: 'cancel.sent', statement: this.statement, pid: this.pid, queued: this.pid === null, attempt: this.#cancels });
    this.#canceller(query).then(undefined, ignore);
    // A queued statement is removed at once; a running one is watched until it ends. One the driver abandoned
    // (pipelined, patch row 12) was settled by the canceller just now: nothing to repeat.
    if (this.pid !== null && !this.settled) {
      const delay = CANCEL_RETRY_MS[Math.min(this.#cancels, CANCEL_RETRY_MS.length) - 1] ?? 1000;
      this.#retry = setTimeout(retryCancel, delay, this);
      this.#retry.unref();
    }
  }

  /**
   * The query settled (postgres.js called its `resolve` or `reject`): records the end, hands the query its
   * own settle functions back, lets go of the query and the call, then settles the query. Only the first
   * settle gets here; a later one (the answer of a statement already abandoned) goes straight to postgres.js's.
   */
  settle(failed: boolean, outcome: unknown): void {
    const query = this.#query;
    const scope = this.#scope;
    const resolve = this.#resolve;
    const reject = this.#reject;
    if (!query || !scope || !resolve || !reject) return;
    this.#query = this.#scope = this.#resolve = this.#reject = undefined;
    query.resolve = resolve;
    query.reject = reject;
    query.ondispatch = undefined;
    query[TRACKER] = undefined;
    clearTimeout(this.#retry);
    scope.signal.removeEventListener('abort', this.onAbort);
    if (this.pid === null) this.#pool.queued--;
    else {
      this.#pool.running--;
      this.#pool.runningSet.delete(this);
    }
    const sqlstate = failed ? sqlState(outcome) : null;
    scope.onEvent?.({ type: 'statement.ended', statement: this.statement, pid: this.pid, sqlstate, ms: performance.now() - this.started });
    if (failed && this.#pool.onConnectionLost && isDatabaseUnavailable(outcome)) this.#pool.onConnectionLost(outcome);
    if (failed) reject(outcome);
    else resolve(outcome);
  }
}

function retryCancel(statement: TrackedStatement): void {
  statement.cancel();
}

const TRACKER = Symbol('asyncscope.statement');
type TrackedQuery = QueryInternals & { [TRACKER]?: TrackedStatement | undefined; ondispatch?: ((state: QueryInternals['state']) => void) | undefined };

// Shared by every tracked query; postgres.js always calls these as methods (`query.resolve(x)`).
// `ondispatch` is our patch's hook (patches/postgres@3.4.9.patch), called right after `query.state = backend`.
function trackedDispatch(this: TrackedQuery, state: QueryInternals['state']): void {
  this[TRACKER]?.dispatched(state);
}
function trackedResolve(this: TrackedQuery, value: unknown): void {
  this[TRACKER]?.settle(false, value);
}
function trackedReject(this: TrackedQuery, error: unknown): void {
  this[TRACKER]?.settle(true, error);
}

/**
 * Ties a postgres.js query to `scope` (the query scope current where it was made); returns it as it is.
 * Outside a scope, or for a value that is not a postgres.js query, it does nothing.
 */
export function track<Q>(query: Q, scope: StatementObserver | undefined, counts: PoolStatements, text: string | readonly string[]): Q {
  if (!scope || !(query instanceof Promise)) return query;
  const q = query as unknown as TrackedQuery;
  const tracker = new TrackedStatement(q, scope, counts);
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

