import { sql } from 'drizzle-orm';
import { bigint, check, doublePrecision, integer, jsonb, pgTable, smallint, text, timestamp, uniqueIndex, varchar } from 'drizzle-orm/pg-core';

export const users = pgTable(
  'users',
  {
    // int4 on purpose: ids beyond 2^31-1 are rejected at the API edge, not discovered as a 500 here.
    id: integer('id').primaryKey().generatedAlwaysAsIdentity(),
    name: varchar('name', { length: 100 }).notNull(),
    email: text('email').notNull(),
    createdAt: timestamp('created_at', { withTimezone: true, mode: 'date' }).notNull().defaultNow(),
    updatedAt: timestamp('updated_at', { withTimezone: true, mode: 'date' }).notNull().defaultNow(),
  },
  (t) => [
    // Emails are stored normalised, and the index on lower() keeps them unique even if a row bypasses the API.
    uniqueIndex('users_email_lower_key').on(sql`lower(${t.email})`),
    check('users_name_not_blank', sql`length(btrim(${t.name})) between 1 and 100`),
  ],
);

/**
 * How many rows `users` has, kept by triggers in the transaction of every write (migration 0003), so that
 * `users.list` reports an exact total without counting the table. Spread over USER_COUNT_SLOTS rows: each
 * writing backend adds to slot `pg_backend_pid() % USER_COUNT_SLOTS`, so concurrent writers rarely wait on
 * one another's row lock; the total is `sum(n)`. Statement-level AFTER INSERT / DELETE triggers add the
 * size of their transition table (one update per statement, however many rows); AFTER TRUNCATE zeroes all.
 * The price: a transaction that inserts or deletes users holds its slot's row lock until it commits, so two such
 * transactions on the same slot queue behind each other (a transaction that then waits for a lock the other
 * holds is a deadlock, 40P01), and a REPEATABLE READ / SERIALIZABLE one can get 40001 from a slot updated after
 * its snapshot. The API's own writes are one users statement per transaction, which cannot close such a cycle.
 */
export const userCountSlots = pgTable('user_count_slots', {
  slot: smallint('slot').primaryKey(),
  n: bigint('n', { mode: 'number' }).notNull(),
});

/** Rows in `user_count_slots`; the triggers' `% 16` in migration 0003 must match. */
export const USER_COUNT_SLOTS = 16;

/** Rows written by the lab's slow transaction, so a test can see that a cancelled one left nothing. */
export const labWrites = pgTable('lab_writes', {
  id: bigint('id', { mode: 'number' }).primaryKey().generatedAlwaysAsIdentity(),
  label: text('label').notNull(),
  step: integer('step').notNull(),
  createdAt: timestamp('created_at', { withTimezone: true, mode: 'date' }).notNull().defaultNow(),
});

/**
 * Client-chosen idempotency keys of writes: the first call with a key stores its response in the same
 * transaction as the write, and a retry with that key gets the stored response instead of a second write.
 */
export const idempotencyKeys = pgTable('idempotency_keys', {
  key: text('key').primaryKey(),
  procedure: text('procedure').notNull(),
  requestHash: text('request_hash').notNull(),
  response: jsonb('response').notNull(),
  createdAt: timestamp('created_at', { withTimezone: true, mode: 'date' }).notNull().defaultNow(),
});

/**
 * The lab's injected faults (lab.setFaults), one row per procedure: shared by every server instance on this
 * database. A change is one transaction that also sends pg_notify('asyncscope_lab_faults', ''); each
 * instance LISTENs and reloads the table into its in-memory view (packages/api FaultStore).
 */
export const labFaults = pgTable(
  'lab_faults',
  {
    procedure: text('procedure').primaryKey(),
    latencyMs: integer('latency_ms').notNull(),
    errorRate: doublePrecision('error_rate').notNull(),
    updatedAt: timestamp('updated_at', { withTimezone: true, mode: 'date' }).notNull().defaultNow(),
  },
  (t) => [
    // The API refuses these already (contract's faultSchema); a row written by hand must not make every call fail oddly.
    check('lab_faults_latency_ms_range', sql`${t.latencyMs} between 0 and 60000`),
    check('lab_faults_error_rate_range', sql`${t.errorRate} between 0 and 1`),
  ],
);

export type LabFaultRow = typeof labFaults.$inferSelect;
export type UserRow = typeof users.$inferSelect;
export type NewUserRow = typeof users.$inferInsert;
