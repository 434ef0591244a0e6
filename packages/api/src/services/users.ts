import { eq, sql } from 'drizzle-orm';
import { PG_UNIQUE_VIOLATION, PIPELINED_READ, PREPARED_READ, sqlState, users, type Db, type Orm, type QueryScope, type UserRow } from '@asyncscope/db';
import type { User, UserPage } from '@asyncscope/contract';
import { ConflictError, NotFoundError } from './errors';
import { idempotentWrite } from './idempotency';

/**
 * A timestamptz as the API writes it: `Date#toISOString()` (UTC, milliseconds, truncated). Postgres sends
 * text (drizzle sets postgres.js's timestamp parsers to pass it through): with the usual settings (DateStyle
 * ISO, TimeZone UTC) that is `2026-12-01 06:28:00.123456+00`, turned into `2026-12-01T06:28:00.123Z` here
 * character by character — a Date and toISOString per value cost more than the rest of a row, and slices
 * joined by `+` are five strings where this is one (a stream of 1,000,000 rows makes two of these a row).
 * Anything else (another zone, a year before 1000 or after 9999, BC, a Date) goes through Date as before.
 */
export function isoTimestamp(value: string | Date): string {
  if (typeof value !== 'string') return value.toISOString();
  const n = value.length;
  // "YYYY-MM-DD HH:MM:SS" + optional ".f{1,6}" + "+00"
  if (
    n >= 22 &&
    n <= 29 &&
    n !== 23 &&
    value.charCodeAt(0) >= 0x31 && // '1'..'9': a year of four digits that Date reads the same way
    value.charCodeAt(4) === 0x2d &&
    value.charCodeAt(10) === 0x20 &&
    value.charCodeAt(19) === (n === 22 ? 0x2b : 0x2e) &&
    value.charCodeAt(n - 3) === 0x2b &&
    value.charCodeAt(n - 2) === 0x30 &&
    value.charCodeAt(n - 1) === 0x30
  ) {
    const digits = n - 23; // of the fraction, between "." and "+00": 1..6, or -1 without one
    const at = (i: number) => value.charCodeAt(i);
    return String.fromCharCode(
      at(0), at(1), at(2), at(3), 0x2d, at(5), at(6), 0x2d, at(8), at(9), 0x54, // YYYY-MM-DDT
      at(11), at(12), 0x3a, at(14), at(15), 0x3a, at(17), at(18), 0x2e, // HH:MM:SS.
      digits >= 1 ? at(20) : 0x30, digits >= 2 ? at(21) : 0x30, digits >= 3 ? at(22) : 0x30, 0x5a, // mmmZ
    );
  }
  return new Date(value).toISOString();
}

/** The row as the API returns it: plain JSON, so timestamps become ISO strings here, once. */
export function toUser(row: UserRow): User {
  return {
    id: row.id,
    name: row.name,
    email: row.email,
    createdAt: row.createdAt.toISOString(),
    updatedAt: row.updatedAt.toISOString(),
  };
}

/** A row of USER_COLUMNS as postgres.js returns it with `.values()`. */
type UserValues = [id: number, name: string, email: string, createdAt: string, updatedAt: string];

/** The columns every read of USER_COLUMNS gets, in UserValues' order. */
const USER_COLUMNS = 'id, name, email, created_at, updated_at';

function userFromValues(row: readonly unknown[]): User {
  const [id, name, email, createdAt, updatedAt] = row as UserValues;
  return { id, name, email, createdAt: isoTimestamp(createdAt), updatedAt: isoTimestamp(updatedAt) };
}

/**
 * The reads, in SQL: prepared (postgres.js names them per connection: parsed once, and planned once as the
 * pool's sessions use generic plans, see packages/db client.ts) and read with `.values()`, straight into the
 * API's shape — no drizzle row, no Date. Exported, as PAGE_SQL is, for the test of the plans it runs on.
 */
