import { count, eq, gt, sql } from 'drizzle-orm';
import { type Orm, PG_UNIQUE_VIOLATION, sqlState, users, type UserRow } from '@asyncscope/db';
import type { User, UserPage } from '@asyncscope/contract';
import { ConflictError, NotFoundError } from './errors';
import { idempotentWrite } from './idempotency';

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
 * The users service: what the procedures do, callable without HTTP. Reads use prepared statements
 * (parsed and planned once per connection); every write is one transaction, rolled back on any error.
 */
export class UsersService {
  readonly #byId;
  readonly #page;
  readonly #total;

  constructor(private readonly db: Orm) {
    this.#byId = db.select().from(users).where(eq(users.id, sql.placeholder('id'))).prepare('users_by_id');
    this.#page = db.select().from(users).orderBy(users.id).limit(sql.placeholder('limit')).offset(sql.placeholder('offset')).prepare('users_page');
    this.#total = db.select({ total: count() }).from(users).prepare('users_total');
  }

  async byId(id: number): Promise<User> {
    const [row] = await this.#byId.execute({ id });
    if (!row) throw new NotFoundError('user', id);
    return toUser(row);
  }

  async list(input: { limit: number; offset: number }): Promise<UserPage> {
    // allSettled, not all: if one query fails the call must not return while the other still runs.
    const [rows, totals] = await Promise.allSettled([this.#page.execute(input), this.#total.execute()]);
    if (rows.status === 'rejected') throw rows.reason;
    if (totals.status === 'rejected') throw totals.reason;
    return { items: rows.value.map(toUser), total: totals.value[0]?.total ?? 0 };
  }

  /** Creates a user; with an idempotency key, a retry returns the first response (see idempotentWrite). */
  async create(input: { name: string; email: string; idempotencyKey?: string | undefined }): Promise<User> {
    const { idempotencyKey, ...values } = input;
    try {
      return await idempotentWrite(this.db, { procedure: 'users.create', key: idempotencyKey, request: values }, async (tx) => toUser(await insertUser(tx, values)));
    } catch (error) {
      return conflictOr(error, values.email);
    }
  }

  /**
   * Every user, in pages by keyset (id > last), so memory stays flat whatever the table's size and a
   * resumed stream continues after the last id it delivered.
   */
  async *stream(opts: { pageSize: number; afterId: number; signal: AbortSignal }): AsyncGenerator<{ items: User[]; lastId: number; total: number }> {
    const totals = await this.#total.execute();
    const total = totals[0]?.total ?? 0;
    let after = opts.afterId;
    while (!opts.signal.aborted) {
      const rows = await this.db.select().from(users).where(gt(users.id, after)).orderBy(users.id).limit(opts.pageSize);
      if (rows.length === 0) return;
      after = rows[rows.length - 1]?.id ?? after;
      yield { items: rows.map(toUser), lastId: after, total };
    }
  }

  async update(input: { id: number; name?: string | undefined; email?: string | undefined; idempotencyKey?: string | undefined }): Promise<User> {
    const { idempotencyKey, ...request } = input;
    const { id, ...changes } = request;
    try {
      return await idempotentWrite(this.db, { procedure: 'users.update', key: idempotencyKey, request }, async (tx) => {
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
  async delete(input: { id: number; idempotencyKey?: string | undefined }): Promise<User> {
    const { idempotencyKey, id } = input;
    return idempotentWrite(this.db, { procedure: 'users.delete', key: idempotencyKey, request: { id } }, async (tx) => {
      const [row] = await tx.delete(users).where(eq(users.id, id)).returning();
      if (!row) throw new NotFoundError('user', id);
      return toUser(row);
    });
  }
}
