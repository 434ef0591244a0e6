import { z } from 'zod';
import { callIdSchema } from './call-id';

/** Most ids one `calls.cancel` names: a cancel-all of a full lab run fits, a flood does not. */
export const MAX_CANCEL_IDS = 1000;

export const cancelCallsInput = z.strictObject({
  callIds: z
    .array(callIdSchema)
    .min(1, { error: 'callIds must name at least one call' })
    .max(MAX_CANCEL_IDS, { error: `callIds may name at most ${MAX_CANCEL_IDS} calls` }),
});

/**
 * What became of one named call:
 * - `cancelled`: it was in flight (waiting for admission, for a connection, running, or in a transaction) and is stopped;
 * - `already-settled`: it had finished before the cancel arrived;
 * - `unknown`: no call of yours by that id (if it arrives within a few seconds, it is refused unstarted);
 * - `instance-gone`: the server instance that ran it (known from its hops) no longer answers: it stopped or
 *   died, and its calls with it.
 */
export type CancelStatus = 'cancelled' | 'already-settled' | 'unknown' | 'instance-gone';
export interface CancelOutcome { callId: string; status: CancelStatus }