export const BY_ID_SQL = `select ${USER_COLUMNS} from users where id = $1`;
/**
 * A page and the table's size in ONE statement, so in one snapshot: the total is the sum of the counter
 * slots that triggers keep in each write's transaction (migration 0003), so it is exact for the page it
 * comes with, without counting the table. The page is joined to the total (not the other way round) so
 * an empty page still brings it: one row of nulls and the total.
 *
 * No outer ORDER BY: sorting the joined rows again cost PostgreSQL ~7 % of the statement (pgbench,
 * 82 → 76 µs). The join can only run as a nested loop with the one total row outside (`on true` gives
 * hash and merge joins nothing to join on, and the null-filled side of a LEFT JOIN cannot be the outer
 * one), which returns the page in the order of its own ORDER BY; `list` checks that and sorts if it is
 * ever not so. Exported for its test, which reads its rows as PostgreSQL sends them.
 */
export const PAGE_SQL = `select u.id, u.name, u.email, u.created_at, u.updated_at, t.total
from (select coalesce(sum(n), 0)::int as total from user_count_slots) t
left join lateral (select ${USER_COLUMNS} from users order by id limit $1 offset $2) u on true`;
/**
 * A page further than this reads (and skips) that many rows: not a short read any more. It is not pipelined,
 * so a cancel reaches it inside Postgres at once and no other read waits behind it (an offset is the
 * caller's to choose, up to 2^31 - 1).
 */
export const PIPELINED_OFFSET_MAX = 10_000;
const TOTAL_SQL = 'select coalesce(sum(n), 0)::int as total from user_count_slots';
const KEYSET_SQL = `select ${USER_COLUMNS} from users where id > $1 order by id limit $2`;

/** Where a database error becomes a domain error: the one unique column a user write can hit is the email. */
function conflictOr(error: unknown, email: string | undefined): never {
  if (sqlState(error) === PG_UNIQUE_VIOLATION) {
    throw new ConflictError(`A user with the email ${email ?? '(given)'} already exists.`, { cause: error });
  }
  throw error;
}

async function insertUser(tx: Pick<Orm, 'insert'>, values: { name: string; email: string }): Promise<UserRow> {
  const [row] = await tx.insert(users).values(values).returning();
  if (!row) throw new Error('insert returned no row');
  return row;
}

/**
 * A prepared read whose rows come as arrays (cheaper than postgres.js's row objects), pipelined on a busy
 * connection (each is one short statement; a cancelled one may be abandoned, see `PIPELINED_READ`).
 */
function read(db: { sql: Pick<Db['sql'], 'unsafe'> }, text: string, params: readonly number[], pipelined = true) {
  return db.sql.unsafe(text, params as number[], pipelined ? PIPELINED_READ : PREPARED_READ).values();
}

/**
 * The users service: what the procedures do, callable without HTTP. Reads are prepared statements (parsed
 * and planned once per connection); every write is one transaction, rolled back on any error.
 */
export class UsersService {
  readonly #client;

  /**
   * Each method takes the scope of the call it serves (its signal, hops and deadline: see QueryScope) and runs
   * its statements through `client.bind(scope)`. A test may bind to a transaction's `sql` (a page read in the
   * snapshot of its own transaction).
   */
  constructor(client: { bind(scope: QueryScope): { orm: Db['orm']; sql: Pick<Db['sql'], 'unsafe'> } }) {
    this.#client = client;
  }

