import { describe, expect, it } from 'vitest';
import { activityEventsInput, labSlowWriteInput } from './lab';
import { isStorableText } from './text';
import { createUserInput, streamUsersInput, updateUserInput } from './users';

const fieldErrors = (result: { success: boolean; error?: { issues: { path: PropertyKey[]; message: string }[] } }) =>
  Object.fromEntries((result.error?.issues ?? []).map((i) => [i.path.join('.'), i.message]));

describe('text Postgres can store', () => {
  it('refuses NUL and unpaired surrogates, keeps paired ones', () => {
    for (const bad of ['a\u0000b', '\u0000', 'x\uD800', '\uDC00y', 'a\uDC00\uD800b']) expect(isStorableText(bad), JSON.stringify(bad)).toBe(false);
    for (const good of ['Ada', '', 'emoji \uD83D\uDE00', 'ünïcødé', 'tab\tnew\nline']) expect(isStorableText(good), good).toBe(true);
  });

  it('every text field refuses them on its own field', () => {
    expect(fieldErrors(createUserInput.safeParse({ name: 'a\u0000b', email: 'a\u0000@example.com' }))).toEqual({
      name: 'name must not contain NUL characters or unpaired surrogates',
      email: 'email must not contain NUL characters or unpaired surrogates',
    });
    expect(fieldErrors(updateUserInput.safeParse({ id: 1, name: 'x\uD800' }))).toEqual({ name: 'name must not contain NUL characters or unpaired surrogates' });
    expect(fieldErrors(labSlowWriteInput.safeParse({ label: 'a\u0000b', ms: 0 }))).toEqual({ label: 'label must not contain NUL characters or unpaired surrogates' });
    expect(fieldErrors(labSlowWriteInput.safeParse({ label: 'ok', ms: 0, idempotencyKey: 'key-\u0000-0001' }))).toEqual({ idempotencyKey: 'idempotencyKey must not contain NUL characters or unpaired surrogates' });
  });
});

describe('resume ids', () => {
  it('users.stream: a user id, at most 2147483647', () => {
    expect(streamUsersInput.parse({ lastEventId: '2147483647' }).lastEventId).toBe('2147483647');
    for (const id of ['2147483648', '99999999999', '-1', '1.5', '', 'abc']) {
      expect(fieldErrors(streamUsersInput.safeParse({ lastEventId: id })), id).toEqual({ lastEventId: 'lastEventId must be a user id: digits, at most 2147483647' });
    }
  });

  it('activity.events: "<bootId>:<sequence>", a sequence a number can hold', () => {
    expect(activityEventsInput.parse({ lastEventId: 'mabc-x1y2z3:42' }).lastEventId).toBe('mabc-x1y2z3:42');
    // The cluster's id space: "js-" and the stream's creation time in base 36, then the stream sequence.
    expect(activityEventsInput.parse({ lastEventId: `js-${Date.now().toString(36)}:123456` }).lastEventId).toMatch(/^js-[0-9a-z]+:123456$/);
    for (const id of ['boot:12345678901234567890123', '12345678901234567890123', 'boot:', ':1', 'a b:1']) {
      expect(activityEventsInput.safeParse({ lastEventId: id }).success, id).toBe(false);
    }
  });
});
