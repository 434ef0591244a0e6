import { CALL_ID_PATTERN, CALL_ID_RULE } from './call-id';
import { z } from 'zod';
import { storableText } from './text';

/** Largest value of Postgres `integer`, the type of users.id. */
export const INT4_MAX = 2_147_483_647;

export const userIdSchema = z
  .number({ error: 'id must be a number' })
  .int({ error: 'id must be a whole number' })
  .min(1, { error: 'id must be 1 or more' })
  .max(INT4_MAX, { error: `id must be at most ${INT4_MAX}` });

export const userNameSchema = storableText('name')
  .trim()
  .min(1, { error: 'name must not be empty' })
  .max(100, { error: 'name must be at most 100 characters' });

/** Trimmed and lower-cased before it is checked, so it is stored normalised and unique in any letter case. */
export const userEmailSchema = storableText('email')
  .trim()
  .toLowerCase()
  .max(254, { error: 'email must be at most 254 characters' })
  .pipe(z.email({ error: 'email must be a valid address, like ada@example.com' }));

/** Chosen by the client, so a retry of a write whose answer was lost (a cancel during COMMIT) is not a second write. */
export const idempotencyKeySchema = storableText('idempotencyKey')
  .min(8, { error: 'idempotencyKey must be 8 to 200 characters' })
  .max(200, { error: 'idempotencyKey must be 8 to 200 characters' })
  .regex(/^[\w.:-]+$/, { error: 'idempotencyKey may hold letters, digits and _ . : - only' });

export const createUserInput = z.strictObject({
  name: userNameSchema,
  email: userEmailSchema,
  idempotencyKey: idempotencyKeySchema.optional(),
});

export const updateUserInput = z
  .strictObject({ id: userIdSchema, name: userNameSchema.optional(), email: userEmailSchema.optional(), idempotencyKey: idempotencyKeySchema.optional() })
  .refine((v) => v.name !== undefined || v.email !== undefined, { error: 'give a name or an email to change' });

export const userByIdInput = z.strictObject({ id: userIdSchema });

export const deleteUserInput = z.strictObject({ id: userIdSchema, idempotencyKey: idempotencyKeySchema.optional() });

export const listUsersInput = z
  .strictObject({
    limit: z
      .number({ error: 'limit must be a number' })
      .int({ error: 'limit must be a whole number' })
      .min(1, { error: 'limit must be between 1 and 100' })
      .max(100, { error: 'limit must be between 1 and 100' })
      .default(10),
    offset: z
      .number({ error: 'offset must be a number' })
      .int({ error: 'offset must be a whole number' })
      .min(0, { error: 'offset must be 0 or more' })
      .max(INT4_MAX, { error: `offset must be at most ${INT4_MAX}` })
      .default(0),
  })
  .prefault({});

/** A user as the API returns it: plain JSON, timestamps as ISO 8601 strings. */
export const userSchema = z.object({
  id: z.number().int(),
  name: z.string(),
  email: z.string(),
  createdAt: z.iso.datetime({ offset: true }),
  updatedAt: z.iso.datetime({ offset: true }),
});

export type User = z.infer<typeof userSchema>;
export type CreateUserInput = z.input<typeof createUserInput>;
export type UpdateUserInput = z.input<typeof updateUserInput>;
export type ListUsersInput = z.input<typeof listUsersInput>;
export interface UserPage { items: User[]; total: number }

export const streamUsersInput = z
  .strictObject({
    pageSize: z.number().int().min(1, { error: 'pageSize must be between 1 and 1000' }).max(1000, { error: 'pageSize must be between 1 and 1000' }).default(500),
    /** Set by the client link when it reconnects: the last id it received (a user id, so at most INT4_MAX). */
    lastEventId: storableText('lastEventId')
      .refine((id) => /^\d{1,10}$/.test(id) && Number(id) <= INT4_MAX, { error: `lastEventId must be a user id: digits, at most ${INT4_MAX}` })
      .nullish(),
    /** Names the call in the server's events (an EventSource cannot send an x-request-id header). */
    callId: storableText('callId').regex(CALL_ID_PATTERN, { error: `callId must be ${CALL_ID_RULE}` }).optional(),
  })
  .prefault({});

export interface UserStreamPage { items: User[]; sent: number; total: number }