  async byId(id: number, scope: QueryScope): Promise<User> {
    const [row] = await read(this.#client.bind(scope), BY_ID_SQL, [id]);
    if (!row) throw new NotFoundError('user', id);
    return userFromValues(row);
  }

  async list(input: { limit: number; offset: number }, scope: QueryScope): Promise<UserPage> {
    const rows = await read(this.#client.bind(scope), PAGE_SQL, [input.limit, input.offset], input.offset <= PIPELINED_OFFSET_MAX);
    const items: User[] = [];
    let ordered = true;
    for (const row of rows) {
      if (row[0] === null) continue;
      const user = userFromValues(row);
      if (items.length > 0 && (items[items.length - 1] as User).id > user.id) ordered = false;
      items.push(user);
    }
    if (!ordered) items.sort((a, b) => a.id - b.id);
    return { items, total: (rows[0]?.[5] as number | undefined) ?? 0 };
  }

  /** Creates a user; with an idempotency key, a retry returns the first response (see idempotentWrite). */
  async create(input: { name: string; email: string; idempotencyKey?: string | undefined }, scope: QueryScope): Promise<User> {
    const { idempotencyKey, ...values } = input;
    try {
      return await idempotentWrite(this.#client.bind(scope).orm, { procedure: 'users.create', key: idempotencyKey, request: values }, async (tx) => toUser(await insertUser(tx, values)));
    } catch (error) {
      return conflictOr(error, values.email);
    }
  }

  /**
   * Every user, in pages by keyset (id > last), so memory stays flat whatever the table's size and a
   * resumed stream continues after the last id it delivered. The next page's query is sent before this
   * page is handed on, so Postgres reads it while this one is serialised and written: two pages at most.
   * It ends at the first empty page, as a stream that read page by page would.
   * `total` is the table's size when the stream started (the counter slots, not a count).
   */
  async *stream(opts: { pageSize: number; afterId: number; scope: QueryScope }): AsyncGenerator<{ items: User[]; lastId: number; total: number }> {
    const { scope } = opts;
    const db = this.#client.bind(scope);
    const [totals] = await read(db, TOTAL_SQL, []);
    const total = (totals?.[0] as number | undefined) ?? 0;
    const fetchAfter = (id: number) => {
      const page = read(db, KEYSET_SQL, [id, opts.pageSize]).execute();
      // The read-ahead can fail while the stream waits at \`yield\` for its consumer (a cancel by id, the
      // database going away): handled here, it is no unhandled rejection that ends the process; awaiting it
      // below still throws the error.
      page.catch(() => undefined);
      return page;
    };
    let next: ReturnType<typeof fetchAfter> | undefined = fetchAfter(opts.afterId);
    try {
      while (!scope.signal.aborted) {
        const pending: ReturnType<typeof fetchAfter> = next;
        next = undefined;
        const rows = await pending;
        if (rows.length === 0) return;
        const lastId = (rows[rows.length - 1] as UserValues)[0];
        next = fetchAfter(lastId);
        const items: User[] = [];
        for (const row of rows) items.push(userFromValues(row));
        yield { items, lastId, total };
      }
    } finally {
      // Stopped early: the page read ahead is cancelled with the signal (or finishes); either way it is settled here.
      if (next) await next.then(() => undefined, () => undefined);
    }
  }

  async update(input: { id: number; name?: string | undefined; email?: string | undefined; idempotencyKey?: string | undefined }, scope: QueryScope): Promise<User> {
    const { idempotencyKey, ...request } = input;
    const { id, ...changes } = request;
    try {
      return await idempotentWrite(this.#client.bind(scope).orm, { procedure: 'users.update', key: idempotencyKey, request }, async (tx) => {
        const [row] = await tx
          .update(users)
          .set({ ...changes, updatedAt: sql`now()` })
          .where(eq(users.id, id))
          .returning();
        if (!row) throw new NotFoundError('user', id);
        return toUser(row);
      });
    } catch (error) {
      return conflictOr(error, changes.email);
    }
  }

  /** Deletes a user and returns it; with an idempotency key, a retry gets that answer again, not NOT_FOUND. */
  async delete(input: { id: number; idempotencyKey?: string | undefined }, scope: QueryScope): Promise<User> {
    const { idempotencyKey, id } = input;
    return idempotentWrite(this.#client.bind(scope).orm, { procedure: 'users.delete', key: idempotencyKey, request: { id } }, async (tx) => {
      const [row] = await tx.delete(users).where(eq(users.id, id)).returning();
      if (!row) throw new NotFoundError('user', id);
      return toUser(row);
    });
  }
}
