/**
 * Test data, one home for every test that makes users (`@asyncscope/api/testing`); the package never imports it.
 */
import type postgres from 'postgres';

export interface NewUser {
  name: string;
  email: string;
}

/** A valid users.create input: `newUser('Grace')` is Grace, grace@example.com. */
export function newUser(name = 'Ada', overrides: Partial<NewUser> = {}): NewUser {
  return { name, email: `${emailPart(name)}@example.com`, ...overrides };
}

/** Inserts `count` users in one statement: "User 1", user1@example.com, … (`label` replaces "User"). */
export async function seedUsers(sql: postgres.Sql, count: number, label = 'User'): Promise<void> {
  await sql`insert into users (name, email) select ${`${label} `} || g, ${emailPart(label)} || g || '@example.com' from generate_series(1, ${count}::int) g`;
}

const emailPart = (name: string): string => name.toLowerCase().replaceAll(/[^a-z0-9]+/g, '');
