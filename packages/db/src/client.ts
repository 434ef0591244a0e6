import { drizzle, type PostgresJsDatabase } from 'drizzle-orm/postgres-js';
import postgres from 'postgres';
import { keepPoolOpen } from './pool-keeper';
import { cancellable, createPoolStatements, type PoolStatements, type QueryScope, type RunningStatement, type StatementCounts } from './scope';

export interface DbConfig {
  /** postgres:// connection string. */
  url: string;
  /** Pool size: the most connections this process opens (postgres.js's `max`). */
  poolMax: number;
  /**
   * Connections kept open (at most `poolMax`): opened at once, and again within `idleTimeoutS / 2` when one
   * closed (idle, its lifetime over, the database restarted; `keepOpen()` for at once). Then a burst of calls
   * never waits for connections to be made. Default 0: connections open when a statement needs one
   * (./pool-keeper.ts).
   */
  poolMin?: number;
  /** Server-side statement_timeout for every connection, in ms (0 = none). */
  statementTimeoutMs: number;
  /** Shown in pg_stat_activity, so this pool's connections can be counted and told apart. */
  applicationName: string;
  /** Seconds an idle connection is kept before it is closed. */
  idleTimeoutS?: number;
  /** Seconds to wait for a new connection before failing. */
  connectTimeoutS?: number;
  /**
   * Statements a busy connection may take behind the one it runs (pipelining), counting only statements
   * run with `PIPELINED_READ` (short reads); every other statement (writes, transactions, drizzle queries,
   * pg_sleep) waits for a free connection, as with 0. Default 100. Cancels stay exact either way (our
   * postgres.js patch, row 12 of patches/README.md): a CancelRequest goes only to a statement alone on its
   * connection, which then takes nothing behind it until the cancel is delivered; a read cancelled with
   * another before or behind it is abandoned (its caller gets 57014 at once; its connection takes nothing
   * more behind it, and once it runs alone it gets its CancelRequest; an answer that comes first is dropped).
   * 0: one statement per connection.
   */
  maxPipeline?: number;
  /**
   * Told when a statement failed because the database or the connection went away (refused, reset,
   * terminated, shut down): a health check can then look at once instead of at its next round.
   */
  onConnectionLost?: (error: unknown) => void;
}

/** drizzle without the relational query API (`db.query.*`, unused here): made per call by `bind`, where the schema's relational config would cost ~15 µs. */
export type Orm = PostgresJsDatabase;

/** A call's handle on the database: its statements are cancelled with its scope's signal and reported to it. */
export interface Db {
  /** drizzle over `sql`. */
  readonly orm: Orm;
  /** The postgres.js pool, for raw SQL (pg_sleep, pg_stat_activity, prepared reads). */
  readonly sql: postgres.Sql;
}

/**
 * Options for `sql.unsafe` that mark a statement as a short read which may be pipelined (see
 * `DbConfig.maxPipeline`): prepared, and `pipeline: true` (our patch's mark; postgres.js's types leave it out).
 * Only for reads that finish quickly: a cancelled one may be abandoned rather than stopped inside Postgres.
 */
export const PIPELINED_READ = { prepare: true, pipeline: true } as postgres.UnsafeQueryOptions;
/** The same prepared read, not pipelined: for one that may run long (its cancel stops it inside Postgres at once). */
export const PREPARED_READ: postgres.UnsafeQueryOptions = { prepare: true };

export interface DbClient extends Db {
  /**
   * The pool for one call, one stream or one check: every statement made through the handle is bound to
   * `scope` (see scope.ts) — cancelled when its signal fires, its hops reported, its transactions bounded by
   * its deadline. `orm` and `sql` of the client itself are bound to nothing (migrations, set-up, tests).
   */
  bind(scope: QueryScope): Db;
  /** Statements of this pool waiting for a connection / running now. */
  statements(): Readonly<StatementCounts>;
  /** The statements sent to Postgres and not answered yet, with their backend pid (for the pool's watchdog). */
  runningStatements(): Iterable<RunningStatement>;
  config: Readonly<Omit<Required<DbConfig>, 'onConnectionLost'>>;
  /** Opens the kept connections (`poolMin`) now, e.g. when the database is back; nothing with `poolMin` 0. */
  keepOpen(): void;
  /** Waits up to `timeoutS` for running queries, then closes every connection. */
  close(timeoutS?: number): Promise<void>;
}

