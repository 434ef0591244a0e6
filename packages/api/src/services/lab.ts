import { type DbClient, labWrites } from '@asyncscope/db';
import { sql } from 'drizzle-orm';
import { idempotentWrite } from './idempotency';

/** Work that makes cancellation visible: each waits *inside Postgres*, where a cancel must reach it. */
export class LabService {
  constructor(private readonly db: DbClient) {}

  /** One real statement lasting `ms`, visible in pg_stat_activity while it runs. */
  async sleep(ms: number): Promise<{ sleptMs: number }> {
    const started = performance.now();
    await this.db.sql`select pg_sleep(${ms / 1000})`;
    return { sleptMs: Math.round(performance.now() - started) };
  }

  /** A transaction that writes, waits inside Postgres, and writes again: cancelled midway, nothing remains. */
  async slowWrite(input: { label: string; ms: number; idempotencyKey?: string | undefined }): Promise<{ rows: number }> {
    const { idempotencyKey, label, ms } = input;
    return idempotentWrite(this.db.orm, { procedure: 'lab.slowWrite', key: idempotencyKey, request: { label, ms } }, async (tx) => {
      await tx.insert(labWrites).values({ label, step: 1 });
      await tx.execute(sql`select pg_sleep(${ms / 1000})`);
      await tx.insert(labWrites).values({ label, step: 2 });
      return { rows: 2 };
    });
  }
}
