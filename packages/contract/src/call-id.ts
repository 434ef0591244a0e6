/**
 * The one home of the call-id format. A call id names one call on the server (activity hops, logs,
 * `calls.cancel`), whatever carried it: x-request-id over HTTP, `params.callId` over the WebSocket.
 *
 *   <base>            the call as the caller named it (a dashboard row, a program's request)
 *   <base>~<n>        its n-th retry (n ≥ 1)
 *   <base>#<i>        the i-th call of a batched HTTP request whose calls were not named one by one
 *
 * Ids are unique per caller (per credential) among the calls in flight.
 */
import { z } from 'zod';

export const CALL_ID_MAX_LENGTH = 128;
/** Letters, digits and `_ . : ~ # -`, 1 to 128 of them: safe in headers, logs and URLs. */
export const CALL_ID_PATTERN = /^[\w.:~#-]{1,128}$/;
/** The rule, in words, for error messages. */
export const CALL_ID_RULE = `1 to ${CALL_ID_MAX_LENGTH} letters, digits or _ . : ~ # -`;
const CALL_ID_MESSAGE = `a call id is ${CALL_ID_RULE}`;

export const callIdSchema = z.string().regex(CALL_ID_PATTERN, { error: CALL_ID_MESSAGE });

export function isCallId(value: unknown): value is string {
  return typeof value === 'string' && CALL_ID_PATTERN.test(value);
}

/** The id of an attempt: the first is the call's own id, a retry gets `~n`. */
export function attemptCallId(callId: string, attempt: number): string {
  return attempt === 0 ? callId : `${callId}~${attempt}`;
}

/** The id of the `index`-th call of a batched request named `requestId` (used when the client named none). */
export function batchCallId(requestId: string, index: number): string {
  return index === 0 ? requestId : `${requestId}#${index}`;
}

export interface ParsedCallId {
  /** The call without its retry and batch suffixes. */
  base: string;
  attempt: number;
  batchIndex: number | undefined;
}

const BATCH_SUFFIX = /#(\d+)$/;
const ATTEMPT_SUFFIX = /~(\d+)$/;

export function parseCallId(id: string): ParsedCallId {
  let rest = id;
  let batchIndex: number | undefined;
  const batch = BATCH_SUFFIX.exec(rest);
  if (batch) {
    batchIndex = Number(batch[1]);
    rest = rest.slice(0, batch.index);
  }
  let attempt = 0;
  const retry = ATTEMPT_SUFFIX.exec(rest);
  if (retry) {
    attempt = Number(retry[1]);
    rest = rest.slice(0, retry.index);
  }
  return { base: rest, attempt, batchIndex };
}

let sequence = 0;
const instance = Math.random().toString(36).slice(2, 8);

/** A fresh id for a call its caller did not name: unique within this process, distinct across processes. */
export function newCallId(prefix = 'c'): string {
  return `${prefix}-${instance}-${(++sequence).toString(36)}`;
}
