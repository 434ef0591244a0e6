import { isTrackedEnvelope, TRPCError } from '@trpc/server';
import type { User, UserStreamPage } from '@asyncscope/contract';
import { beforeEach, describe, expect, it } from 'vitest';
import { createCaller } from '../root';
import { useCallerFixture } from '../test-caller';
import { createInnerContext } from '../context';
import { newUser, seedUsers } from '../testing';
import { EVENT_CHARS, eventSlices } from './users';

const fx = useCallerFixture();
beforeEach(async () => { await fx.t.sql`truncate users, idempotency_keys restart identity`; });

const snapshot = () => fx.t.sql`select * from users order by id`;

async function expectCode(promise: Promise<unknown>, code: TRPCError['code']): Promise<TRPCError> {
  const error: unknown = await promise.then(() => undefined, (e: unknown) => e);
  expect(error).toBeInstanceOf(TRPCError);
  expect((error as TRPCError).code).toBe(code);
  return error as TRPCError;
}

describe('users procedures through createCaller', () => {
  it('creates, reads, lists, updates and deletes', async () => {
    const ada = await fx.caller.users.create({ name: '  Ada Lovelace ', email: 'Ada@Example.com' });
    expect(ada).toMatchObject({ id: 1, name: 'Ada Lovelace', email: 'ada@example.com' });
    expect(new Date(ada.createdAt).toISOString()).toBe(ada.createdAt);
    expect(await fx.caller.users.byId({ id: ada.id })).toEqual(ada);

    await fx.caller.users.create(newUser('Grace'));
    const page = await fx.caller.users.list({ limit: 1, offset: 1 });
    expect(page.total).toBe(2);
    expect(page.items.map((u) => u.name)).toEqual(['Grace']);
    expect((await fx.caller.users.list()).items).toHaveLength(2);

    const renamed = await fx.caller.users.update({ id: ada.id, name: 'Augusta Ada' });
    expect(renamed.name).toBe('Augusta Ada');
    expect(renamed.email).toBe('ada@example.com');
    expect(Date.parse(renamed.updatedAt)).toBeGreaterThanOrEqual(Date.parse(ada.updatedAt));

    expect(await fx.caller.users.delete({ id: ada.id })).toMatchObject({ id: ada.id });
    await expectCode(fx.caller.users.byId({ id: ada.id }), 'NOT_FOUND');
    expect((await fx.caller.users.list()).total).toBe(1);
  });

  it('rejects a duplicate email in any letter case with CONFLICT and keeps the first', async () => {
    await fx.caller.users.create(newUser('Ada'));
    const before = await snapshot();
    const error = await expectCode(fx.caller.users.create({ name: 'Imposter', email: 'ADA@EXAMPLE.COM' }), 'CONFLICT');
    expect(error.message).toContain('ada@example.com');
    expect(await snapshot()).toEqual(before);
  });

  it('rejects an update to a taken email with CONFLICT and rolls back', async () => {
    await fx.caller.users.create(newUser('Ada'));
    const grace = await fx.caller.users.create(newUser('Grace'));
    const before = await snapshot();
    await expectCode(fx.caller.users.update({ id: grace.id, name: 'G', email: 'Ada@example.com' }), 'CONFLICT');
    expect(await snapshot()).toEqual(before);
  });

  it('answers NOT_FOUND for update and delete of a missing user, changing nothing', async () => {
    await fx.caller.users.create(newUser('Ada'));
    const before = await snapshot();
    await expectCode(fx.caller.users.update({ id: 99, name: 'x' }), 'NOT_FOUND');
    await expectCode(fx.caller.users.delete({ id: 99 }), 'NOT_FOUND');
    expect(await snapshot()).toEqual(before);
  });

  it.each([
    ['byId', { id: 0 }],
    ['byId', { id: 1.5 }],
    ['byId', { id: 2 ** 31 }],
    ['create', { name: '', email: 'a@b.co' }],
    ['create', { name: ' ', email: 'a@b.co' }],
    ['create', { name: 'x'.repeat(101), email: 'a@b.co' }],
    ['create', { name: 'A', email: 'nope' }],
    ['create', { name: 'A' }],
    ['list', { limit: 0 }],
    ['list', { limit: 101 }],
    ['list', { offset: -1 }],
    ['update', { id: 1 }],
  ] as const)('rejects bad input to %s %j with BAD_REQUEST, changing nothing', async (procedure, input) => {
    await fx.caller.users.create(newUser('Ada'));
    const before = await snapshot();
    // The bad input is the point of the test, so the types are bypassed on purpose.
    const call = (fx.caller.users[procedure] as (i: unknown) => Promise<unknown>)(input);
    const error = await expectCode(call, 'BAD_REQUEST');
    expect(error.message).not.toMatch(/^\s*\[/); // not a raw JSON dump of zod issues
    expect(await snapshot()).toEqual(before);
  });

  it('refuses every procedure without a valid token', async () => {
    const anonymous = createCaller(createInnerContext({ runtime: fx.runtime, authorized: false }));
    await expectCode(anonymous.users.list(), 'UNAUTHORIZED');
    await expectCode(anonymous.users.create({ name: 'A', email: 'a@b.co' }), 'UNAUTHORIZED');
    const ticket = await expectCode(anonymous.auth.ticket(), 'UNAUTHORIZED');
    expect(ticket.message).toBe('Missing or wrong API token: send "Authorization: Bearer <token>".');
    expect(await snapshot()).toEqual([]);
  });
});

describe('idempotent create', () => {
  it('returns the first response to a retry with the same key, writing once', async () => {
    const first = await fx.caller.users.create({ ...newUser('Ada'), idempotencyKey: 'create-ada-0001' });
    const again = await fx.caller.users.create({ ...newUser('Ada'), idempotencyKey: 'create-ada-0001' });
    expect(again).toEqual(first);
    expect(await snapshot()).toHaveLength(1);
  });

  it('writes once when two calls with one key race', async () => {
    const input = { ...newUser('Grace'), idempotencyKey: 'race-grace-01' };
    const [a, b] = await Promise.all([fx.caller.users.create(input), fx.caller.users.create(input)]);
    expect(a).toEqual(b);
    expect(await snapshot()).toHaveLength(1);
  });

  it('refuses a key reused for a different request, changing nothing', async () => {
    await fx.caller.users.create({ ...newUser('Ada'), idempotencyKey: 'key-reused-01' });
    const before = await snapshot();
    const error = await expectCode(fx.caller.users.create({ ...newUser('Bob'), idempotencyKey: 'key-reused-01' }), 'CONFLICT');
    expect(error.message).toContain('already used for a different request');
    expect(await snapshot()).toEqual(before);
  });
});

describe('idempotent update and delete', () => {
  it('update: a retry gets the first answer and does not apply the change again', async () => {
    const ada = await fx.caller.users.create(newUser('Ada'));
    const first = await fx.caller.users.update({ id: ada.id, name: 'Ada L.', idempotencyKey: 'update-ada-01' });
    const later = await fx.caller.users.update({ id: ada.id, name: 'Countess' }); // someone else's change, after
    const retry = await fx.caller.users.update({ id: ada.id, name: 'Ada L.', idempotencyKey: 'update-ada-01' });
    expect(retry).toEqual(first);
    expect(await fx.caller.users.byId({ id: ada.id })).toEqual(later); // the retry did not write 'Ada L.' again
  });

  it('delete: a retry gets the deleted user again instead of NOT_FOUND; racing retries too', async () => {
    const ada = await fx.caller.users.create(newUser('Ada'));
    const first = await fx.caller.users.delete({ id: ada.id, idempotencyKey: 'delete-ada-01' });
    expect(first).toEqual(ada);
    expect(await fx.caller.users.delete({ id: ada.id, idempotencyKey: 'delete-ada-01' })).toEqual(ada);
    await expectCode(fx.caller.users.delete({ id: ada.id }), 'NOT_FOUND'); // without the key it is a new request

    const grace = await fx.caller.users.create(newUser('Grace'));
    const both = await Promise.all([
      fx.caller.users.delete({ id: grace.id, idempotencyKey: 'delete-race-01' }),
      fx.caller.users.delete({ id: grace.id, idempotencyKey: 'delete-race-01' }),
    ]);
    expect(both).toEqual([grace, grace]);
  });

  it('refuses a key used by another procedure or request, changing nothing', async () => {
    const ada = await fx.caller.users.create({ ...newUser('Ada'), idempotencyKey: 'shared-key-01' });
    const before = await snapshot();
    await expectCode(fx.caller.users.delete({ id: ada.id, idempotencyKey: 'shared-key-01' }), 'CONFLICT');
    await fx.caller.users.update({ id: ada.id, name: 'Ada L.', idempotencyKey: 'update-key-02' });
    const after = await snapshot();
    const error = await expectCode(fx.caller.users.update({ id: ada.id, name: 'Someone else', idempotencyKey: 'update-key-02' }), 'CONFLICT');
    expect(error.message).toContain('already used for a different request');
    expect(before).toHaveLength(1);
    expect(await snapshot()).toEqual(after);
  });

  it('stores nothing for a write that failed, so its retry runs again', async () => {
    await expectCode(fx.caller.users.delete({ id: 42, idempotencyKey: 'delete-missing' }), 'NOT_FOUND');
    expect(await fx.t.sql`select key from idempotency_keys`).toEqual([]);
  });
});

describe('users.stream events', () => {
  /** Every event of a whole stream, as its tracked id and page. */
  async function events(pageSize: number): Promise<{ id: string; page: UserStreamPage }[]> {
    const out: { id: string; page: UserStreamPage }[] = [];
    for await (const event of await fx.caller.users.stream({ pageSize })) {
      if (!isTrackedEnvelope<UserStreamPage>(event)) throw new Error('an untracked event');
      out.push({ id: String(event[0]), page: event[1] });
    }
    return out;
  }

  it('sends a page too large for one event as several, each under EVENT_CHARS, resumable at its last id', async () => {
    // 1,000 users of ~250 characters of JSON each: ~250,000 characters in one page of 1,000.
    await fx.t.sql`insert into users (name, email) select repeat('n', 90) || g, repeat('e', 40) || g || '@example.com' from generate_series(1, 1000) g`;
    const got = await events(1000);
    expect(got.length).toBeGreaterThanOrEqual(5);
    for (const { id, page } of got) {
      expect(JSON.stringify(page).length).toBeLessThan(EVENT_CHARS);
      expect(id).toBe(String(page.items.at(-1)?.id));
    }
    expect(got.flatMap((e) => e.page.items.map((u) => u.id))).toEqual(Array.from({ length: 1000 }, (_, i) => i + 1));
    expect(got.map((e) => e.page.sent)).toEqual(got.map((_, i) => got.slice(0, i + 1).reduce((n, e) => n + e.page.items.length, 0)));
    expect(got.every((e) => e.page.total === 1000)).toBe(true);
    // A client resuming from any event's id gets exactly the users after it.
    const from = got[2]?.id ?? '';
    const resumed: number[] = [];
    for await (const event of await fx.caller.users.stream({ pageSize: 1000, lastEventId: from })) {
      if (isTrackedEnvelope<UserStreamPage>(event)) resumed.push(...event[1].items.map((u) => u.id));
    }
    expect(resumed).toEqual(Array.from({ length: 1000 - Number(from) }, (_, i) => Number(from) + i + 1));
  });

  it('sends a page that fits as one event', async () => {
    await seedUsers(fx.t.sql, 250);
    const got = await events(100);
    expect(got.map((e) => e.page.items.length)).toEqual([100, 100, 50]);
    expect(got.map((e) => e.id)).toEqual(['100', '200', '250']);
  });

  it('cuts runs by size, keeping order and at least one user each', () => {
    const user = (id: number, chars: number): User => ({ id, name: 'n'.repeat(chars), email: 'e', createdAt: '', updatedAt: '' });
    const huge = [user(1, EVENT_CHARS * 2), user(2, 10), user(3, EVENT_CHARS - 300), user(4, 10)];
    expect(eventSlices(huge).map((run) => run.map((u) => u.id))).toEqual([[1], [2, 3], [4]]);
    expect(eventSlices([])).toEqual([]);
  });
});
