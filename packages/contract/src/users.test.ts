import { describe, expect, it } from 'vitest';
import { createUserInput, listUsersInput, updateUserInput, userByIdInput } from './users';

describe('users contract', () => {
  it('normalises names and emails', () => {
    expect(createUserInput.parse({ name: '  Ada ', email: ' Ada@Example.COM ' })).toEqual({ name: 'Ada', email: 'ada@example.com' });
  });

  it.each([
    [{ id: 0 }, 'id must be 1 or more'],
    [{ id: -3 }, 'id must be 1 or more'],
    [{ id: 1.5 }, 'id must be a whole number'],
    [{ id: 2_147_483_648 }, 'id must be at most 2147483647'],
    [{ id: '7' }, 'id must be a number'],
    [{}, 'id must be a number'],
  ])('rejects id %j', (input, message) => {
    const result = userByIdInput.safeParse(input);
    expect(result.success).toBe(false);
    expect(result.error?.issues[0]?.message).toBe(message);
  });

  it.each([
    [{ name: '', email: 'a@b.co' }, ['name'], 'name must not be empty'],
    [{ name: '   ', email: 'a@b.co' }, ['name'], 'name must not be empty'],
    [{ name: 'x'.repeat(101), email: 'a@b.co' }, ['name'], 'name must be at most 100 characters'],
    [{ name: 'Ada', email: 'not-an-email' }, ['email'], 'email must be a valid address, like ada@example.com'],
    [{ name: 'Ada' }, ['email'], 'email must be a string'],
  ])('rejects create input %#', (input, path, message) => {
    const result = createUserInput.safeParse(input);
    expect(result.error?.issues[0]).toMatchObject({ path, message });
  });

  it('accepts a 100-character name after trimming', () => {
    expect(createUserInput.parse({ name: ` ${'x'.repeat(100)} `, email: 'a@b.co' }).name).toHaveLength(100);
  });

  it('defaults and bounds list paging', () => {
    expect(listUsersInput.parse(undefined)).toEqual({ limit: 10, offset: 0 });
    expect(listUsersInput.safeParse({ limit: 0 }).success).toBe(false);
    expect(listUsersInput.safeParse({ limit: 101 }).success).toBe(false);
    expect(listUsersInput.safeParse({ offset: -1 }).success).toBe(false);
    expect(listUsersInput.parse({ limit: 100, offset: 5 })).toEqual({ limit: 100, offset: 5 });
  });

  it('requires something to change in an update, and rejects unknown fields', () => {
    expect(updateUserInput.safeParse({ id: 1 }).error?.issues[0]?.message).toBe('give a name or an email to change');
    expect(updateUserInput.safeParse({ id: 1, name: 'A', role: 'admin' }).success).toBe(false);
  });
});
