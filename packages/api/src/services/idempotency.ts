import { createHash } from 'node:crypto';
import { eq } from 'drizzle-orm';
import { type Orm, idempotencyKeys } from '@asyncscope/db';
import { ConflictError } from './errors';

export type Transaction = Parameters<Parameters<Orm['transaction']>[0]>[0];

export interface IdempotentWrite {
  /** The procedure's path: a key belongs to one procedure. */
  procedure: string;
  /** Chosen by the client; without one the write simply runs in its transaction. */
  key: string | undefined;
  /** What the client asked for (without the key): a key reused for another request is refused. */
  request: unknown;
}

class KeyTakenMeanwhile extends Error {}

function requestHash(procedure: string, request: unknown): string {
  return createHash('sha256').update(procedure).update('\0').update(JSON.stringify(request)).digest('hex');
}

async function storedResponse(q: Pick<Orm, 'select'>, key: string, procedure: string, hash: string): Promise<unknown> {
  const [row] = await q.select().from(idempotencyKeys).where(eq(idempotencyKeys.key, key));
  if (!row) return undefined;
  if (row.requestHash !== hash || row.procedure !== procedure) {
    throw new ConflictError(`The idempotency key ${key} was already used for a different request.`);
  }
  return row.response;
}

/**
 * Runs `write` in one transaction. With a key, the key and the write's response are stored in that same
 * transaction, so a retry — after a cancel that landed during COMMIT, or an answer lost on the way — gets
 * the first response instead of writing again; also when the two calls race (the second waits on the
 * first's key or row, rolls back, and answers with what the first stored). Only successes are stored: a
 * write that failed left nothing, so its retry runs again.
 */
export async function idempotentWrite<T>(db: Orm, what: IdempotentWrite, write: (tx: Transaction) => Promise<T>): Promise<T> {
  const { key, procedure } = what;
  if (key === undefined) return db.transaction(write);
  const hash = requestHash(procedure, what.request);
  try {
    return await db.transaction(async (tx) => {
      const replay = await storedResponse(tx, key, procedure, hash);
      if (replay !== undefined) return replay as T;
      const response = await write(tx);
      const stored = await tx
        .insert(idempotencyKeys)
        .values({ key, procedure, requestHash: hash, response })
        .onConflictDoNothing()
        .returning({ key: idempotencyKeys.key });
      if (stored.length === 0) throw new KeyTakenMeanwhile();
      return response;
    });
  } catch (error) {
    // A concurrent call with the same key may have committed first: its response is the answer.
    const replay = await storedResponse(db, key, procedure, hash);
    if (replay !== undefined) return replay as T;
    throw error;
  }
}
