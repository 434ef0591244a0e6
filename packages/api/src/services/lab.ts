import { type DbClient, labWrites, type QueryScope } from '@asyncscope/db';
import { sql } from 'drizzle-orm';
import { idempotentWrite } from './idempotency';

/** Work that makes cancellation visible: each waits *inside Postgres*, where a cancel must reach it. */
export class LabService {
  constructor(private readonly db: DbClient) {}

  /** One real statement lasting `ms`, visible in pg_stat_activity while it runs; cancelled with `scope`. */
  async sleep(ms: number, scope: QueryScope): Promise<{ sleptMs: number }> {
    const started = performance.now();
    await this.db.bind(scope).sql`select pg_sleep(${ms / 1000})`;
    return { sleptMs: Math.round(performance.now() - started) };
  }

  /** A transaction that writes, waits inside Postgres, and writes again: cancelled midway, nothing remains. */
  async slowWrite(input: { label: string; ms: number; idempotencyKey?: string | undefined }, scope: QueryScope): Promise<{ rows: number }> {
    const { idempotencyKey, label, ms } = input;
    return idempotentWrite(this.db.bind(scope).orm, { procedure: 'lab.slowWrite', key: idempotencyKey, request: { label, ms } }, async (tx) => {
      await tx.insert(labWrites).values({ label, step: 1 });
      await tx.execute(sql`select pg_sleep(${ms / 1000})`);
      await tx.insert(labWrites).values({ label, step: 2 });
      return { rows: 2 };
    });
  }
}
