import { createHash } from 'node:crypto';
import { TRPCError } from '@trpc/server';
import { count, eq, gt, sql } from 'drizzle-orm';
import { type Database, idempotencyKeys, PG_UNIQUE_VIOLATION, sqlState, users, type UserRow } from '@asyncscope/db';
import type { User, UserPage } from '@asyncscope/contract';

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

class KeyTakenMeanwhile extends Error {}

function requestHash(input: unknown): string {
  return createHash('sha256').update(JSON.stringify(input)).digest('hex');
}

function conflictOr(error: unknown, email: string | undefined): never {
  if (sqlState(error) === PG_UNIQUE_VIOLATION) {
    throw new TRPCError({ code: 'CONFLICT', message: `A user with the email ${email ?? '(given)'} already exists.`, cause: error });
  }
  throw error;
}

async function insertUser(tx: Pick<Database, 'insert'>, values: { name: string; email: string }): Promise<UserRow> {
  const [row] = await tx.insert(users).values(values).returning();
  if (!row) throw new Error('insert returned no row');
  return row;
}

function notFound(id: number): TRPCError {
  return new TRPCError({ code: 'NOT_FOUND', message: `No user with id ${id}.` });
}

/**
 * The users service: what the procedures do, callable without HTTP. Reads use prepared statements
 * (parsed and planned once per connection); every write is one transaction, rolled back on any error.
 */
export class UsersService {
  readonly #byId;
  readonly #page;
  readonly #total;

  constructor(private readonly db: Database) {
    this.#byId = db.select().from(users).where(eq(users.id, sql.placeholder('id'))).prepare('users_by_id');
    this.#page = db.select().from(users).orderBy(users.id).limit(sql.placeholder('limit')).offset(sql.placeholder('offset')).prepare('users_page');
    this.#total = db.select({ total: count() }).from(users).prepare('users_total');
  }

  async byId(id: number): Promise<User> {
    const [row] = await this.#byId.execute({ id });
    if (!row) throw notFound(id);
    return toUser(row);
  }

  async list(input: { limit: number; offset: number }): Promise<UserPage> {
    // allSettled, not all: if one query fails the call must not return while the other still runs.
    const [rows, totals] = await Promise.allSettled([this.#page.execute(input), this.#total.execute()]);
    if (rows.status === 'rejected') throw rows.reason;
    if (totals.status === 'rejected') throw totals.reason;
    return { items: rows.value.map(toUser), total: totals.value[0]?.total ?? 0 };
  }

  /**
   * Creates a user. With an idempotency key, the key and the response are stored in the same transaction
   * as the user, so a retry (after a cancel that landed during COMMIT, or a lost answer) returns the first
   * response instead of writing twice — also when both calls race.
   */
  async create(input: { name: string; email: string; idempotencyKey?: string | undefined }): Promise<User> {
    const { idempotencyKey, ...values } = input;
    if (idempotencyKey === undefined) {
      try {
        return await this.db.transaction(async (tx) => toUser(await insertUser(tx, values)));
      } catch (error) {
        return conflictOr(error, values.email);
      }
    }
    const hash = requestHash(values);
    try {
      return await this.db.transaction(async (tx) => {
        const replay = await this.#storedResponse(tx, idempotencyKey, hash);
        if (replay) return replay;
        const user = toUser(await insertUser(tx, values));
        const stored = await tx
          .insert(idempotencyKeys)
          .values({ key: idempotencyKey, procedure: 'users.create', requestHash: hash, response: user })
          .onConflictDoNothing()
          .returning({ key: idempotencyKeys.key });
        if (stored.length === 0) throw new KeyTakenMeanwhile();
        return user;
      });
    } catch (error) {
      // A concurrent call with the same key may have committed first: its response is the answer.
      const replay = await this.#storedResponse(this.db, idempotencyKey, hash);
      if (replay) return replay;
      return conflictOr(error, values.email);
    }
  }

  async #storedResponse(q: Pick<Database, 'select'>, key: string, hash: string): Promise<User | undefined> {
    const [row] = await q.select().from(idempotencyKeys).where(eq(idempotencyKeys.key, key));
    if (!row) return undefined;
    if (row.requestHash !== hash || row.procedure !== 'users.create') {
      throw new TRPCError({ code: 'CONFLICT', message: `The idempotency key ${key} was already used for a different request.` });
    }
    return row.response as User;
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

  async update(input: { id: number; name?: string | undefined; email?: string | undefined }): Promise<User> {
    const { id, ...changes } = input;
    try {
      return await this.db.transaction(async (tx) => {
        const [row] = await tx
          .update(users)
          .set({ ...changes, updatedAt: sql`now()` })
          .where(eq(users.id, id))
          .returning();
        if (!row) throw notFound(id);
        return toUser(row);
      });
    } catch (error) {
      return conflictOr(error, changes.email);
    }
  }

  async delete(id: number): Promise<User> {
    return this.db.transaction(async (tx) => {
      const [row] = await tx.delete(users).where(eq(users.id, id)).returning();
      if (!row) throw notFound(id);
      return toUser(row);
    });
  }
}
