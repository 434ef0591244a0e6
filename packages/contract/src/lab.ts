import { z } from 'zod';
import { storableText } from './text';
import { idempotencyKeySchema } from './users';

const ms = (name: string, max = 60_000) =>
  z
    .number({ error: `${name} must be a number of milliseconds` })
    .int({ error: `${name} must be a whole number of milliseconds` })
    .min(0, { error: `${name} must be between 0 and ${max}` })
    .max(max, { error: `${name} must be between 0 and ${max}` });

export const labSleepInput = z.strictObject({ ms: ms('ms') });

export const labSlowWriteInput = z.strictObject({
  label: storableText('label').trim().min(1, { error: 'label must not be empty' }).max(100, { error: 'label must be at most 100 characters' }),
  ms: ms('ms'),
  idempotencyKey: idempotencyKeySchema.optional(),
});

export const labCpuInput = z.strictObject({
  rounds: z
    .number({ error: 'rounds must be a number' })
    .int({ error: 'rounds must be a whole number' })
    .min(1, { error: 'rounds must be between 1 and 50000000' })
    .max(50_000_000, { error: 'rounds must be between 1 and 50000000' }),
});

/** Procedures whose faults can be injected. */
export const faultTargets = ['users.byId', 'users.list', 'users.create', 'users.update', 'users.delete', 'lab.sleep'] as const;
export type FaultTarget = (typeof faultTargets)[number];

export const faultSchema = z.strictObject({
  /** Latency spent inside Postgres (pg_sleep) before the procedure's work, so a cancel stops it there. */
  latencyMs: ms('latencyMs').default(0),
  /** Fraction of calls that fail with SERVICE_UNAVAILABLE (retryable), 0 to 1. */
  errorRate: z.number({ error: 'errorRate must be a number' }).min(0, { error: 'errorRate must be between 0 and 1' }).max(1, { error: 'errorRate must be between 0 and 1' }).default(0),
});
export type Fault = z.infer<typeof faultSchema>;

export const setFaultsInput = z.strictObject({
  procedure: z.enum(faultTargets, { error: `procedure must be one of ${faultTargets.join(', ')}` }),
  fault: faultSchema,
});

export const activityEventsInput = z
  .strictObject({
    /** `<bootId>:<seq>` as sent by the link on reconnect (a bare sequence number is accepted too). */
    lastEventId: storableText('lastEventId')
      .regex(/^([\w-]{1,64}:)?\d{1,15}$/, { error: 'lastEventId must be "<bootId>:<sequence>" as the stream sent it' })
      .nullish(),
    /** Start from the oldest event still buffered instead of from now. */
    replay: z.boolean().default(false),
  })
  .prefault({});
