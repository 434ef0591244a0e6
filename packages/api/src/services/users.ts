import { TRPCError } from '@trpc/server';
import { count, eq, sql } from 'drizzle-orm';
import { type Database, PG_UNIQUE_VIOLATION, users, type UserRow } from '@asyncscope/db';
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

function sqlState(error: unknown): string | undefined {
  // drizzle wraps the driver's error; the SQLSTATE is on the cause.
  for (let e: unknown = error; e instanceof Error; e = e.cause) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string') return code;
  }
  return undefined;
}

function conflictOr(error: unknown, email: string | undefined): never {
  if (sqlState(error) === PG_UNIQUE_VIOLATION) {
    throw new TRPCError({ code: 'CONFLICT', message: `A user with the email ${email ?? '(given)'} already exists.`, cause: error });
  }
  throw error;
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
    const [rows, totals] = await Promise.all([this.#page.execute(input), this.#total.execute()]);
    return { items: rows.map(toUser), total: totals[0]?.total ?? 0 };
  }

  async create(input: { name: string; email: string }): Promise<User> {
    try {
      return await this.db.transaction(async (tx) => {
        const [row] = await tx.insert(users).values(input).returning();
        if (!row) throw new Error('insert returned no row');
        return toUser(row);
      });
    } catch (error) {
      return conflictOr(error, input.email);
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