export function createDbClient(config: DbConfig): DbClient {
  const poolMin = config.poolMin ?? 0;
  if (!Number.isInteger(poolMin) || poolMin < 0 || poolMin > config.poolMax) {
    throw new RangeError(`poolMin must be a whole number from 0 to poolMax (${config.poolMax}), not ${poolMin}`);
  }
  const resolved: Omit<Required<DbConfig>, 'onConnectionLost'> = {
    url: config.url,
    poolMax: config.poolMax,
    poolMin,
    statementTimeoutMs: config.statementTimeoutMs,
    applicationName: config.applicationName,
    idleTimeoutS: config.idleTimeoutS ?? 30,
    connectTimeoutS: config.connectTimeoutS ?? 10,
    maxPipeline: config.maxPipeline ?? 100,
  };
  const counts = createPoolStatements(config.onConnectionLost);
  // max_pipeline is a postgres.js option its type definitions leave out; pipeline_marked_only is our patch's.
  const options: postgres.Options<Record<string, never>> & { max_pipeline: number; pipeline_marked_only: boolean } = {
    max: resolved.poolMax,
    idle_timeout: resolved.idleTimeoutS,
    connect_timeout: resolved.connectTimeoutS,
    max_pipeline: resolved.maxPipeline,
    pipeline_marked_only: true,
    // Reconnect quickly once Postgres is back. postgres.js backs off up to 20 s after repeated failed
    // attempts; a server that is gated by a health check (no calls reach the pool while the database is
    // down) needs no long backoff, and waiting would delay recovery well past the health check's.
    backoff: (attempt: number) => Math.min(0.1, 0.01 * 2 ** attempt) * (0.5 + Math.random() / 2),
    // A half-open TCP connection (a database host that vanished) is noticed in seconds, not minutes.
    keep_alive: 10,
    // Notices (e.g. "relation already exists, skipping") are not errors; keep them out of stdout.
    onnotice: () => undefined,
    connection: {
      application_name: resolved.applicationName,
      statement_timeout: resolved.statementTimeoutMs,
      // A client that dies mid-statement (a SIGKILLed instance) is noticed within 1 s: without this, Postgres
      // runs the statement to its end (a pg_sleep, a lock wait: up to the statement timeout) before it finds the
      // socket closed, and the transaction holds its locks all that time. PostgreSQL 14+.
      client_connection_check_interval: 1000,
      // Timestamps come back as UTC ISO text whatever the server's or role's defaults, so the reads' ISO slicing
      // (packages/api isoTimestamp) applies and no other DateStyle (e.g. "SQL, DMY") is ever misread.
      TimeZone: 'UTC',
      DateStyle: 'ISO, MDY',
      // Every statement of ours is a prepared one (postgres.js names them) whose best plan does not depend on
      // its values (keys, a page by id). Left to choose, PostgreSQL re-plans such a statement on every run
      // while its generic plan looks dearer than the plans for the values given: `users.list`'s page
      // (`limit $1` is estimated at a tenth of the table) was planned anew on each call, 80 µs of PostgreSQL's
      // CPU per call under the bench's load (packages/api users.test.ts checks the plans used).
      plan_cache_mode: 'force_generic_plan',
    },
  };
  const pool = postgres(resolved.url, options);
  const sql = cancellable(pool, counts);
  const orm = drizzle(sql);
  const keeper = poolMin > 0
    ? keepPoolOpen({
      min: poolMin,
      // Under the idle timeout, so a kept connection never idles out (0: connections never idle out).
      intervalMs: resolved.idleTimeoutS > 0 ? (resolved.idleTimeoutS * 1000) / 2 : 15_000,
      // On the pool itself, not `sql`: a ping is nobody's call, so it is not counted, reported or watched.
      ping: async (signal) => {
        const ping = pool.unsafe('select 1', [], PREPARED_READ);
        const cancel = (): void => { ping.cancel(); };
        signal.addEventListener('abort', cancel, { once: true });
        try {
          await ping;
        } finally {
          signal.removeEventListener('abort', cancel);
        }
      },
      running: () => counts.running,
      queued: () => counts.queued,
      pingTimeoutMs: (resolved.connectTimeoutS + 1) * 1000,
    })
    : undefined;
  return {
    orm,
    sql,
    bind: (scope) => new BoundDb(pool, counts, scope),
    config: resolved,
    statements: () => ({ queued: counts.queued, running: counts.running }),
    runningStatements: () => counts.runningSet,
    keepOpen: () => { keeper?.nudge(); },
    close: async (timeoutS = 5) => {
      await keeper?.close();
      await pool.end({ timeout: timeoutS });
    },
  };
}

/** `DbClient.bind`'s handle: its `sql` made at once (every call uses it), its `orm` when first asked for (writes). */
class BoundDb implements Db {
  readonly sql: postgres.Sql;
  #orm: Orm | undefined;

  constructor(pool: postgres.Sql, counts: PoolStatements, scope: QueryScope) {
    this.sql = cancellable(pool, counts, scope);
  }

  get orm(): Orm {
    return (this.#orm ??= drizzle(this.sql));
  }
}
