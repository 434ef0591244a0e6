import { sql } from 'drizzle-orm';
import { check, integer, pgTable, text, timestamp, uniqueIndex, varchar } from 'drizzle-orm/pg-core';

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

export type UserRow = typeof users.$inferSelect;
export type NewUserRow = typeof users.$inferInsert;

/** SQLSTATE codes the service layer maps to typed errors. */
export const PG_UNIQUE_VIOLATION = '23505';
export const PG_QUERY_CANCELED = '57014';
